#!/bin/sh
# ratelimit_bench.sh BUILD: what rate limits cost. wrk -t2 -c64 against busgated (2 workers)
# in front of two echo-service instances, three times on one private Valkey: no rate_limit
# line, a rule that covers every request with a limit never reached in local mode (shared
# memory), and the same rule in cluster mode (one Valkey script per request). Prints
# requests/s, p50, p99 and non-2xx counts per run and the ratios to the run without limits;
# never judges the figures. Exits 1 when a run could not be made.
#
# Loopback, free ports, one temp dir, everything stopped on exit. Environment knobs:
#   RL_BENCH_SECONDS=8   length of each measured run
#   RL_BENCH_KEEP=1      keep the temp dir (configs, logs, wrk output) afterwards
# shellcheck disable=SC2317 # functions called from traps and through wait_until
set -u

build=${1:-build}
secs=${RL_BENCH_SECONDS:-8}
dir=$(mktemp -d /tmp/busgate-rlbench-XXXXXX) || exit 1
pids=""
failed=0

say() { printf 'ratelimit: %s\n' "$*"; }

stop_group() {
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
    order=""
    for p in $pids; do order="$p $order"; done
    for p in $order; do stop_group "$p"; done
    pids=""
    if [ "${RL_BENCH_KEEP:-0}" = 1 ]; then say "kept $dir"; else rm -rf "$dir"; fi
}

trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

start() { # name, command...: its own process group, so stopping it stops what it forked
    name=$1
    shift
    setsid "$@" >"$dir/$name.out" 2>&1 &
    pids="$pids $!"
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

write_ini() { # mode: none, local or cluster
    {
        printf '[gateway]\ninstance_id = rlbench\nlisten = 127.0.0.1:%s\nworkers = 2\n' "$gport"
        printf 'pid_file = %s/busgated.pid\nerror_log = %s/busgated.log\n' "$dir" "$dir"
        printf 'access_log = off\nlog_level = notice\ndrain_timeout = 2s\n'
        printf '[valkey]\nurl = valkey://127.0.0.1:%s\n' "$vport"
        printf '[messaging]\nheartbeat_interval = 1s\nheartbeat_expiry = 3s\n'
        if [ "$1" != none ]; then
            # Every request is covered; a million per second is never reached here.
            printf '[limits]\nrate_mode = %s\nrate_limit = * / 1000000/s burst=1000000\n' "$1"
        fi
    } >"$dir/busgate-$1.ini"
}

echo_ok() { [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gport/echo/1")" = 200 ]; }

# One gateway run: busgated with the mode's ini and two echo instances, wrk, then stopped.
run_mode() { # mode; sets rps
    rps=""
    write_ini "$1"
    if ! "$build/busgated" -t -c "$dir/busgate-$1.ini" >"$dir/check-$1.out" 2>&1; then
        say "$1: busgated -t rejects the bench config:"
        cat "$dir/check-$1.out"
        return 1
    fi
    keep=$pids
    start "busgated-$1" "$build/busgated" -g -c "$dir/busgate-$1.ini"
    start "echo1-$1" "$build/echo-service" -c "$dir/busgate-$1.ini" -n echo-1
    start "echo2-$1" "$build/echo-service" -c "$dir/busgate-$1.ini" -n echo-2
    if ! wait_until 300 echo_ok; then
        say "$1: GET /echo/1 never answered 200"
        tail -n 10 "$dir/busgated.log" 2>/dev/null
    else
        timeout 10 wrk -t2 -c16 -d2s "http://127.0.0.1:$gport/echo/1" >/dev/null 2>&1 # warm-up
        out="$dir/wrk-$1.txt"
        timeout $((secs + 20)) wrk -t2 -c64 -d"${secs}s" --timeout 5s --latency \
            "http://127.0.0.1:$gport/echo/1" >"$out" 2>&1
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
        p50=$(awk '$1 == "50%" { print $2 }' "$out")
        p99=$(awk '$1 == "99%" { print $2 }' "$out")
        non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
        [ -n "$rps" ] && say "$1 c=64 rps=$rps p50=$p50 p99=$p99 non2xx=${non2xx:-0}"
    fi
    # This run's processes only: Valkey stays for the next one.
    for p in $pids; do
        case " $keep " in *" $p "*) ;; *) stop_group "$p" ;; esac
    done
    pids=$keep
    [ -n "$rps" ]
}

start valkey valkey-server --port "$vport" --bind 127.0.0.1 --dir "$dir" --save '' \
    --appendonly no --daemonize no
wait_until 50 valkey-cli -p "$vport" ping || { say "valkey-server did not start"; exit 1; }
say "$(nproc) CPUs, ${secs}s per run, wrk -t2 -c64 GET /echo/1, 2 workers, 2 echo instances"

base=""
for mode in none local cluster; do
    if run_mode $mode; then
        if [ $mode = none ]; then
            base=$rps
        elif [ -n "$base" ]; then
            say "ratio $mode/none = $(awk -v a="$rps" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
        fi
    else
        failed=1
    fi
done
exit $failed
