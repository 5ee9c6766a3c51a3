#!/bin/sh
# demo.sh BUILD: start a private Valkey, the gateway (2 workers) and the example
# services in the foreground; print requests to try; Ctrl-C stops everything.
set -eu

build=${1:-build}
port=${DEMO_PORT:-8080}
tls_port=${DEMO_TLS_PORT:-8443}
vport=${DEMO_VALKEY_PORT:-6399}
token=demo-admin-token-0123456789
dir=$(mktemp -d /tmp/busgate-demo-XXXXXX)
pids=""

server=valkey-server cli=valkey-cli
command -v valkey-server >/dev/null 2>&1 || { server=redis-server; cli=redis-cli; }

cleanup() {
    trap - INT TERM EXIT
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$dir"
    echo "demo: stopped"
}
trap cleanup INT TERM EXIT

start() { # name, command...
    name=$1; shift
    "$@" >"$dir/$name.log" 2>&1 &
    pids="$pids $!"
}

wait_for() { # what, command...
    what=$1; shift
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "demo: $what did not come up; logs in $dir"; cat "$dir"/*.log; exit 1; }
        sleep 0.1
    done
}

# [auth]: an RSA key made now; tokens are signed with it by the openssl tool below.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/jwt.key" 2>/dev/null
openssl pkey -in "$dir/jwt.key" -pubout -out "$dir/jwt.pub"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# token SUB SCOPE: an RS256 JWT for the demo issuer, valid for a day
token_for() {
    h=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
    p=$(printf '{"iss":"busgate-demo","sub":"%s","scope":"%s","exp":%d}' "$1" "$2" \
        $(($(date +%s) + 86400)) | b64url)
    s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -sign "$dir/jwt.key" -binary | b64url)
    printf '%s.%s.%s' "$h" "$p" "$s"
}
read_token=$(token_for alice orders:read)
write_token=$(token_for bob "orders:read orders:write")

start valkey "$server" --port "$vport" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no
wait_for "$server" "$cli" -p "$vport" ping

# A self-signed certificate for the HTTPS listener, made fresh each time.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" >"$dir/openssl.log" 2>&1 ||
    { echo "demo: openssl could not make a certificate:"; cat "$dir/openssl.log"; exit 1; }

cat >"$dir/busgate.ini" <<INI
[gateway]
listen = 127.0.0.1:$port
listen = 127.0.0.1:$tls_port ssl
workers = 2
pid_file = $dir/busgated.pid
error_log = stderr
access_log = $dir/access.log

[valkey]
url = valkey://127.0.0.1:$vport

[messaging]
heartbeat_interval = 2s
heartbeat_expiry = 6s

[admin]
token = $token

[sandbox]
seccomp = on

[tls]
certificate = $dir/cert.pem
certificate_key = $dir/key.pem

[auth]
public_key_file = $dir/jwt.pub
algorithm = RS256
issuer = busgate-demo
INI

"$build/busgated" -t -c "$dir/busgate.ini"
start busgated "$build/busgated" -g -c "$dir/busgate.ini"
start echo "$build/echo-service" -c "$dir/busgate.ini" -n echo-1
start orders "$build/orders-service" -c "$dir/busgate.ini" -n orders-1
wait_for "the gateway" curl -sf "http://127.0.0.1:$port/healthz"
wait_for "the echo service route" curl -sf "http://127.0.0.1:$port/echo/hello"
wait_for "the gateway to be ready" curl -sf "http://127.0.0.1:$port/readyz"
wait_for "the HTTPS listener" curl -sf --cacert "$dir/cert.pem" "https://localhost:$tls_port/readyz"

cat <<MSG

busgate demo is running (logs and config in $dir). Try:

  curl -i http://127.0.0.1:$port/echo/42?x=1
  curl -i --cacert $dir/cert.pem https://localhost:$tls_port/echo/42?x=1   # HTTPS

The orders service wants a bearer token with orders:read to read and orders:write to
write. Two tokens (RS256, signed with $dir/jwt.key, valid for a day):

  READ=$read_token
  WRITE=$write_token

  curl -i http://127.0.0.1:$port/orders/7                                      # 401
  curl -i -H "Authorization: Bearer \$READ" -X PUT -d '{"qty":2}' http://127.0.0.1:$port/orders/7   # 403
  curl -i -H "Authorization: Bearer \$WRITE" -X PUT -d '{"qty":2}' http://127.0.0.1:$port/orders/7  # 201
  curl -i -H "Authorization: Bearer \$READ" http://127.0.0.1:$port/orders/7       # 200

  curl -i http://127.0.0.1:$port/nowhere                      # 404
  curl -s http://127.0.0.1:$port/metrics | head
  curl -i -X POST -H 'Authorization: Bearer $token' \\
       http://127.0.0.1:$port/api/v1/gateway/administration/router/resync
  $build/busgatectl -u valkey://127.0.0.1:$vport state

Press Ctrl-C to stop.
MSG
if [ -n "${DEMO_EXIT_AFTER_START:-}" ]; then
    curl -s "http://127.0.0.1:$port/echo/42?x=1"; echo
    curl -s --cacert "$dir/cert.pem" "https://localhost:$tls_port/echo/42?x=1"; echo
    url=http://127.0.0.1:$port/orders/7
    printf 'orders: anonymous %s, read token PUT %s, write token PUT %s, read token GET %s\n' \
        "$(curl -s -o /dev/null -w '%{http_code}' "$url")" \
        "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $read_token" -X PUT -d '{}' "$url")" \
        "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $write_token" -X PUT -d '{}' "$url")" \
        "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $read_token" "$url")"
    exit 0
fi
wait
