#!/bin/sh
# auth_http_bench.sh BUILD: what [auth] costs at the HTTP level. Two busgated (2 workers each,
# seccomp on) on one private Valkey in front of the same two echo-service instances: one
# without [auth], one with require = all and an RS256 key; wrk -t2 -c64 against each in
# turn, twice (ABAB, so a drift of the machine shows), every request carrying one token as a
# client would. Prints requests/s, p99, the gateway's CPU per request (master and workers,
# from /proc: steadier than requests/s when other processes share the machine) and the
# ratios auth/plain; never judges the figures.
# Knobs: AUTH_BENCH_SECONDS=10 (per run). Needs wrk (bench/http_bench.sh installs it).
set -u
build=${1:-build}
secs=${AUTH_BENCH_SECONDS:-10}
dir=$(mktemp -d /tmp/busgate-authbench-XXXXXX) || exit 1
pids=""

say() { printf 'auth-http: %s\n' "$*"; }

stop_all() {
    trap - INT TERM EXIT
    for p in $pids; do order="$p ${order:-}"; done
    for p in ${order:-}; do kill -TERM "$p" 2>/dev/null; done
    sleep 1
    for p in ${order:-}; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap stop_all EXIT

start() { # name, command...
    name=$1
    shift
    "$@" >"$dir/$name.out" 2>&1 &
    pids="$pids $!"
    last_pid=$!
}

hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
# utime + stime of a gateway (its master and workers), in clock ticks.
gw_ticks() {
    t=0
    for q in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
        t=$((t + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$q/stat" 2>/dev/null || echo 0)))
    done
    echo $t
}

wait_until() { # tenths, command...
    n=$1
    shift
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -ge "$n" ] && return 1
        sleep 0.1
    done
}

for tool in wrk valkey-server valkey-cli curl openssl; do
    command -v $tool >/dev/null 2>&1 || { say "$tool is missing: skipped"; exit 0; }
done
port() { echo $(($(od -An -N2 -tu2 /dev/urandom) % 20000 + 30000)); }
vport=$(port) pport=$(port) aport=$(port)

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/jwt.key" 2>/dev/null
openssl pkey -in "$dir/jwt.key" -pubout -out "$dir/jwt.pub"
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
h=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
p=$(printf '{"iss":"bench","sub":"bench-user","scope":"echo","exp":%d}' $(($(date +%s) + 3600)) |
    b64url)
token=$h.$p.$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -sign "$dir/jwt.key" -binary | b64url)

ini() { # name port [auth section]
    cat >"$dir/$1.ini" <<INI
[gateway]
instance_id = $1
listen = 127.0.0.1:$2
workers = 2
pid_file = $dir/$1.pid
error_log = $dir/$1.log
access_log = off
log_level = notice
[valkey]
url = valkey://127.0.0.1:$vport
[messaging]
heartbeat_interval = 1s
heartbeat_expiry = 3s
$3
INI
}

start valkey valkey-server --port "$vport" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no
wait_until 50 valkey-cli -p "$vport" ping || { say "valkey-server did not start"; exit 1; }
ini plain "$pport" ""
ini auth "$aport" "[auth]
public_key_file = $dir/jwt.pub
algorithm = RS256
issuer = bench
require = all"
start plain "$build/busgated" -g -c "$dir/plain.ini"
plain_pid=$last_pid
start auth "$build/busgated" -g -c "$dir/auth.ini"
auth_pid=$last_pid
start echo-1 "$build/echo-service" -c "$dir/plain.ini" -n echo-1
start echo-2 "$build/echo-service" -c "$dir/plain.ini" -n echo-2
ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$1")" = 200 ]; }
if ! wait_until 200 ok "http://127.0.0.1:$pport/echo/1" || ! wait_until 100 ok "http://127.0.0.1:$aport/echo/1"; then
    say "not ready (logs: $dir)"
    exit 1
fi
if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$aport/echo/1")" != 401 ]; then
    say "the auth gateway did not refuse an anonymous request"
    exit 1
fi

run() { # label port gateway-pid: one wrk run; prints, sets rps and cpu (us per request)
    out="$dir/wrk-$1.txt"
    t0=$(gw_ticks "$3")
    timeout $((secs + 20)) wrk -t2 -c64 -d"${secs}s" --latency -H "Authorization: Bearer $token" \
        "http://127.0.0.1:$2/echo/1" >"$out" 2>&1
    t1=$(gw_ticks "$3")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    n=$(awk '/requests in/ { print $1 }' "$out")
    p99=$(awk '$1 == "99%" { print $2 }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    cpu=$(awk -v d=$((t1 - t0)) -v n="${n:-0}" -v hz="$hz" 'BEGIN { if (n > 0) printf "%.1f", d * 1e6 / hz / n; else print 0 }')
    say "$1 c=64 rps=${rps:-?} p99=${p99:-?} non2xx=${non2xx:-0} gateway_cpu=${cpu}us/request"
}

timeout 10 wrk -t2 -c16 -d2s -H "Authorization: Bearer $token" "http://127.0.0.1:$aport/echo/1" >/dev/null 2>&1
timeout 10 wrk -t2 -c16 -d2s "http://127.0.0.1:$pport/echo/1" >/dev/null 2>&1
run plain "$pport" "$plain_pid"; a1=$rps ca1=$cpu
run auth "$aport" "$auth_pid"; b1=$rps cb1=$cpu
run plain "$pport" "$plain_pid"; a2=$rps ca2=$cpu
run auth "$aport" "$auth_pid"; b2=$rps cb2=$cpu
awk -v a1="$a1" -v a2="$a2" -v b1="$b1" -v b2="$b2" -v ca1="$ca1" -v ca2="$ca2" -v cb1="$cb1" \
    -v cb2="$cb2" 'BEGIN {
    if (a1 + a2 > 0 && ca1 + ca2 > 0)
        printf "auth-http: RS256, one token per client, mean of two runs each: requests/s auth/plain = %.2f (%.0f vs %.0f); gateway CPU per request auth/plain = %.2f (%.1f vs %.1f us)\n",
            (b1 + b2) / (a1 + a2), (b1 + b2) / 2, (a1 + a2) / 2, (cb1 + cb2) / (ca1 + ca2),
            (cb1 + cb2) / 2, (ca1 + ca2) / 2 }'
