#!/bin/sh
# auth_http_bench.sh BUILD: what [auth] costs at the HTTP level. Two busgated (2 workers each,
# seccomp on) on one private Valkey in front of the same two echo-service instances: one
# without [auth], one with require = all and an RS256 key; wrk -t2 -c64 against each in
# turn, twice (ABAB, so a drift of the machine shows), every request carrying one token as a
# client would. Prints requests/s, p99 and the ratio auth/plain; never judges the figures.
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
start auth "$build/busgated" -g -c "$dir/auth.ini"
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

run() { # label port: one wrk run; prints and sets rps
    out="$dir/wrk-$1.txt"
    timeout $((secs + 20)) wrk -t2 -c64 -d"${secs}s" --latency -H "Authorization: Bearer $token" \
        "http://127.0.0.1:$2/echo/1" >"$out" 2>&1
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p99=$(awk '$1 == "99%" { print $2 }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    say "$1 c=64 rps=${rps:-?} p99=${p99:-?} non2xx=${non2xx:-0}"
}

timeout 10 wrk -t2 -c16 -d2s -H "Authorization: Bearer $token" "http://127.0.0.1:$aport/echo/1" >/dev/null 2>&1
timeout 10 wrk -t2 -c16 -d2s "http://127.0.0.1:$pport/echo/1" >/dev/null 2>&1
run plain "$pport"; a1=$rps
run auth "$aport"; b1=$rps
run plain "$pport"; a2=$rps
run auth "$aport"; b2=$rps
awk -v a1="$a1" -v a2="$a2" -v b1="$b1" -v b2="$b2" 'BEGIN {
    if (a1 + a2 > 0) printf "auth-http: RS256, one token per client: auth/plain = %.2f (%.0f vs %.0f req/s, mean of two runs each)\n", (b1 + b2) / (a1 + a2), (b1 + b2) / 2, (a1 + a2) / 2 }'
