# shellcheck shell=sh
# lib.sh: helpers shared by the benchmark scripts in bench/ (http_bench.sh,
# auth_http_bench.sh, limits_bench.sh, ratelimit_bench.sh, stream_bench.sh,
# cluster_bench.sh). Not run on its own: a script sources it with
# `. "$(dirname "$0")/lib.sh"`, then calls bench_init. POSIX sh (dash), like the scripts.
#
# The script sets vport (Valkey's port) before start_valkey or gateway_ini.
# What it keeps in the script's shell: dir (the private temp dir), pids (the process groups
# the script started, each by its leader's pid), last_pid (the last one started), valkey_pid,
# hz (clock ticks per second) and the figures wrk_figures sets. What the script may
# redefine after sourcing: on_stop, to stop what pids does not list.
# shellcheck disable=SC2034 # figures and pids are set here for the script that sources this
# shellcheck disable=SC2154 # vport is the script's

hz=$(getconf CLK_TCK 2>/dev/null || echo 100)

# bench_init prefix tmpname [keep]: say's prefix; the temp dir /tmp/busgate-TMPNAME-XXXXXX,
# kept on exit when KEEP is 1; the traps that stop everything on exit, INT (130) and TERM (143).
bench_init() {
    bench_prefix=$1
    bench_keep=${3:-0}
    dir=$(mktemp -d "/tmp/busgate-$2-XXXXXX") || exit 1
    pids=""
    trap 'stop_all; exit 130' INT
    trap 'stop_all; exit 143' TERM
    trap 'stop_all' EXIT
}

# say words...: one line of output, "PREFIX: words".
say() { printf '%s: %s\n' "$bench_prefix" "$*"; }

# ---------------------------------------------------------------- processes
# spawn name command...: runs it in the background in its own process group, output to
# DIR/name.out; sets last_pid. setsid does not fork here (a background job of a
# non-interactive shell is no group leader), so stopping the group stops what it forked.
spawn() {
    name=$1
    shift
    setsid "$@" >"$dir/$name.out" 2>&1 &
    last_pid=$!
}

# start name command...: spawn, and list it in pids for stop_all.
start() {
    spawn "$@"
    pids="$pids $last_pid"
}

# stop_group pid: TERM to its process group, 3 s to go (busgated drains), then KILL.
# dash's kill takes no "--": "-PID" alone names the group.
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

# on_stop: called first by stop_all; a script redefines it to stop what pids does not list.
on_stop() { :; }

# stop_all: on_stop, then every group in pids, newest first (so Valkey goes last and nobody
# logs a lost bus on the way out); removes the temp dir unless bench_init was told to keep
# it. The traps run it once.
stop_all() {
    trap - INT TERM EXIT
    on_stop
    order=""
    for p in $pids; do order="$p $order"; done
    for p in $order; do stop_group "$p"; done
    pids=""
    if [ "${bench_keep:-0}" = 1 ]; then say "kept $dir"; else rm -rf "$dir"; fi
}

# wait_until tenths command...: true once the command succeeds (output discarded), tried
# every 0.1 s; false after TENTHS tries.
wait_until() {
    n=$1
    shift
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -ge "$n" ] && return 1
        sleep 0.1
    done
}

# children_of pid: the pids of its children, one per line (walks /proc: no ps needed).
children_of() {
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue
        # shellcheck disable=SC2086
        set -- "$1" ${line##*) } # fields after "(comm) ": state, ppid, ...
        [ "$3" = "$1" ] && { f=${f#/proc/}; echo "${f%/stat}"; }
    done
}

# ticks pid: utime + stime of a process (all its threads), in clock ticks; 0 when it is gone.
ticks() {
    awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# ---------------------------------------------------------------- tools
# have_tools hint tool...: false, after saying "TOOL is missing<HINT>", when one is not on PATH.
have_tools() {
    hint=$1
    shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || { say "$tool is missing$hint"; return 1; }
    done
}

# have_built build bin...: false, after saying so, when BUILD/bin is not built.
have_built() {
    b=$1
    shift
    for bin in "$@"; do
        [ -x "$b/$bin" ] || { say "$b/$bin is not built (make all)"; return 1; }
    done
}

# ---------------------------------------------------------------- free loopback ports
# port_busy port: true when it is listed in /proc/net/tcp{,6}, in any state.
port_busy() {
    hex=$(printf '%04X' "$1")
    awk -v h=":$hex" 'NR > 1 && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# free_port: prints a port in 30000-49999 that is not busy and no earlier call gave out
# (those are kept in DIR/ports, since each call runs in a $(...) subshell).
free_port() {
    while :; do
        p=$(($(od -An -N2 -tu2 /dev/urandom) % 20000 + 30000))
        grep -qx "$p" "$dir/ports" 2>/dev/null && continue
        port_busy "$p" || break
    done
    echo "$p" >>"$dir/ports"
    echo "$p"
}

# ---------------------------------------------------------------- valkey, busgate, HTTP
# start_valkey: a private valkey-server on $vport, files in DIR, listed in pids; sets
# valkey_pid; false when it does not answer PING within 5 s.
start_valkey() {
    start valkey valkey-server --port "$vport" --bind 127.0.0.1 --dir "$dir" --save '' \
        --appendonly no --daemonize no
    valkey_pid=$last_pid
    wait_until 50 valkey-cli -p "$vport" ping
}

# gateway_ini instance_id port stem [workers]: prints the sections every bench config starts
# with: [gateway] (WORKERS workers, 2 by default, no access log, DIR/STEM.pid and DIR/STEM.log),
# [valkey] on $vport, [messaging]. The script appends its own sections.
gateway_ini() {
    cat <<INI
[gateway]
instance_id = $1
listen = 127.0.0.1:$2
workers = ${4:-2}
pid_file = $dir/$3.pid
error_log = $dir/$3.log
access_log = off
log_level = notice
drain_timeout = 2s

[valkey]
url = valkey://127.0.0.1:$vport

[messaging]
heartbeat_interval = 1s
heartbeat_expiry = 3s
INI
}

# http_status [curl options] url: prints the status code of one request (2 s at most),
# the body thrown away.
http_status() { curl -s -m 2 -o /dev/null -w '%{http_code}' "$@"; }

# http_ok [curl options] url: true when the status is 200.
http_ok() { [ "$(http_status "$@")" = 200 ]; }

# ---------------------------------------------------------------- wrk
# wrk_warmup [wrk options] url: 2 s at 16 connections (connections to the bus, page faults,
# CPU frequency); not reported.
wrk_warmup() { timeout 10 wrk -t2 -c16 -d2s "$@" >/dev/null 2>&1; }

# wrk_run out seconds [wrk options] url: one measured run (-dSECONDS --latency), its output
# in OUT, stopped 20 s after it should have ended.
wrk_run() {
    out=$1 ws=$2
    shift 2
    timeout $((ws + 20)) wrk -d"${ws}s" --latency "$@" >"$out" 2>&1
}

# to_ms wrk-latency: wrk's "505.00us" / "3.25ms" / "1.02s" in milliseconds, "?" otherwise.
to_ms() {
    echo "$1" | awk '/us$/ { printf "%.3f", $0 / 1000; next }
                     /ms$/ { printf "%.3f", $0 + 0; next }
                     /s$/  { printf "%.3f", $0 * 1000; next } { printf "?" }'
}

# wrk_figures out: from wrk's output file, sets rps, reqs (requests in the run), p50, p99
# (as wrk prints them), non2xx and errs (socket errors); each empty when not in the output.
wrk_figures() {
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$1")
    reqs=$(awk '/requests in/ { print $1 }' "$1")
    p50=$(awk '$1 == "50%" { print $2 }' "$1")
    p99=$(awk '$1 == "99%" { print $2 }' "$1")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$1")
    errs=$(awk '/Socket errors:/ { sub(/.*Socket errors: /, ""); gsub(/ /, ""); print }' "$1")
}
