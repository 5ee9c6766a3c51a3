#!/bin/sh
# cluster_bench.sh BUILD: req/s of GET /echo/1 through busgated (2 workers) and two
# echo-service instances at 64 keep-alive connections (wrk -t2 -c64), once on a single
# Valkey and once on a 3-primary Valkey Cluster (valkey-cli --cluster create) on the same
# machine. Prints the figures of each run; never judges them. Exits 1 when busgate could
# not run.
#
# Everything runs on loopback, on free ports, in one private temp dir, stopped on exit.
#   CLUSTER_BENCH_SECONDS=10   length of each measured run
#   CLUSTER_BENCH_RUNS=3       runs per setup (the median is printed too)
#   CLUSTER_BENCH_KEEP=1       keep the temp dir (configs, logs) afterwards
set -u

build=${1:-build}
secs=${CLUSTER_BENCH_SECONDS:-10}
runs=${CLUSTER_BENCH_RUNS:-3}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init cluster clusterbench "${CLUSTER_BENCH_KEEP:-0}"

have_tools " (make deps installs it)" valkey-server valkey-cli curl wrk || exit 1
have_built "$build" busgated echo-service || exit 1

# cluster_node name port: one cluster-enabled valkey-server in DIR/name, listed in pids.
cluster_node() {
    mkdir -p "$dir/$1"
    start "$1" valkey-server --port "$2" --bind 127.0.0.1 --dir "$dir/$1" --save '' \
        --appendonly no --daemonize no --cluster-enabled yes \
        --cluster-config-file nodes.conf --cluster-require-full-coverage no
    wait_until 50 valkey-cli -p "$2" ping
}

cluster_ok() {
    for p in "$@"; do
        valkey-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || return 1
    done
}

# setup label url: busgated and two echo instances on url, then the runs at 64 connections.
measure() {
    label=$1 url=$2 rates=""
    gport=$(free_port)
    gateway_ini "clusterbench-$label" "$gport" "busgated-$label" | sed "s|^url = .*|url = $url|" \
        >"$dir/$label.ini"
    start "busgated-$label" "$build/busgated" -g -c "$dir/$label.ini"
    gw=$last_pid
    start "echo1-$label" "$build/echo-service" -c "$dir/$label.ini" -n e1
    e1=$last_pid
    start "echo2-$label" "$build/echo-service" -c "$dir/$label.ini" -n e2
    e2=$last_pid
    wait_until 100 http_ok "http://127.0.0.1:$gport/echo/1" ||
        { say "$label: busgated does not route /echo (see $dir)"; return 1; }
    wrk_warmup "http://127.0.0.1:$gport/echo/1"
    i=0
    while [ "$i" -lt "$runs" ]; do
        wrk_run "$dir/$label-$i.wrk" "$secs" -t2 -c64 "http://127.0.0.1:$gport/echo/1"
        wrk_figures "$dir/$label-$i.wrk"
        say "$label c=64 run $i: ${rps:-?} req/s, p50 ${p50:-?}, p99 ${p99:-?}," \
            "non2xx=${non2xx:-0} socket_errors=${errs:-none}"
        rates="$rates ${rps:-0}"
        i=$((i + 1))
    done
    median=$(echo "$rates" | tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ a[NR] = $1 }
        END { print a[int((NR + 1) / 2)] }')
    say "$label c=64: median $median req/s over $runs runs of ${secs}s"
    for p in $e1 $e2 $gw; do stop_group "$p"; done
}

# ---------------------------------------------------------------- one Valkey
vport=$(free_port)
start_valkey || { say "valkey-server did not start"; exit 1; }
measure single "valkey://127.0.0.1:$vport" || exit 1
stop_group "$valkey_pid"

# ---------------------------------------------------------------- 3-primary cluster
p1=$(free_port)
p2=$(free_port)
p3=$(free_port)
for n in 1 2 3; do
    eval "cluster_node node$n \$p$n" || { say "cluster node $n did not start"; exit 1; }
done
valkey-cli --cluster create "127.0.0.1:$p1" "127.0.0.1:$p2" "127.0.0.1:$p3" \
    --cluster-replicas 0 --cluster-yes >"$dir/create.out" 2>&1 ||
    { say "valkey-cli --cluster create failed (see $dir/create.out)"; exit 1; }
wait_until 200 cluster_ok "$p1" "$p2" "$p3" || { say "the cluster never became ok"; exit 1; }
measure cluster "valkey+cluster://127.0.0.1:$p1,127.0.0.1:$p2,127.0.0.1:$p3" || exit 1
say "2 cores shared by Valkey, the gateway, the services and wrk: a cluster adds processes" \
    "on the same cores, so expect it lower here; it scales out on separate hosts"
