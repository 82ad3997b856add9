#!/usr/bin/perl
# Perl's system(LIST) forks and execs directly (execvp); system(STRING) with shell
# metacharacters goes through /bin/sh. Both must be checked.  Usage: agent.pl VICTIM
use strict;
use warnings;

my $victim = shift @ARGV;
$| = 1;
my $r = system("echo", "perl ran");
print "system(echo) = $r\n";
$r = system("rm", "-rf", $victim);
print "system(rm) = $r, \$! = $!\n";
$r = system("true && rm -rf $victim");
print "system(shell string) = $r\n";
