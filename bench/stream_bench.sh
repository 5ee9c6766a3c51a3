#!/bin/sh
# stream_bench.sh BUILD: throughput of one streamed 100 MiB body. curl downloads
# GET /echo/stream?n=1600&size=65536 through busgated (2 workers) from an echo-service that
# streams it in 64 KiB pieces over the bus, and, when nginx is installed, the same 100 MiB
# through nginx proxying (proxy_buffering off, so it streams too) an upstream that writes it
# chunked in 64 KiB pieces (a few lines of python3; measured alone as well, since it caps
# nginx's figure). Prints MB/s of each run and the median; never judges the figures. Exits 1
# when busgate could not run.
#
# Everything runs on loopback, on free ports, in one private temp dir, stopped on exit.
#   STREAM_BENCH_RUNS=3   downloads per target
#   STREAM_BENCH_KEEP=1   keep the temp dir (configs, logs) afterwards
set -u

build=${1:-build}
runs=${STREAM_BENCH_RUNS:-3}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init stream streambench "${STREAM_BENCH_KEEP:-0}"
total=$((1600 * 65536))

# measure label url: runs downloads, prints each and the median MB/s (1 MB = 10^6 bytes).
measure() {
    label=$1 url=$2 rates=""
    curl -s -o /dev/null "$url" # warm-up: connections, page faults
    i=0
    while [ $i -lt "$runs" ]; do
        out=$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$url")
        # shellcheck disable=SC2086 # split on purpose: code, size, time
        set -- $out
        if [ "$1" != 200 ] || [ "$2" != "$total" ]; then
            say "$label: run $i failed (status $1, $2 of $total bytes)"
            return 1
        fi
        rate=$(awk -v b="$2" -v t="$3" 'BEGIN { printf "%.0f", b / t / 1e6 }')
        rates="$rates $rate"
        i=$((i + 1))
    done
    median=$(echo "$rates" | tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ a[NR] = $1 }
        END { print a[int((NR + 1) / 2)] }')
    say "$label: 100 MiB streamed, MB/s per run:$rates, median $median"
}

have_tools " (make deps installs it)" valkey-server valkey-cli curl || exit 1
have_built "$build" busgated echo-service || exit 1

# ---------------------------------------------------------------- busgate
vport=$(free_port)
gport=$(free_port)
start_valkey || { say "valkey-server did not start"; exit 1; }
gateway_ini streambench "$gport" busgated >"$dir/busgate.ini"
start busgated "$build/busgated" -g -c "$dir/busgate.ini"
start echo "$build/echo-service" -c "$dir/busgate.ini" -n echo-1
wait_until 100 grep -q registered "$dir/echo.out" || { say "echo-service did not register"; exit 1; }
wait_until 100 http_ok "http://127.0.0.1:$gport/echo/stream?n=1" || { say "busgated does not route /echo/stream"; exit 1; }
measure busgate "http://127.0.0.1:$gport/echo/stream?n=1600&size=65536" || exit 1

# ---------------------------------------------------------------- nginx, when installed
nginx_bin=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })
if [ -z "$nginx_bin" ] || ! command -v python3 >/dev/null 2>&1; then
    say "nginx or python3 not installed: no comparison (sh bench/http_bench.sh installs nginx)"
    exit 0
fi
uport=$(free_port)
pport=$(free_port)
cat >"$dir/upstream.py" <<'PY'
# A chunked upstream: 1600 chunks of 64 KiB, like the echo's stream.
import http.server, sys
PIECE = bytes(range(256)) * 256
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        head = b"%x\r\n" % len(PIECE)
        for _ in range(1600):
            self.wfile.write(head + PIECE + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
mkdir -p "$dir/nginx"
chmod 755 "$dir" "$dir/nginx"
cat >"$dir/nginx/nginx.conf" <<NGINX
worker_processes 2;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    proxy_temp_path $dir/nginx/proxy;
    client_body_temp_path $dir/nginx/body;
    server {
        listen 127.0.0.1:$pport;
        location / {
            proxy_pass http://127.0.0.1:$uport;
            proxy_http_version 1.1;
            proxy_buffering off;
        }
    }
}
NGINX
start upstream python3 "$dir/upstream.py" "$uport"
start nginx "$nginx_bin" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log"
wait_until 50 http_ok "http://127.0.0.1:$uport/" || { say "upstream did not start"; exit 0; }
wait_until 50 http_ok "http://127.0.0.1:$pport/" || { say "nginx did not start"; exit 0; }
measure "upstream alone" "http://127.0.0.1:$uport/"
measure "nginx proxy" "http://127.0.0.1:$pport/"
exit 0
