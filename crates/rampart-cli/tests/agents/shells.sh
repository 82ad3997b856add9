#!/bin/sh
# Shell-shaped agents for tests/preload.rs: chains, Perl, find -exec, xargs and
# environment-clearing wrappers, each trying to delete VICTIM (which the seed policy's
# "rm -rf /<star>" rule denies) after running something harmless.
#
#   shells.sh DIR VICTIM     DIR holds one file, `listed-file`
#
# Every case prints "== case" and then "exit N" for the command's status, so the test can
# compare the whole output. The directory name must not contain "nc" (the seed asks).
dir=$1
victim=$2
here=$(dirname "$0")

echo "== bash -c chain (refused whole: the policy reads -c bodies)"
bash -c "ls $dir && rm -rf $victim" 2>&1
echo "exit $?"

echo "== bash chain on stdin (ls runs, rm is refused)"
echo "ls $dir && rm -rf $victim" | bash 2>&1
echo "exit $?"

echo "== perl system"
perl "$here/agent.pl" "$victim" 2>&1
echo "exit $?"

echo "== find -exec"
find "$dir/.." -maxdepth 1 -name victim -exec rm -rf {} + 2>&1
echo "exit $?"

echo "== xargs"
echo "$victim" | xargs rm -rf 2>&1
echo "exit $?"

echo "== env -i grandchild"
env -i /bin/sh "$here/rm_victim.sh" "$victim" 2>&1
echo "exit $?"

echo "== env -u LD_PRELOAD grandchild"
env -u LD_PRELOAD /bin/sh "$here/rm_victim.sh" "$victim" 2>&1
echo "exit $?"

test -d "$victim" && echo "victim kept"
