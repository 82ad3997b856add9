#!/bin/sh
# The standard profile's corpus per family (issue 14): blocked (deny/ask) and allowed
# (allow/log) cases. Every case is also checked against the profile by the same run.
set -eu
cd "$(dirname "$0")/.."
cargo test -q -p rampart-policy --test profiles -- --nocapture --test-threads 1 \
    standard_corpus_report_per_family standard_profile_decides_as_its_corpus_says
