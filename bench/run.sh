#!/bin/sh
# run.sh BUILD: the `make bench` driver. Runs each benchmark step in order; the
# steps print figures and never pass or fail on them (a step that cannot run at
# all makes the whole run exit non-zero). Add a benchmark: put bench/NAME.c in
# the tree (the Makefile builds it as BUILD/bench/NAME) and add a `step` line.
set -u
build=${1:-build}
failed=0

step() {
    echo "== $*"
    if ! "$@"; then
        echo "== step failed: $*"
        failed=1
    fi
    echo
}

# Pipelined XADD through our async bus vs valkey-benchmark -P 16, one private server.
step "$build/bench/bench_bus"

# ENDPOINTS_UPDATE on the bus until the route is visible in shared memory.
step "$build/bench/bench_control"

# Route lookup and publish cost of the shared routing table.
step "$build/bench/bench_routes"

# The headline: wrk against busgate (2 workers, 2 echo instances) and nginx proxying.
step sh bench/http_bench.sh "$build"

# One streamed 100 MiB body: MB/s through busgate, and through nginx when installed.
step sh bench/stream_bench.sh "$build"

exit $failed
