#!/usr/bin/env bash
# Load cost of librampart.so: runs /bin/true many times bare, with an empty C library
# preloaded (the floor for any preload library) and with librampart.so preloaded,
# interleaved in rounds so drift affects all three alike, and prints the ratios.
# /bin/true starts nothing, so no policy request is made: this is pure load cost.
#   ./bench/load_cost.sh [TOTAL_RUNS_PER_VARIANT=2000] [ROUNDS=20]
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
LIB=${RAMPART_LIB:-$HERE/build/librampart.so}
TOTAL=${1:-2000}
ROUNDS=${2:-20}
PER=$((TOTAL / ROUNDS))
CC=${CC:-cc}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
$CC -O2 -o "$WORK/spawn_loop" "$HERE/bench/spawn_loop.c"
echo 'void rampart_bench_empty(void) {}' >"$WORK/empty.c"
$CC -shared -fPIC -O2 -o "$WORK/empty.so" "$WORK/empty.c"
# The library must not find a server or print anything; nothing is asked anyway.
unset RAMPART_DEBUG
export RAMPART_URL=http://127.0.0.1:1
"$WORK/spawn_loop" 50 /bin/true "$LIB" >/dev/null # warm the page cache
for _ in $(seq "$ROUNDS"); do
    echo "$("$WORK/spawn_loop" "$PER" /bin/true) $("$WORK/spawn_loop" "$PER" /bin/true "$WORK/empty.so") $("$WORK/spawn_loop" "$PER" /bin/true "$LIB")"
done >"$WORK/rounds"
# Totals over all rounds, and the fastest round of each variant (least disturbed by
# whatever else the machine is doing).
awk -v per="$PER" -v size="$(stat -c %s "$LIB")" '
{ b += $1; e += $2; o += $3; n += per
  if (NR == 1 || $1 < mb) mb = $1; if (NR == 1 || $2 < me) me = $2; if (NR == 1 || $3 < mo) mo = $3 }
END {
    printf "runs per variant: %d (/bin/true, %d interleaved rounds)\n", n, NR
    printf "%-28s %8.1f us/run  (fastest round %7.1f)\n", "bare", b / n / 1000, mb / per / 1000
    printf "%-28s %8.1f us/run  (fastest round %7.1f)  ratio %.3f\n", "empty C library", e / n / 1000, me / per / 1000, e / b
    printf "%-28s %8.1f us/run  (fastest round %7.1f)  ratio %.3f\n", "librampart.so (" size " B)", o / n / 1000, mo / per / 1000, o / b
    printf "load cost ratio: %.3f overall, %.3f fastest rounds (target <= 1.10)\n", o / b, mo / mb
}' "$WORK/rounds"
# Repeatable counts beside the wall clock (which this shared, virtual machine makes noisy):
# what the dynamic linker has to resolve, and instructions of one preloaded /bin/true.
imports=$(readelf --dyn-syms -W "$LIB" | awk '$7 == "UND" && $8 != ""' | wc -l)
relocs=$(readelf -r -W "$LIB" | grep -c 'R_X86_64\|R_AARCH64' || true)
echo "librampart.so: $imports imported symbols, $relocs relocations"
if command -v valgrind >/dev/null; then
    for v in "$WORK/empty.so" "$LIB"; do
        # Through env(1), so that valgrind itself is not preloaded; the last count is
        # /bin/true's.
        n=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null --trace-children=yes \
            env LD_PRELOAD="$v" /bin/true 2>&1 | awk '/Collected/ {n = $NF} END {print n}')
        printf "%-28s %8s instructions (callgrind, /bin/true)\n" "$(basename "$v")" "$n"
    done
fi
