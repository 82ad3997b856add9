#!/usr/bin/env bash
# Runs the C contract tests (tests/entry_points.c) with librampart.so preloaded under
# valgrind memcheck: any invalid read/write or use of uninitialised memory in the library
# fails the run. Children are not traced (they would be valgrind's own exec), so the
# checked code is the parent side of every entry point: system, popen, posix_spawn*, and
# the exec wrappers as far as they go before the real exec.
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
LIB=${RAMPART_LIB:-$HERE/build/librampart.so}
if ! command -v valgrind >/dev/null; then
    echo "valgrind is not installed (apt-get install valgrind)" >&2
    exit 2
fi
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
"$PYTHON" "$HERE/tests/fake_server.py" --log "$WORK/log" >"$WORK/port" &
SERVER=$!
for _ in $(seq 100); do [[ -s "$WORK/port" ]] && break; sleep 0.05; done
export PATH=/usr/local/bin:/usr/bin:/bin
# valgrind keeps our LD_PRELOAD next to its own preloads for the client.
RAMPART_SESSION=entry-points RAMPART_URL=http://127.0.0.1:$(cat "$WORK/port") LD_PRELOAD="$LIB" \
    valgrind --quiet --error-exitcode=99 --trace-children=no \
    "$HERE/build/entry_points" "$WORK/log" "$LIB"
rc=$?
echo "memcheck exit status: $rc (0 = clean, 99 = valgrind found errors)"
exit $rc
