#!/bin/sh
# ratelimit_bench.sh BUILD: what rate limits cost. wrk -t2 -c64 against busgated (2 workers)
# in front of two echo-service instances, three times on one private Valkey: no rate_limit
# line, a rule that covers every request with a limit never reached in local mode (shared
# memory), and the same rule in cluster mode (a Valkey script per lease of tokens). Prints
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
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init ratelimit rlbench "${RL_BENCH_KEEP:-0}"
failed=0

have_tools " (bench/http_bench.sh installs wrk)" wrk valkey-server valkey-cli curl || exit 1
have_built "$build" busgated echo-service || exit 1

vport=$(free_port)
gport=$(free_port)

write_ini() { # mode: none, local or cluster
    {
        gateway_ini rlbench "$gport" busgated
        if [ "$1" != none ]; then
            # Every request is covered; a million per second is never reached here.
            printf '\n[limits]\nrate_mode = %s\nrate_limit = * / 1000000/s burst=1000000\n' "$1"
        fi
    } >"$dir/busgate-$1.ini"
}

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
    if ! wait_until 300 http_ok "http://127.0.0.1:$gport/echo/1"; then
        say "$1: GET /echo/1 never answered 200"
        tail -n 10 "$dir/busgated.log" 2>/dev/null
    else
        wrk_warmup "http://127.0.0.1:$gport/echo/1"
        out="$dir/wrk-$1.txt"
        wrk_run "$out" "$secs" -t2 -c64 --timeout 5s "http://127.0.0.1:$gport/echo/1"
        wrk_figures "$out"
        [ -n "$rps" ] && say "$1 c=64 rps=$rps p50=$p50 p99=$p99 non2xx=${non2xx:-0}"
    fi
    # This run's processes only: Valkey stays for the next one.
    for p in $pids; do
        case " $keep " in *" $p "*) ;; *) stop_group "$p" ;; esac
    done
    pids=$keep
    [ -n "$rps" ]
}

start_valkey || { say "valkey-server did not start"; exit 1; }
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
