#!/bin/sh
# run.sh BUILD RESULTS: run every Criterion test binary of one build, append
# "<build> <passed> <failed>" to RESULTS, exit non-zero if any test failed.
set -u
build=$1
results=$2
passed=0
failed=0
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    out=$(mktemp)
    "$t" --jobs 2 --timeout 120 >"$out" 2>&1
    rc=$?
    cat "$out"
    line=$(grep 'Synthesis: Tested:' "$out" | tail -n 1)
    p=$(printf '%s' "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    f=$(printf '%s' "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
    c=$(printf '%s' "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
    if [ -z "$p" ]; then
        echo "run.sh: $t printed no Criterion synthesis (exit $rc)"
        p=0; f=1; c=0
    elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "$c" -eq 0 ]; then
        f=1
    fi
    # Criterion counts a test as passed even when a sanitizer reported on its exit.
    if grep -qE 'SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$out"; then
        echo "run.sh: $t: sanitizer report (see above)"
        f=$((f + 1))
    fi
    passed=$((passed + p))
    failed=$((failed + f + c))
    rm -f "$out"
done
echo "$build $passed $failed" >>"$results"
echo "$build: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
