#!/bin/sh
# summary.sh RESULTS: print the suite's closing line over every build that ran.
set -u
passed=0
failed=0
while read -r build p f; do
    passed=$((passed + p))
    failed=$((failed + f))
done <"$1"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
