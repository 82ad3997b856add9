#!/usr/bin/env bash
# `make demo`: an example agent (examples/agent.py) runs under `rampart preload` on the
# embedded standard profile. `rampart preload` starts its own policy server; some commands
# run, the destructive and credential-stealing ones are refused; then the audit trail.
#
# Everything happens in a throw-away RAMPART_HOME, HOME and working directory; the server
# is stopped at the end. ~/.rampart is never touched.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rampart=${RAMPART_BIN:-$root/target/release/rampart}
python=$(python3 -c 'import sys; print(sys.executable)')
demo=$(mktemp -d "${TMPDIR:-/tmp}/rampart-demo.XXXXXX")
export RAMPART_HOME=$demo/rampart
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cleanup() {
    "$rampart" serve stop >/dev/null 2>&1
    rm -rf "$demo"
}
trap cleanup EXIT

# A pretend home with a pretend key, so nothing real is ever at stake.
mkdir -p "$demo/home/.ssh" "$demo/project"
echo "-----BEGIN OPENSSH PRIVATE KEY----- (demo)" >"$demo/home/.ssh/id_ed25519"

bold=$(tput bold 2>/dev/null || true)
reset=$(tput sgr0 2>/dev/null || true)
say() { printf '\n%s== %s ==%s\n' "$bold" "$1" "$reset"; }

say "rampart preload -- python3 examples/agent.py   (embedded standard profile)"
(cd "$demo/project" && HOME=$demo/home PATH=/usr/local/bin:/usr/bin:/bin \
    "$rampart" preload --port "$port" -- "$python" "$here/agent.py")

say "rampart audit tail"
"$rampart" audit tail -n 20

say "rampart audit stats"
"$rampart" audit stats

say "rampart audit verify"
"$rampart" audit verify
