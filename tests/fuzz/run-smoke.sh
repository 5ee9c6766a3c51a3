#!/bin/sh
# run-smoke.sh: bounded libFuzzer run of every fuzz target over its seed corpus.
#   run-smoke.sh --probe CC          exit 0 when CC can build and link a libFuzzer target
#   run-smoke.sh FUZZ_BUILD [SECS]   run each built target for SECS seconds (default 10);
#                                    exit 1 if any target crashed, leaked or timed out
# New inputs go to a temp dir, never into the seed corpus; crash inputs are kept as
# FUZZ_BUILD/artifacts/<target>-crash-* with the log in FUZZ_BUILD/<target>.log.
set -u
here=$(cd "$(dirname "$0")" && pwd)

probe() {
    tmp=$(mktemp -d) || return 1
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
        >"$tmp/probe.c"
    "$1" -fsanitize=fuzzer,address,undefined -o "$tmp/probe" "$tmp/probe.c" >/dev/null 2>&1 &&
        "$tmp/probe" -runs=1 >/dev/null 2>&1
    rc=$?
    rm -rf "$tmp"
    return $rc
}

if [ "${1:-}" = "--probe" ]; then
    probe "${2:-clang}"
    exit $?
fi

build=${1:?usage: run-smoke.sh FUZZ_BUILD [SECS]}
secs=${2:-10}
failed=0
ran=0
mkdir -p "$build/artifacts"
for src in "$here"/fuzz_*.c; do
    [ -f "$src" ] || continue
    name=$(basename "$src" .c)
    bin="$build/$name"
    if [ ! -x "$bin" ]; then
        echo "fuzz-smoke: $name: not built ($bin missing)"
        failed=$((failed + 1))
        continue
    fi
    work=$(mktemp -d)
    # -max_total_time bounds the run; -timeout bounds one input (a hang counts as failure).
    set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/$name-"
    [ -f "$here/$name.dict" ] && set -- "$@" -dict="$here/$name.dict"
    set -- "$@" "$work"
    [ -d "$here/corpus/$name" ] && set -- "$@" "$here/corpus/$name"
    "$bin" "$@" >"$build/$name.log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$name.log" | tail -n 1)
    rm -rf "$work"
    ran=$((ran + 1))
    if [ "$rc" -ne 0 ]; then
        echo "fuzz-smoke: $name: FAILED (exit $rc), see $build/$name.log and $build/artifacts/"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz_|.*invariant failed)' "$build/$name.log" | head -n 5
        failed=$((failed + 1))
    else
        echo "fuzz-smoke: $name: ok (${runs:-?} inputs in ${secs}s)"
    fi
done
[ "$ran" -eq 0 ] && [ "$failed" -eq 0 ] && echo "fuzz-smoke: no fuzz targets in $here"
[ "$failed" -eq 0 ]
