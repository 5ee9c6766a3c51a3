#!/bin/sh
# run_one.sh BINARY JOBS WORKDIR: run one Criterion test binary, JOBS tests at a time, for
# tests/run.sh. Leaves WORKDIR/<name>.out (its output, then the sanitizer reports of every
# process it started) and WORKDIR/<name>.res ("<passed> <failed>"), and prints the output.
set -u
t=$1
jobs=$2
work=$3
name=$(basename "$t")
out=$work/$name.out
# Every process the test starts (busgated, its workers, echo-service...) writes its
# sanitizer reports here, not to a log the test deletes. World-writable: workers that
# dropped privileges write here too. Harmless in the plain build.
san=$work/$name.san
mkdir -p "$san"
chmod 1777 "$san"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$san/asan"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$san/ubsan:print_stacktrace=1"

start=$(date +%s)
"$t" --jobs "$jobs" --timeout 180 >"$out" 2>&1
rc=$?
line=$(grep 'Synthesis: Tested:' "$out" | tail -n 1)
p=$(printf '%s' "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
f=$(printf '%s' "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
c=$(printf '%s' "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
if [ -z "$p" ]; then
    echo "run.sh: $t printed no Criterion synthesis (exit $rc)" >>"$out"
    p=0; f=1; c=0
elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "$c" -eq 0 ]; then
    f=1
fi
# Criterion counts a test as passed even when a sanitizer reported on its exit.
if grep -qE 'SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$out"; then
    echo "run.sh: $t: sanitizer report (see above)" >>"$out"
    f=$((f + 1))
fi
# A file with only LeakSanitizer's "False leaks are possible" note is no report.
for r in "$san"/*; do
    [ -f "$r" ] || continue
    if grep -qE 'ERROR: |SUMMARY: |runtime error' "$r"; then
        {
            echo "run.sh: $t: sanitizer report of process ${r##*.}:"
            cat "$r"
        } >>"$out"
        f=$((f + 1))
    fi
done
rm -rf "$san"
echo "$name: $p passed, $((f + c)) failed in $(($(date +%s) - start)) s" >>"$out"
echo "$p $((f + c))" >"$work/$name.res"
cat "$out"
