#!/bin/sh
# run.sh BUILD RESULTS [LABEL JOBS BINARY...]: run every Criterion test binary of one
# build, two binaries at a time and 4 tests at a time in each (they mostly wait on their
# own servers: 2 cores keep up), or the binaries named, one at a time and JOBS tests at a
# time, counted under LABEL; append "<label> <passed> <failed>" to RESULTS, exit non-zero
# if any test failed. TEST_BINARIES_AT_ONCE overrides how many binaries run at once.
set -u
build=$1
results=$2
label=$build
jobs=4
at_once=${TEST_BINARIES_AT_ONCE:-2}
shift 2
if [ $# -ge 3 ]; then
    label=$1
    jobs=$2
    at_once=${TEST_BINARIES_AT_ONCE:-1}
    shift 2
else
    set -- "$build"/tests/test_*
fi
work=$(mktemp -d)
chmod 711 "$work" # workers that dropped privileges reach their sanitizer directory
trap 'rm -rf "$work"' EXIT
here=$(dirname "$0")

for t in "$@"; do
    [ -x "$t" ] && printf '%s\n' "$t"
done | xargs -r -P "$at_once" -I{} sh "$here/run_one.sh" {} "$jobs" "$work"

passed=0
failed=0
for t in "$@"; do
    [ -x "$t" ] || continue
    res=$work/$(basename "$t").res
    if [ -f "$res" ]; then
        read -r p f <"$res"
    else
        echo "run.sh: $t left no result"
        p=0; f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
done
echo "$label $passed $failed" >>"$results"
echo "$label: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
