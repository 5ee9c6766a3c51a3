#!/bin/sh
# limits_bench.sh BUILD: what queue-depth backpressure ([limits]), the circuit breaker
# ([breaker]) and Idempotency-Key ([idempotency], a POST with a fresh key each time: one
# SET NX GET and one EVAL more per request, against the same POST without a key) cost. wrk -t2 -c64 against busgated (2 workers, seccomp on) in front of two
# echo-service instances, a run per configuration: both off, backpressure on,
# breaker on, both on, in that order, repeated LIMITS_BENCH_ROUNDS times (the spread
# between rounds of one configuration is the noise).
# "On" means enabled with limits never reached (backlog_max 1000000, backlog_max_age 1h,
# failures 5 against a service that never fails), so the figure is the cost of the checks
# on every request. Prints req/s and p99 per run, each configuration's mean and its ratio
# to the mean of "off"; never judges them. Exits 1 when a run could not be made.
#
# Loopback, free ports, one private temp dir, everything stopped on exit. Knobs:
#   LIMITS_BENCH_SECONDS=6   length of each measured run
#   LIMITS_BENCH_ROUNDS=2    times each configuration is measured
#   LIMITS_BENCH_KEEP=1      keep the temp dir afterwards
#   LIMITS_BENCH_ONLY=idem   only the Idempotency-Key pair (or "limits": only the other four)
# shellcheck disable=SC2317 # functions called from traps and through wait_until
set -u

build=${1:-build}
secs=${LIMITS_BENCH_SECONDS:-6}
rounds=${LIMITS_BENCH_ROUNDS:-2}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init limits limitsbench "${LIMITS_BENCH_KEEP:-0}"
failed=0

# stop_all (lib.sh): the gateway of the configuration being measured first (not in pids:
# run_config starts and stops one per configuration).
on_stop() { [ -n "${gw_pid:-}" ] && stop_group "$gw_pid"; }

have_tools " (bench/http_bench.sh installs wrk)" wrk valkey-server valkey-cli curl || exit 1
have_built "$build" busgated echo-service || exit 1

vport=$(free_port)
gport=$(free_port)

write_ini() { # extra sections
    {
        gateway_ini limitsbench "$gport" busgated
        printf '\n%s\n' "$1"
    } >"$dir/busgate.ini"
}

# wrk scripts: a POST without a key, and one with a key no request used before.
# Both run the same Lua per request with a header of the same size, so the difference is
# what busgate does with the key, not what wrk does to make it.
for hdr in X-Not-Idempotent Idempotency-Key; do
    case $hdr in Idempotency-Key) f=post-key.lua ;; *) f=post.lua ;; esac
    sed "s/@HEADER@/$hdr/" >"$dir/$f" <<'LUA'
-- Each wrk thread has its own Lua state: number them in setup, so no two requests of
-- the run share a key (the run's start time keeps runs apart).
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end
function init(args)
    n = 0
    run = os.time()
end
request = function()
    n = n + 1
    return wrk.format("POST", nil, { ["@HEADER@"] = "k-" .. run .. "-" .. tid .. "-" .. n }, "x")
end
LUA
done

# One configuration: busgated started with it, warmed up, measured, stopped.
run_config() { # label, extra ini sections, [wrk script]
    label=$1
    script=${3:+-s $3}
    write_ini "$2"
    spawn "busgated-$label" "$build/busgated" -g -c "$dir/busgate.ini"
    gw_pid=$last_pid
    if ! wait_until 150 http_ok "http://127.0.0.1:$gport/echo/1"; then
        say "$label: busgated did not answer GET /echo/1 with 200 within 15 s (last: $(http_status "http://127.0.0.1:$gport/echo/1"))"
        tail -n 10 "$dir/busgated.log" 2>/dev/null
        stop_group "$gw_pid"
        gw_pid=""
        return 1
    fi
    wrk_warmup "http://127.0.0.1:$gport/echo/1"
    out="$dir/wrk-$label.txt"
    # shellcheck disable=SC2086 # script is "-s FILE" or empty
    wrk_run "$out" "$secs" -t2 -c64 --timeout 5s $script "http://127.0.0.1:$gport/echo/1"
    stop_group "$gw_pid"
    gw_pid=""
    wrk_figures "$out"
    [ -n "$rps" ] || { say "$label: wrk failed:"; sed 's/^/    /' "$out"; return 1; }
    [ -n "$non2xx" ] && say "WARNING: $label: $non2xx answers were not 2xx (a limit was reached?)"
    results="$results $label=$rps"
    say "$label c=64 rps=$rps p99=$p99"
}

start_valkey || { say "valkey-server did not start"; exit 1; }
write_ini ""
for n in 1 2; do
    start "echo-$n" "$build/echo-service" -c "$dir/busgate.ini" -n "echo-$n"
done

limits="[limits]
backlog_max = 1000000
backlog_max_age = 1h"
breaker="[breaker]
failures = 5"
results=""
say "wrk -t2 -c64, ${secs}s per run, $rounds rounds, $(nproc) CPUs; limits enabled but never reached"
r=1
while [ $r -le "$rounds" ]; do
    if [ "${LIMITS_BENCH_ONLY:-}" != idem ]; then
        run_config off "" || failed=1
        run_config backpressure "$limits" || failed=1
        run_config breaker "$breaker" || failed=1
        run_config both "$limits
$breaker" || failed=1
    fi
    if [ "${LIMITS_BENCH_ONLY:-}" != limits ]; then
        run_config post-nokey "" "$dir/post.lua" || failed=1
        run_config post-key "" "$dir/post-key.lua" || failed=1
    fi
    r=$((r + 1))
done

# The mean of each configuration over the rounds, and its ratio to the mean of "off".
mean() { echo "$results" | tr ' ' '\n' | awk -F= -v l="$1" '$1 == l { s += $2; n++ } END { if (n) printf "%.0f", s / n }'; }
base=$(mean off)
if [ -n "$base" ]; then
    for label in off backpressure breaker both; do
        m=$(mean $label)
        [ -n "$m" ] || continue
        say "$(printf '%-13s' $label) mean rps=$m, $(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.3f of off (%+.1f%%)", a / b, (a / b - 1) * 100 }')"
    done
fi
# Idempotency-Key against the same POST without one.
base=$(mean post-nokey)
m=$(mean post-key)
if [ -n "$base" ] && [ -n "$m" ]; then
    say "$(printf '%-13s' post-nokey) mean rps=$base"
    say "$(printf '%-13s' post-key) mean rps=$m, $(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.3f of post-nokey (%+.1f%%)", a / b, (a / b - 1) * 100 }')"
fi
exit $failed
