#!/bin/sh
# run.sh BUILD RESULTS [LABEL JOBS BINARY...]: run every Criterion test binary of one
# build, 4 tests at a time (they mostly wait on their own servers: 2 cores keep up), or the
# binaries named, JOBS tests at a time, counted under LABEL; append
# "<label> <passed> <failed>" to RESULTS, exit non-zero if any test failed.
set -u
build=$1
results=$2
label=$build
jobs=4
shift 2
if [ $# -ge 3 ]; then
    label=$1
    jobs=$2
    shift 2
else
    set -- "$build"/tests/test_*
fi
passed=0
failed=0
# Every process a test starts (busgated, its workers, echo-service...) writes its
# sanitizer reports to files here, not to a log the test deletes: each binary's are
# shown and counted after it. Harmless in the plain build.
sanlog=$(mktemp -d)
chmod 1777 "$sanlog" # workers that dropped privileges write here too
trap 'rm -rf "$sanlog"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$sanlog/asan"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$sanlog/ubsan:print_stacktrace=1"
for t in "$@"; do
    [ -x "$t" ] || continue
    out=$(mktemp)
    "$t" --jobs "$jobs" --timeout 180 >"$out" 2>&1
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
    # A file with only LeakSanitizer's "False leaks are possible" note is no report.
    for r in "$sanlog"/*; do
        [ -f "$r" ] || continue
        if grep -qE 'ERROR: |SUMMARY: |runtime error' "$r"; then
            echo "run.sh: $t: sanitizer report of process ${r##*.}:"
            cat "$r"
            f=$((f + 1))
        fi
        rm -f "$r"
    done
    passed=$((passed + p))
    failed=$((failed + f + c))
    rm -f "$out"
done
echo "$label $passed $failed" >>"$results"
echo "$label: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
