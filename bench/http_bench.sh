#!/bin/sh
# http_bench.sh BUILD: the headline benchmark. wrk against busgated (2 workers, seccomp on) in
# front of two echo-service instances, and in the same run against nginx proxying (keep-alive)
# to an nginx upstream that returns a body of the same size; 1 and 64 connections each.
# Prints requests/s, p50 and p99 per target, the ratio busgate/nginx at 64 connections, and
# for each target at 64 connections its cost per request (bench/cost.sh): CPU microseconds per
# request of each process class and of the rest of the machine ("other": the figures are only
# worth a side-by-side ratio when it is near 0), worker RSS, and for busgate Valkey's commands
# per request; never judges the figures. Exits 1 when a target could not run.
#
# Everything runs on loopback, on free ports, in one private temp dir, and is stopped on exit.
# Installs wrk and nginx-light (Debian) when missing. Environment knobs:
#   HTTP_BENCH_SECONDS=10      length of each measured run
#   HTTP_BENCH_LIMIT=115       the whole script is stopped after this many seconds (155 with
#                              BENCH_PROFILE=1)
#   BENCH_PROFILE=1            (or HTTP_BENCH_PROFILE=1) after the figures, two more runs:
#                              syscalls per request of the workers, the echo services and
#                              Valkey (perf stat; strace -c when perf cannot count them or
#                              with BENCH_SYSCALLS=strace), then perf record on one worker,
#                              echo-1 and Valkey (perturbs nothing measured)
#   HTTP_BENCH_ECHO_THREADS=N  handler threads of each echo-service (default: the SDK's)
#   HTTP_BENCH_REUSEPORT=1     busgated with reuseport = on (one listen socket per worker)
#   HTTP_BENCH_KEEP=1          keep the temp dir (configs, logs, wrk output) afterwards
# shellcheck disable=SC2317 # functions called from traps and through wait_until
set -u

build=${1:-build}
secs=${HTTP_BENCH_SECONDS:-10}
echo_opts=${HTTP_BENCH_ECHO_THREADS:+-w $HTTP_BENCH_ECHO_THREADS}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=cost.sh
. "$(dirname "$0")/cost.sh"
bench_init http httpbench "${HTTP_BENCH_KEEP:-0}"
failed=0

# ---------------------------------------------------------------- stop everything, always
# stop_all (lib.sh) stops the groups in pids newest first; before them, the watchdog, a wrk
# still running and the syscall counters of the profile mode (cost.sh).
on_stop() {
    [ -n "${watchdog:-}" ] && kill -KILL "-$watchdog" 2>/dev/null && wait "$watchdog" 2>/dev/null
    cost_on_stop
}

# The whole script stays under two minutes (at 10 s per run) even if something hangs. Its own
# process group, so stopping it also stops its sleep (never to outlive us and signal a reused
# pid).
profile=${BENCH_PROFILE:-${HTTP_BENCH_PROFILE:-0}}
limit=${HTTP_BENCH_LIMIT:-$((secs * 5 + 65 + profile * 40))}
setsid sh -c "sleep $limit; echo 'http: watchdog: over $limit s, stopping' >&2; kill -TERM $$" &
watchdog=$!

# ---------------------------------------------------------------- tools
install_pkg() { # package: for the benchmark only, printed, never starting a system service
    say "installing $1 (apt-get install -y $1), needed by this benchmark only"
    if [ "$(id -u)" -ne 0 ]; then
        say "not root: install $1 by hand"
        return 1
    fi
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        # Without it the nginx package would start a system nginx on port 80.
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >"$dir/apt.log" 2>&1 ||
        { apt-get update -qq >>"$dir/apt.log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >>"$dir/apt.log" 2>&1; }
    rc=$?
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ $rc -eq 0 ] || { say "apt-get install $1 failed:"; tail -n 5 "$dir/apt.log"; }
    return $rc
}

need() { # command, package
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || install_pkg "$2"
}

need wrk wrk || exit 1
need nginx nginx-light || exit 1
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
have_tools " (make deps installs it)" valkey-server valkey-cli curl || exit 1

# ---------------------------------------------------------------- free loopback ports
vport=$(free_port)
gport=$(free_port)
pport=$(free_port)
uport=$(free_port)

# ---------------------------------------------------------------- wrk
# run_wrk label url threads conns seconds [groups]: one measured run; sets rps. With GROUPS
# (blank-separated "name=pid,pid"), the run's cost table (bench/cost.sh), the workers' RSS
# halfway through (the first group's pids) and, for busgate, Valkey's commands per request.
run_wrk() {
    label=$1 url=$2 wt=$3 c=$4 ws=$5 groups=${6:-}
    out="$dir/wrk-$label-c$c.txt"
    cmds=0
    [ "$label" = busgate ] && [ -n "$groups" ] && cmds=1
    [ $cmds = 1 ] && cost_cmdstats "$vport" >"$dir/cmd-before.txt"
    if [ -n "$groups" ]; then
        first=${groups%% *}
        cost_rss_pids=$(echo "${first#*=}" | tr ',' ' ')
        cost_measure "$out" "$ws" "$groups" -t"$wt" -c"$c" --timeout 5s "$url"
    else
        cost_wrk "$out" "$ws" -t"$wt" -c"$c" --timeout 5s "$url"
    fi
    rc=$?
    [ $cmds = 1 ] && cost_cmdstats "$vport" >"$dir/cmd-after.txt"
    wrk_figures "$out"
    if [ $rc -ne 0 ] || [ -z "$rps" ]; then
        say "$label c=$c: wrk failed (exit $rc):"
        sed 's/^/    /' "$out"
        rps=""
        return 1
    fi
    say "$label c=$c rps=$rps p50=$(to_ms "$p50")ms p99=$(to_ms "$p99")ms" \
        "non2xx=${non2xx:-0} socket_errors=${errs:-none}"
    [ -n "$non2xx" ] && say "WARNING: $label c=$c: $non2xx answers were not 2xx/3xx (see $out)"
    [ -n "$groups" ] || return 0
    cost_table "$label c=$c" "$reqs"
    note=""
    [ "$label" = busgate ] && note=" (target < 16 MiB)"
    [ -n "$cost_mid_rss" ] && echo "$cost_mid_rss" | cost_rss_line "$label worker RSS at c=$c$note"
    [ $cmds = 1 ] && cost_commands "$dir/cmd-before.txt" "$dir/cmd-after.txt" "$reqs"
    return 0
}

# Both sizes of run for one target; sets rps1 and rps64.
bench_target() { # label url [groups]
    wrk_warmup "$2"
    run_wrk "$1" "$2" 1 1 "$secs" && rps1=$rps || rps1=""
    run_wrk "$1" "$2" 2 64 "$secs" "${3:-}" && rps64=$rps || rps64=""
}

# ---------------------------------------------------------------- busgate
write_ini() {
    {
        echo "; busgate.ini for bench/http_bench.sh: private Valkey, 2 workers, no access log (no disk)."
        if [ "${HTTP_BENCH_REUSEPORT:-0}" = 1 ]; then
            gateway_ini httpbench "$gport" busgated | sed '/^workers =/a reuseport = on'
        else
            gateway_ini httpbench "$gport" busgated
        fi
        printf '\n[sandbox]\nseccomp = on\n'
    } >"$dir/busgate.ini"
}

echo_ok() {
    code=$(curl -s -m 2 -o "$dir/echo.body" -w '%{http_code}' -H 'User-Agent:' -H 'Accept:' \
        "http://127.0.0.1:$gport/echo/1")
    [ "$code" = 200 ]
}

registered() { grep -q registered "$dir/echo-1.out" && grep -q registered "$dir/echo-2.out"; }

start_busgate() {
    for bin in busgated echo-service; do
        if [ ! -x "$build/$bin" ]; then
            say "busgate: $build/$bin is not built (make all); measuring nginx only"
            return 1
        fi
    done
    start_valkey || { say "busgate: valkey-server did not start"; return 1; }
    write_ini
    if ! "$build/busgated" -t -c "$dir/busgate.ini" >"$dir/check.out" 2>&1; then
        say "busgate: busgated -t rejects the bench config:"
        cat "$dir/check.out"
        return 1
    fi
    start busgated "$build/busgated" -g -c "$dir/busgate.ini"
    master_pid=$last_pid
    # shellcheck disable=SC2086 # $echo_opts: nothing or "-w N"
    start echo-1 "$build/echo-service" -c "$dir/busgate.ini" -u "valkey://127.0.0.1:$vport" \
        -n echo-1 $echo_opts
    echo1_pid=$last_pid
    # shellcheck disable=SC2086
    start echo-2 "$build/echo-service" -c "$dir/busgate.ini" -u "valkey://127.0.0.1:$vport" \
        -n echo-2 $echo_opts
    echo2_pid=$last_pid
    if ! wait_until 150 curl -sf -m 2 "http://127.0.0.1:$gport/healthz" ||
        ! wait_until 100 registered || ! wait_until 100 echo_ok; then
        say "busgate: not ready within 35 s (GET /healthz, both echo instances, GET /echo/1 = 200)"
        for f in busgated.out busgated.log echo-1.out echo-2.out; do
            [ -s "$dir/$f" ] && { echo "--- $f"; tail -n 15 "$dir/$f"; }
        done
        return 1
    fi
    workers=$(children_of "$master_pid" | tr '\n' ',' | sed 's/,$//')
    say "busgate ready: busgated (master $master_pid, workers $workers) on :$gport," \
        "valkey on :$vport, echo answer $(wc -c <"$dir/echo.body") bytes," \
        "echo-service threads ${HTTP_BENCH_ECHO_THREADS:-default}"
}

# ---------------------------------------------------------------- nginx
start_nginx() { # body size
    body=$(head -c "$1" /dev/zero | tr '\0' a)
    mkdir -p "$dir/nginx"
    chmod 755 "$dir" "$dir/nginx" # its workers run as nobody
    sed -e "s|@DIR@|$dir/nginx|g" -e "s|@PROXY_PORT@|$pport|g" -e "s|@UPSTREAM_PORT@|$uport|g" \
        -e "s|@BODY@|$body|" "$here/nginx/nginx.conf.in" >"$dir/nginx/nginx.conf"
    start nginx "$nginx_bin" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log"
    nginx_pid=$last_pid
    if ! wait_until 50 curl -sf -m 2 -o /dev/null "http://127.0.0.1:$pport/echo/1"; then
        say "nginx: proxy did not answer:"
        cat "$dir/nginx.out" "$dir/nginx/error.log" 2>/dev/null | tail -n 10
        return 1
    fi
    say "nginx ready: proxy on :$pport -> upstream on :$uport, body $1 bytes"
}

# ---------------------------------------------------------------- profile (optional)
profile_busgate() {
    url="http://127.0.0.1:$gport/echo/1"
    cost_syscalls "$dir/wrk-syscalls.txt" 5 \
        "workers=$workers service=$echo1_pid,$echo2_pid valkey=$valkey_pid" -t2 -c64 "$url"
    command -v perf >/dev/null 2>&1 || { say "perf record: skipped (perf is not installed)"; return 0; }
    say "profile: wrk -t2 -c64 -d8s; perf record (4 s) on worker $w1, echo-1 and valkey"
    cost_wrk_start "$dir/wrk-profile.txt" 8 -t2 -c64 "$url"
    sleep 1
    timeout 15 perf record -q -o "$dir/perf.data" -p "$w1,$echo1_pid,$valkey_pid" -- sleep 4 \
        >/dev/null 2>&1
    cost_wrk_wait "$dir/wrk-profile.txt"
    if [ -s "$dir/perf.data" ]; then
        echo "--- perf: top symbols by process (self time, all three together)"
        perf report -i "$dir/perf.data" --stdio --sort comm,dso,sym 2>/dev/null |
            grep -E '^ +[0-9.]+%' | head -n 30
    fi
}

# ---------------------------------------------------------------- main
say "wrk $(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }'), $("$nginx_bin" -v 2>&1 | sed 's/.*: //')," \
    "valkey $(valkey-server --version | awk '{ sub(/v=/, "", $3); print $3 }'), $(nproc) CPUs, ${secs}s per run"
bg_ok=0
if start_busgate; then
    bg_ok=1
    size=$(wc -c <"$dir/echo.body")
else
    failed=1
    size=400 # about what the echo answers to wrk's bare GET
fi
start_nginx "$size" || failed=1

bg64="" ng64=""
if [ $bg_ok = 1 ]; then
    w1=$(echo "$workers" | cut -d, -f1)
    groups="workers=$workers master=$master_pid valkey=$valkey_pid service=$echo1_pid,$echo2_pid"
    bench_target busgate "http://127.0.0.1:$gport/echo/1" "$groups"
    bg64=$rps64
    [ -n "$rps1" ] && [ -n "$rps64" ] || failed=1
fi
if [ -n "${nginx_pid:-}" ] && kill -0 "$nginx_pid" 2>/dev/null; then
    nginx_workers=$(children_of "$nginx_pid" | tr '\n' ',' | sed 's/,$//')
    bench_target nginx "http://127.0.0.1:$pport/echo/1" "workers=$nginx_workers master=$nginx_pid"
    ng64=$rps64
    [ -n "$rps1" ] && [ -n "$rps64" ] || failed=1
fi
if [ -n "$bg64" ] && [ -n "$ng64" ]; then
    say "ratio busgate/nginx c=64 = $(awk -v a="$bg64" -v b="$ng64" 'BEGIN { printf "%.2f", a / b }')"
else
    say "ratio busgate/nginx c=64 = n/a (a target did not run)"
fi
[ $bg_ok = 1 ] && [ "$profile" = 1 ] && profile_busgate
exit $failed
