#!/bin/sh
# curves.sh BUILD [CURVE...]: how busgate's cost grows with what it carries. Four small tables,
# each point a short wrk run (64 connections unless the curve varies them) against busgated with
# seccomp on, a private Valkey and its services, all started afresh per table (per point where
# the gateway's configuration is what varies):
#   routes   endpoints in the routing table: 10, 1k, 10k, 100k (bench/route_service announces
#            them through the bus, 1000 per service; wrk hits one of rt0's)
#   body     request and response body: 0, 1 KiB, 64 KiB, 1 MiB (POST octet-stream, echoed back
#            by echo-service), beside nginx proxy_pass to an nginx upstream answering as much
#   conns    connections: 1, 64, 256, 1024, then 10k idle keep-alive connections
#            (bench/idle_conns): worker RSS per idle connection, and 64 busy ones beside them
#   workers  busgated workers: 1, 2, 4
# Columns: req/s; p50 and p99 (ms); CPU = CPU microseconds per request of busgate's processes,
# Valkey, the services and wrk (bench/cost.sh; http_bench.sh prints them one by one); other =
# what the rest of the machine used meanwhile (% of one core: the figures are only comparable
# when it is near 0); RSS = the largest worker RSS halfway through the run. Never judges the
# figures; exits 1 when a curve could not run at all.
#
# Without CURVE arguments, every curve (or those in $CURVES). Knobs:
#   CURVES_SECONDS=3      length of each measured run (each also has a 1 s warm-up)
#   CURVES_ROUTES="10 1000 10000 100000"   CURVES_BODIES="0 1024 65536 1048576"
#   CURVES_CONNS="1 64 256 1024"           CURVES_IDLE=10000 (0: skip)
#   CURVES_WORKERS="1 2 4"
#   CURVES_LIMIT=900      the whole script is stopped after this many seconds
#   CURVES_KEEP=1         keep the temp dir (configs, logs, wrk output)
# shellcheck disable=SC2317 # functions called from traps and through wait_until
set -u

build=${1:-build}
[ $# -gt 0 ] && shift
curves=${*:-${CURVES:-routes body conns workers}}
secs=${CURVES_SECONDS:-3}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=cost.sh
. "$(dirname "$0")/cost.sh"
bench_init curves curves "${CURVES_KEEP:-0}"
failed=0

on_stop() {
    [ -n "${watchdog:-}" ] && kill -KILL "-$watchdog" 2>/dev/null && wait "$watchdog" 2>/dev/null
    cost_on_stop
}
limit=${CURVES_LIMIT:-900}
setsid sh -c "sleep $limit; echo 'curves: watchdog: over $limit s, stopping' >&2; kill -TERM $$" &
watchdog=$!

have_tools " (make deps installs it; bench/http_bench.sh installs wrk)" wrk valkey-server \
    valkey-cli curl || exit 1
have_built "$build" busgated echo-service bench/route_service bench/idle_conns || exit 1

# ---------------------------------------------------------------- one gateway and its services
# stack_start workers [ini lines] [gateway lines]: a private Valkey and busgated (WORKERS
# workers, seccomp on, INI LINES appended, GATEWAY LINES added to [gateway]); sets vport, gport,
# master_pid, workers (comma-separated pids), stack_pids.
stack_start() {
    stack_pids=""
    vport=$(free_port)
    gport=$(free_port)
    start_valkey || { say "valkey-server did not start"; return 1; }
    stack_pids=$valkey_pid
    {
        echo "; busgate.ini for bench/curves.sh"
        gateway_ini curves "$gport" busgated "$1" |
            awk -v extra="${3:-}" '{ print } /^drain_timeout/ && extra != "" { print extra }'
        printf '\n[sandbox]\nseccomp = on\n%s\n' "${2:-}"
    } >"$dir/busgate.ini"
    if ! "$build/busgated" -t -c "$dir/busgate.ini" >"$dir/check.out" 2>&1; then
        say "busgated -t rejects the config:"
        cat "$dir/check.out"
        return 1
    fi
    start busgated "$build/busgated" -g -c "$dir/busgate.ini"
    master_pid=$last_pid
    stack_pids="$stack_pids $master_pid"
    if ! wait_until 150 curl -sf -m 2 "http://127.0.0.1:$gport/healthz"; then
        say "busgated did not answer /healthz within 15 s:"
        tail -n 10 "$dir/busgated.out" "$dir/busgated.log" 2>/dev/null
        return 1
    fi
    workers=$(children_of "$master_pid" | tr '\n' ',' | sed 's/,$//')
}

# stack_service name command...: one more process of the stack (a service); sets svc_pids.
stack_service() {
    start "$@"
    stack_pids="$stack_pids $last_pid"
    svc_pids="${svc_pids:+$svc_pids,}$last_pid"
}

# stack_echo: two echo-service instances (default handler threads), as http_bench.sh.
echo_registered() { grep -q registered "$dir/echo-1.out" && grep -q registered "$dir/echo-2.out"; }
stack_echo() {
    svc_pids=""
    for i in 1 2; do
        stack_service "echo-$i" "$build/echo-service" -c "$dir/busgate.ini" -n "echo-$i"
    done
    if ! wait_until 100 echo_registered || ! wait_until 100 http_ok "http://127.0.0.1:$gport/echo/1"
    then
        say "echo-service not reachable through busgated within 20 s"
        return 1
    fi
}

# stack_stop: everything stack_start and stack_service started, newest first.
stack_stop() {
    order=""
    for p in $stack_pids; do order="$p $order"; done
    for p in $order; do stop_group "$p"; done
    rest=""
    for p in $pids; do
        case " $stack_pids " in *" $p "*) ;; *) rest="$rest $p" ;; esac
    done
    pids=$rest stack_pids=""
}

# ---------------------------------------------------------------- one point
# point out threads conns groups [wrk options] url: a 1 s warm-up, then the measured run with
# its cost (cost.sh). Sets the figures of wrk_figures, cost_cpu_us, cost_other_pct and rss
# (largest worker RSS, MiB, halfway through); false when wrk failed.
point() {
    pt_out=$1 pt_t=$2 pt_c=$3 pt_groups=$4
    shift 4
    timeout 15 wrk -t"$pt_t" -c"$pt_c" -d1s "$@" >/dev/null 2>&1
    first=${pt_groups%% *}
    cost_rss_pids=$(echo "${first#*=}" | tr ',' ' ')
    cost_measure "$pt_out" "$secs" "$pt_groups" -t"$pt_t" -c"$pt_c" --timeout 5s "$@"
    pt_rc=$?
    wrk_figures "$pt_out"
    rss=$(echo "$cost_mid_rss" | awk '{ split($2, r, "="); if (r[2] > m) m = r[2] }
        END { printf "%.1f", m / 1024 }')
    if [ "$pt_rc" -ne 0 ] || [ -z "$rps" ] || [ -z "$reqs" ] || [ "$reqs" -eq 0 ]; then
        say "wrk failed (exit $pt_rc):"
        sed 's/^/    /' "$pt_out"
        return 1
    fi
    cost_table point "$reqs" >/dev/null
    [ -n "$non2xx" ] && say "WARNING: $non2xx answers were not 2xx/3xx (see $pt_out)"
    [ -n "$errs" ] && say "WARNING: socket errors $errs (see $pt_out)"
    return 0
}

# row first-columns...: the figures of the last point after the curve's own columns.
row_head() { printf '    %s %9s %9s %9s %8s %6s %6s%s\n' "$1" req/s p50_ms p99_ms CPU_us other RSS_MiB "${2:-}"; }
row() {
    printf '    %s %9.0f %9s %9s %8s %5s%% %6s%s\n' "$1" "$rps" "$(to_ms "$p50")" "$(to_ms "$p99")" \
        "$cost_cpu_us" "$cost_other_pct" "$rss" "${non2xx:+  ($non2xx not 2xx)}"
}
row_failed() { printf '    %s %9s\n' "$1" "failed"; }

stack_groups() { echo "workers=$workers master=$master_pid valkey=$valkey_pid service=$svc_pids"; }

# ---------------------------------------------------------------- (a) routes
routes_ready() { # services endpoints: every service's last endpoint answers through busgated
    rr_k=0
    while [ "$rr_k" -lt "$1" ]; do
        rr_last=$(($2 - rr_k * 1000 < 1000 ? $2 - rr_k * 1000 - 1 : 999))
        http_ok "http://127.0.0.1:$gport/rt$rr_k/e$rr_last/1" || return 1
        rr_k=$((rr_k + 1))
    done
}

curve_routes() {
    rt_list=${CURVES_ROUTES:-10 1000 10000 100000}
    most=0
    for rt_n in $rt_list; do [ "$rt_n" -gt "$most" ] && most=$rt_n; done
    # One capacity for every point: only what the table holds varies.
    cap="[routing]
max_endpoints = $((most + 1024))
max_services = $((most / 1000 + 256))"
    say "routes: endpoints in the table (route_service: 1000 per service), c=64, ${secs}s per point;" \
        "ready = start of the service until every service's routes answer"
    row_head "$(printf '%9s %8s %7s' endpoints services ready_s)"
    for rt_n in $rt_list; do
        nsvc=$(((rt_n + 999) / 1000))
        label=$(printf '%9s %8s' "$rt_n" "$nsvc")
        if ! stack_start 2 "$cap"; then
            row_failed "$label"
            failed=1
            stack_stop
            continue
        fi
        svc_pids=""
        rt_t0=$(cost_now)
        stack_service route_service "$build/bench/route_service" -c "$dir/busgate.ini" \
            -u "valkey://127.0.0.1:$vport" -n "$rt_n"
        if ! wait_until 1200 routes_ready "$nsvc" "$rt_n"; then
            say "routes: $rt_n endpoints not all routed within 120 s"
            tail -n 5 "$dir/route_service.out" "$dir/busgated.log"
            row_failed "$label"
            failed=1
            stack_stop
            continue
        fi
        ready=$(awk -v ms=$(($(cost_now) - rt_t0)) 'BEGIN { printf "%.1f", ms / 1000 }')
        last0=$((rt_n < 1000 ? rt_n - 1 : 999))
        if point "$dir/wrk-routes-$rt_n.txt" 2 64 "$(stack_groups)" \
            "http://127.0.0.1:$gport/rt0/e$last0/42"; then
            row "$(printf '%s %7s' "$label" "$ready")"
        else
            row_failed "$label"
        fi
        stack_stop
    done
}

# ---------------------------------------------------------------- (b) body size
# The nginx yardstick for bodies: files of each size, POST /SIZE answered with file SIZE.
body_nginx() {
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] ||
        { say "body: nginx is missing (bench/http_bench.sh installs nginx-light): busgate only"; return 1; }
    nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
    pport=$(free_port)
    uport=$(free_port)
    mkdir -p "$dir/nginx/files"
    for size in $1; do head -c "$size" /dev/zero | tr '\0' a >"$dir/nginx/files/$size"; done
    chmod -R a+rX "$dir" # its workers run as nobody
    sed -e "s|@DIR@|$dir/nginx|g" -e "s|@PROXY_PORT@|$pport|g" -e "s|@UPSTREAM_PORT@|$uport|g" \
        "$here/nginx/nginx-body.conf.in" >"$dir/nginx/nginx.conf"
    start nginx "$nginx_bin" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log"
    nginx_pid=$last_pid
    stack_pids="$stack_pids $nginx_pid"
    if ! wait_until 50 http_ok -X POST --data-binary x "http://127.0.0.1:$pport/0"; then
        say "body: nginx did not answer; busgate only"
        tail -n 5 "$dir/nginx/error.log" 2>/dev/null
        return 1
    fi
    nginx_workers=$(children_of "$nginx_pid" | tr '\n' ',' | sed 's/,$//')
}

# body_lua size: a wrk script that POSTs SIZE bytes as application/octet-stream.
body_lua() {
    cat >"$dir/body-$1.lua" <<LUA
wrk.method = "POST"
wrk.body = string.rep("a", $1)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
}

# body_check url size: the answer to one POST of SIZE bytes is SIZE bytes.
body_check() {
    got=$(head -c "$2" /dev/zero | tr '\0' a | curl -s -m 5 -o /dev/null -w '%{http_code} %{size_download}' \
        -H 'Content-Type: application/octet-stream' --data-binary @- "$1")
    [ "$got" = "200 $2" ] || say "WARNING: body: POST of $2 bytes to $1 answered '$got'"
}

curve_body() {
    body_list=${CURVES_BODIES:-0 1024 65536 1048576}
    # 1 MiB is exactly the default max_request_body: room to spare.
    if ! stack_start 2 "" "max_request_body = 2m" || ! stack_echo; then
        failed=1
        stack_stop
        return 1
    fi
    ng=0
    body_nginx "$body_list" && ng=1
    say "body: POST of SIZE bytes (octet-stream) answered with the same SIZE bytes, c=64," \
        "${secs}s per point; MiB/s = response bodies (the request bodies went the other way too)"
    row_head "$(printf '%8s %-7s' size target)" "$(printf ' %14s' MiB/s)"
    for size in $body_list; do
        body_lua "$size"
        targets="busgate"
        [ "$ng" = 1 ] && targets="busgate nginx"
        for target in $targets; do
            if [ "$target" = busgate ]; then
                url="http://127.0.0.1:$gport/echo/1" groups=$(stack_groups)
            else
                url="http://127.0.0.1:$pport/$size" groups="workers=$nginx_workers master=$nginx_pid"
            fi
            body_check "$url" "$size"
            label=$(printf '%8s %-7s' "$size" "$target")
            if point "$dir/wrk-body-$size-$target.txt" 2 64 "$groups" -s "$dir/body-$size.lua" "$url"
            then
                row "$label" | tr -d '\n'
                awk -v r="$rps" -v s="$size" 'BEGIN { printf " %14.1f\n", r * s / 1048576 }'
            else
                row_failed "$label"
            fi
        done
    done
    stack_stop
}

# ---------------------------------------------------------------- (c) connections
# idle_fds: true when this shell may give busgated and idle_conns the descriptors for
# CURVES_IDLE idle connections (raising the limit when root); says why not otherwise.
idle_fds() {
    want=$(($1 + 4096))
    # shellcheck disable=SC3045 # dash, bash and busybox sh all have ulimit -n
    have=$(ulimit -n)
    [ "$have" = unlimited ] && return 0
    [ "$have" -ge "$want" ] && return 0
    # shellcheck disable=SC3045
    ulimit -n "$want" 2>/dev/null && return 0
    say "conns: idle connections skipped: ulimit -n is $have, $want needed, and it cannot be" \
        "raised here (root may; or raise the hard limit)"
    return 1
}

curve_conns() {
    conn_list=${CURVES_CONNS:-1 64 256 1024}
    idle=${CURVES_IDLE:-10000}
    [ "$idle" -gt 0 ] && ! idle_fds "$idle" && idle=0
    # Room for every idle connection on one worker (the kernel may hand them all to one).
    gw="max_connections = $((idle + 2048))
open_files = $((idle + 4096))"
    if ! stack_start 2 "" "$gw" || ! stack_echo; then
        failed=1
        stack_stop
        return 1
    fi
    say "conns: GET /echo/1 at each number of connections (wrk -t1 at 1, else -t2), ${secs}s per point"
    row_head "$(printf '%12s' conns)"
    for c in $conn_list; do
        t=2
        [ "$c" -lt 2 ] && t=1
        label=$(printf '%12s' "$c")
        if point "$dir/wrk-conns-$c.txt" "$t" "$c" "$(stack_groups)" "http://127.0.0.1:$gport/echo/1"
        then
            row "$label"
        else
            row_failed "$label"
        fi
    done
    [ "$idle" -gt 0 ] && conns_idle "$idle"
    stack_stop
}

# rss_sum pid...: their VmRSS, KiB, summed.
rss_sum() { cost_rss "$@" | awk '{ split($2, r, "="); t += r[2] } END { print t + 0 }'; }

# conns_idle n: on a fresh gateway (so earlier runs' memory does not hide the growth), the
# workers' RSS before and while idle_conns holds N keep-alive connections (each answered once),
# per connection; and the point c=64 beside them.
conns_idle() {
    stack_stop
    stack_start 2 "" "$gw" && stack_echo || return 1
    timeout 15 wrk -t2 -c64 -d1s "http://127.0.0.1:$gport/echo/1" >/dev/null 2>&1
    wl=$(echo "$workers" | tr ',' ' ')
    # shellcheck disable=SC2086 # pids
    before=$(rss_sum $wl)
    idle_t0=$(cost_now)
    start idle "$build/bench/idle_conns" 127.0.0.1 "$gport" /echo/1 "$1"
    stack_pids="$stack_pids $last_pid"
    if ! wait_until 1200 grep -q holding "$dir/idle.out"; then
        say "conns: idle_conns did not open its connections within 120 s"
        return 1
    fi
    idle_ms=$(($(cost_now) - idle_t0))
    sleep 1
    held=$(awk '/holding/ { print $3 }' "$dir/idle.out")
    # shellcheck disable=SC2086
    after=$(rss_sum $wl)
    label=$(printf '%12s' "64+${held}idle")
    if point "$dir/wrk-conns-idle.txt" 2 64 "$(stack_groups)" "http://127.0.0.1:$gport/echo/1"; then
        row "$label"
    else
        row_failed "$label"
    fi
    grep -v holding "$dir/idle.out" | sed 's/^/    /'
    say "conns: $held idle keep-alive connections (opened in $idle_ms ms): the workers' RSS" \
        "$((before / 1024)) -> $((after / 1024)) MiB, $(awk -v a="$after" -v b="$before" \
            -v n="$held" 'BEGIN { printf "%.0f", (n > 0) ? (a - b) * 1024 / n : 0 }') bytes per" \
        "connection"
}

# ---------------------------------------------------------------- (d) workers
curve_workers() {
    w_list=${CURVES_WORKERS:-1 2 4}
    say "workers: busgated workers, 2 echo-service instances, c=64, ${secs}s per point"
    row_head "$(printf '%8s' workers)"
    for w in $w_list; do
        label=$(printf '%8s' "$w")
        if stack_start "$w" "" && stack_echo &&
            point "$dir/wrk-workers-$w.txt" 2 64 "$(stack_groups)" "http://127.0.0.1:$gport/echo/1"
        then
            row "$label"
        else
            row_failed "$label"
            failed=1
        fi
        stack_stop
    done
}

# ---------------------------------------------------------------- main
say "wrk $(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }'), $(nproc) CPUs, ${secs}s per point," \
    "curves: $curves"
for curve in $curves; do
    curve_t0=$(cost_now)
    case $curve in
    routes | body | conns | workers) "curve_$curve" ;;
    *)
        say "unknown curve '$curve' (routes, body, conns, workers)"
        failed=1
        continue
        ;;
    esac
    say "$curve: took $((($(cost_now) - curve_t0) / 1000)) s"
done
exit $failed
