#!/bin/sh
# Started by shells.sh through `env -i` / `env -u LD_PRELOAD`: this shell's own exec of
# rm must still be checked. Prints what the environment looked like, then tries.
echo "LD_PRELOAD set: $([ -n "$LD_PRELOAD" ] && echo yes || echo no), RAMPART_AGENT=$RAMPART_AGENT"
rm -rf "$1"
