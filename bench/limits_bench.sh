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
# shellcheck disable=SC2317 # functions called from traps and through wait_until
set -u

build=${1:-build}
secs=${LIMITS_BENCH_SECONDS:-6}
rounds=${LIMITS_BENCH_ROUNDS:-2}
dir=$(mktemp -d /tmp/busgate-limitsbench-XXXXXX) || exit 1
pids=""
failed=0

say() { printf 'limits: %s\n' "$*"; }

stop_group() { # dash's kill takes no "--": "-PID" names the group
    kill -TERM "-$1" 2>/dev/null || return 0
    i=0
    while [ $i -lt 30 ] && kill -0 "-$1" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "-$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

stop_all() {
    trap - INT TERM EXIT
    [ -n "${gw_pid:-}" ] && stop_group "$gw_pid"
    for p in $pids; do order="$p ${order:-}"; done
    for p in ${order:-}; do stop_group "$p"; done
    if [ "${LIMITS_BENCH_KEEP:-0}" = 1 ]; then say "kept $dir"; else rm -rf "$dir"; fi
}

trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

start() { # name, command...: its own process group, output to DIR/name.out
    name=$1
    shift
    setsid "$@" >"$dir/$name.out" 2>&1 &
    last_pid=$!
}

wait_until() { # tenths of a second, command...
    n=$1
    shift
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -ge "$n" ] && return 1
        sleep 0.1
    done
}

port_busy() {
    hex=$(printf '%04X' "$1")
    awk -v h=":$hex" 'NR > 1 && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

free_port() {
    while :; do
        p=$(($(od -An -N2 -tu2 /dev/urandom) % 20000 + 30000))
        [ "$p" != "${vport:-}" ] && ! port_busy "$p" && break
    done
    echo "$p"
}

for tool in wrk valkey-server valkey-cli curl; do
    command -v $tool >/dev/null 2>&1 || { say "$tool is missing (bench/http_bench.sh installs wrk)"; exit 1; }
done
for bin in busgated echo-service; do
    [ -x "$build/$bin" ] || { say "$build/$bin is not built (make all)"; exit 1; }
done

vport=$(free_port)
gport=$(free_port)

write_ini() { # extra sections
    cat >"$dir/busgate.ini" <<INI
[gateway]
instance_id = limitsbench
listen = 127.0.0.1:$gport
workers = 2
pid_file = $dir/busgated.pid
error_log = $dir/busgated.log
access_log = off
log_level = notice
drain_timeout = 2s

[valkey]
url = valkey://127.0.0.1:$vport

[messaging]
heartbeat_interval = 1s
heartbeat_expiry = 3s

$1
INI
}

echo_ok() {
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gport/echo/1")
    [ "$code" = 200 ]
}

# wrk scripts: a POST without a key, and one with a key no request used before.
cat >"$dir/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "x"
LUA
cat >"$dir/post-key.lua" <<'LUA'
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
    return wrk.format("POST", nil, { ["Idempotency-Key"] = "k-" .. run .. "-" .. tid .. "-" .. n }, "x")
end
LUA

# One configuration: busgated started with it, warmed up, measured, stopped.
run_config() { # label, extra ini sections, [wrk script]
    label=$1
    script=${3:+-s $3}
    write_ini "$2"
    start "busgated-$label" "$build/busgated" -g -c "$dir/busgate.ini"
    gw_pid=$last_pid
    if ! wait_until 150 echo_ok; then
        say "$label: busgated did not answer GET /echo/1 with 200 within 15 s"
        tail -n 10 "$dir/busgated.log" 2>/dev/null
        stop_group "$gw_pid"
        gw_pid=""
        return 1
    fi
    timeout 10 wrk -t2 -c16 -d2s "http://127.0.0.1:$gport/echo/1" >/dev/null 2>&1
    out="$dir/wrk-$label.txt"
    # shellcheck disable=SC2086 # script is "-s FILE" or empty
    timeout $((secs + 20)) wrk -t2 -c64 -d"${secs}s" --timeout 5s --latency $script \
        "http://127.0.0.1:$gport/echo/1" >"$out" 2>&1
    stop_group "$gw_pid"
    gw_pid=""
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p99=$(awk '$1 == "99%" { print $2 }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    [ -n "$rps" ] || { say "$label: wrk failed:"; sed 's/^/    /' "$out"; return 1; }
    [ -n "$non2xx" ] && say "WARNING: $label: $non2xx answers were not 2xx (a limit was reached?)"
    results="$results $label=$rps"
    say "$label c=64 rps=$rps p99=$p99"
}

start valkey valkey-server --port "$vport" --bind 127.0.0.1 --dir "$dir" --save '' \
    --appendonly no --daemonize no
pids="$pids $last_pid"
wait_until 50 valkey-cli -p "$vport" ping || { say "valkey-server did not start"; exit 1; }
write_ini ""
for n in 1 2; do
    start "echo-$n" "$build/echo-service" -c "$dir/busgate.ini" -n "echo-$n"
    pids="$pids $last_pid"
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
    run_config off "" || failed=1
    run_config backpressure "$limits" || failed=1
    run_config breaker "$breaker" || failed=1
    run_config both "$limits
$breaker" || failed=1
    run_config post-nokey "" "$dir/post.lua" || failed=1
    run_config post-key "" "$dir/post-key.lua" || failed=1
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
