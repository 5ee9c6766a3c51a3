#!/bin/sh
# run.sh BUILD: the `make bench` driver. Runs each benchmark step in order; the
# steps print figures and never pass or fail on them (a step that cannot run at
# all makes the whole run exit non-zero). Add a benchmark: put bench/NAME.c in
# the tree (the Makefile builds it as BUILD/bench/NAME) and add a `step` line.
set -u
build=${1:-build}
failed=0

# Each step's wall time is printed after it (the whole run should stay near 15 minutes on 2
# cores).
step() {
    echo "== $*"
    t0=$(date +%s)
    if ! "$@"; then
        echo "== step failed: $*"
        failed=1
    fi
    echo "== took $(($(date +%s) - t0)) s"
    echo
}

# Pipelined XADD through our async bus vs valkey-benchmark -P 16, one private server.
step "$build/bench/bench_bus"

# ENDPOINTS_UPDATE on the bus until the route is visible in shared memory.
step "$build/bench/bench_control"

# Route lookup and publish cost of the shared routing table.
step "$build/bench/bench_routes"

# The aggregated OpenAPI document: first build and rebuilds at 10k endpoints.
step "$build/bench/bench_openapi"

# Bearer-token authentication per request (RS256, ES256, EdDSA, HS256), in process.
step "$build/bench/bench_auth"

# The same gateway with and without [auth] (RS256, require = all) under wrk -c64.
step sh bench/auth_http_bench.sh "$build"

# The headline: wrk against busgate (2 workers, 2 echo instances) and nginx proxying, with the
# cost per request (CPU per process class, Valkey commands; BENCH_PROFILE=1: syscalls).
step sh bench/http_bench.sh "$build"

# The cost curves: routes in the table, body size (beside nginx), connections (and 10k idle
# ones), workers. One alone: sh bench/curves.sh build body
step sh bench/curves.sh "$build"

# Rate limits at 64 connections: none, local (shared memory), cluster (Valkey script).
step sh bench/ratelimit_bench.sh "$build"

# What backpressure and the circuit breaker cost: their per-request checks in CPU time,
# then req/s at 64 connections, off vs on.
step "$build/bench/bench_limits"
step sh bench/limits_bench.sh "$build"

# One streamed 100 MiB body: MB/s through busgate, and through nginx when installed.
step sh bench/stream_bench.sh "$build"

# req/s at 64 connections on one Valkey, then on a 3-primary Valkey Cluster.
step sh bench/cluster_bench.sh "$build"

exit $failed
