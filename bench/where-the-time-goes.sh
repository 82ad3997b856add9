#!/usr/bin/env bash
# Where a checked spawn's time goes, on this machine: interleaved rounds of posix_spawn +
# wait of /bin/true (preload/bench/spawn_loop.c) in five ways, medians, ratios to bare —
#   bare | the library loaded in the child only | checked against a canned server that
#   answers at once (tools/canned_server.c: the round trip alone) | checked by
#   `rampart serve` on its Unix socket (the fast path) | checked by it over TCP (HTTP)
# — and the cost of one request/answer round trip with both ends on one CPU and on two
# (tools/unix_ping.c). The README's "where the time goes" table comes from this.
#
#   bench/where-the-time-goes.sh [ROUNDS] [SPAWNS_PER_ROUND]     (default 15 300)
#
# Needs target/release/rampart and preload/build/librampart.so (`make bench` builds
# both); never touches ~/.rampart. The machine should be otherwise idle.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-15}
N=${2:-300}
RAMPART=$ROOT/target/release/rampart
LIB=$ROOT/preload/build/librampart.so
for f in "$RAMPART" "$LIB"; do
    [[ -x $f || -f $f ]] || { echo "missing $f: run make bench (or cargo build --release && make -C preload)" >&2; exit 1; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rampart-where.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
CC=${CC:-cc}
$CC -O2 -o "$WORK/spawn_loop" "$ROOT/preload/bench/spawn_loop.c"
$CC -O2 -o "$WORK/canned" "$ROOT/bench/tools/canned_server.c" -lpthread
$CC -O2 -o "$WORK/ping" "$ROOT/bench/tools/unix_ping.c"

HOME_DIR=$WORK/home
mkdir -p "$HOME_DIR/policies"
printf 'version: "1"\ndefault_action: allow\npolicies: []\n' >"$HOME_DIR/policies/allow.yaml"
env -u LD_PRELOAD RAMPART_HOME="$HOME_DIR" "$RAMPART" serve --port 0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
PIDS+=($!)
for _ in $(seq 100); do [[ -S $HOME_DIR/rampart.sock ]] && grep -q listening "$WORK/serve.out" && break; sleep 0.1; done
PORT=$(sed -n 's#.*http://127.0.0.1:\([0-9]*\).*#\1#p' "$WORK/serve.out" | head -1)
TOKEN=$(cat "$HOME_DIR/token")
"$WORK/canned" "$WORK/canned.sock" &
PIDS+=($!)
taskset -c 0 "$WORK/canned" "$WORK/canned0.sock" &
PIDS+=($!)
sleep 0.3

names=(bare load canned fast http)
cmds=(
    "$WORK/spawn_loop $N /bin/true"
    "$WORK/spawn_loop $N /bin/true $LIB"
    "env RAMPART_URL=unix:$WORK/canned.sock LD_PRELOAD=$LIB $WORK/spawn_loop $N /bin/true"
    "env RAMPART_URL=unix:$HOME_DIR/rampart.sock RAMPART_TOKEN=$TOKEN LD_PRELOAD=$LIB $WORK/spawn_loop $N /bin/true"
    "env RAMPART_URL=http://127.0.0.1:$PORT RAMPART_TOKEN=$TOKEN LD_PRELOAD=$LIB $WORK/spawn_loop $N /bin/true"
)
declare -A samples
for ((r = 0; r < ROUNDS; r++)); do
    for i in "${!names[@]}"; do
        ns=$(${cmds[$i]} | tail -1)
        samples[${names[$i]}]+="$((ns / N)) "
    done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A med
for n in "${names[@]}"; do med[$n]=$(median "${samples[$n]}"); done
ratio() { awk -v a="$1" -v b="${med[bare]}" 'BEGIN {printf "%.2f", a / b}'; }
us() { awk -v a="$1" 'BEGIN {printf "%.0f", a / 1000}'; }
delta() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.0f", (a - b) / 1000}'; }

same=$(taskset -c 0 "$WORK/ping" "$WORK/canned0.sock" x 5000)
other=$(taskset -c 1 "$WORK/ping" "$WORK/canned0.sock" x 5000 2>/dev/null || echo 0)
fastping=$("$WORK/ping" "$HOME_DIR/rampart.sock" "$TOKEN" 5000)

echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs; $ROUNDS rounds of $N spawns, medians"
echo
echo "| spawn of /bin/true | µs per spawn | × bare | step adds |"
echo "|---|---|---|---|"
echo "| bare | $(us "${med[bare]}") | 1.00 | |"
echo "| library loaded in the child only | $(us "${med[load]}") | $(ratio "${med[load]}") | $(delta "${med[load]}" "${med[bare]}") µs: loading librampart.so |"
echo "| checked by a canned server (answers at once) | $(us "${med[canned]}") | $(ratio "${med[canned]}") | $(delta "${med[canned]}" "${med[load]}") µs: the request/answer round trip and the parent's check |"
echo "| checked by \`rampart serve\`, Unix socket (fast path) | $(us "${med[fast]}") | $(ratio "${med[fast]}") | $(delta "${med[fast]}" "${med[canned]}") µs: the decision (auth, JSON, policy, program names, audit write) |"
echo "| checked by \`rampart serve\`, TCP (HTTP stack) | $(us "${med[http]}") | $(ratio "${med[http]}") | $(delta "${med[http]}" "${med[fast]}") µs vs the fast path |"
echo
echo "| one request/answer round trip | µs |"
echo "|---|---|"
echo "| both ends on one CPU (canned server) | $(us "$same") |"
echo "| on two CPUs (canned server) | $(us "$other") |"
echo "| \`rampart serve\`'s fast path, unpinned | $(us "$fastping") |"
