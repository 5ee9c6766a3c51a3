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
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init auth-http authbench

# utime + stime of a gateway (its master and workers), in clock ticks.
gw_ticks() {
    t=0
    for q in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
        t=$((t + $(ticks "$q")))
    done
    echo $t
}

have_tools ": skipped" wrk valkey-server valkey-cli curl openssl || exit 0
vport=$(free_port) pport=$(free_port) aport=$(free_port)

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/jwt.key" 2>/dev/null
openssl pkey -in "$dir/jwt.key" -pubout -out "$dir/jwt.pub"
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
h=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
p=$(printf '{"iss":"bench","sub":"bench-user","scope":"echo","exp":%d}' $(($(date +%s) + 3600)) |
    b64url)
token=$h.$p.$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -sign "$dir/jwt.key" -binary | b64url)

ini() { # name port [auth section]
    {
        gateway_ini "$1" "$2" "$1"
        echo "$3"
    } >"$dir/$1.ini"
}

start_valkey || { say "valkey-server did not start"; exit 1; }
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
ok() { http_ok -H "Authorization: Bearer $token" "$1"; }
if ! wait_until 200 ok "http://127.0.0.1:$pport/echo/1" || ! wait_until 100 ok "http://127.0.0.1:$aport/echo/1"; then
    say "not ready (logs: $dir)"
    exit 1
fi
if [ "$(http_status "http://127.0.0.1:$aport/echo/1")" != 401 ]; then
    say "the auth gateway did not refuse an anonymous request"
    exit 1
fi

run() { # label port gateway-pid: one wrk run; prints, sets rps and cpu (us per request)
    out="$dir/wrk-$1.txt"
    t0=$(gw_ticks "$3")
    wrk_run "$out" "$secs" -t2 -c64 -H "Authorization: Bearer $token" "http://127.0.0.1:$2/echo/1"
    t1=$(gw_ticks "$3")
    wrk_figures "$out"
    cpu=$(awk -v d=$((t1 - t0)) -v n="${reqs:-0}" -v hz="$hz" 'BEGIN { if (n > 0) printf "%.1f", d * 1e6 / hz / n; else print 0 }')
    say "$1 c=64 rps=${rps:-?} p99=${p99:-?} non2xx=${non2xx:-0} gateway_cpu=${cpu}us/request"
}

wrk_warmup -H "Authorization: Bearer $token" "http://127.0.0.1:$aport/echo/1"
wrk_warmup "http://127.0.0.1:$pport/echo/1"
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
