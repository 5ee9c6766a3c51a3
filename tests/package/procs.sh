# procs.sh: the package test's view of processes: the installed busgated's master and workers,
# a private valkey-server, and a background HTTP client loop. Sourced by test_package.sh.

DAEMON=/usr/sbin/busgated
PIDFILE=/run/busgate/busgated.pid
MASTER_TITLE='busgate: master process'
WORKER_TITLE='busgate: worker process'

# Every process running the installed binary, also after purge deleted it. Other
# engineers' busgated from build trees run other paths and are not counted.
installed_pids() {
    for exe in /proc/[0-9]*/exe; do
        target=$(readlink "$exe" 2>/dev/null) || continue
        case "$target" in
            "$DAEMON" | "$DAEMON (deleted)")
                p=${exe#/proc/}
                echo "${p%/exe}"
                ;;
        esac
    done
}

# Processes of the busgate user (none may be left after stop).
user_pids() {
    id busgate >/dev/null 2>&1 || return 0
    ps -o pid= -u busgate 2>/dev/null | tr -d ' '
}

no_busgate_left() {
    [ -z "$(installed_pids)" ] && [ -z "$(user_pids)" ]
}

# The master's pid from the pid file, when that names the installed binary.
master_pid() {
    [ -r "$PIDFILE" ] || return 1
    mp_read=""
    # libbsd's pidfile_write() writes no newline: read fails at end of file but sets mp_read.
    read -r mp_read <"$PIDFILE" || [ -n "$mp_read" ] || return 1
    [ "$(readlink "/proc/$mp_read/exe" 2>/dev/null)" = "$DAEMON" ] || return 1
    echo "$mp_read"
}

# "USER PID TITLE" of each child of the master.
master_children() {
    ps -o user=,pid=,args= --ppid "$1" 2>/dev/null
}

# worker_pids MASTER: sorted pids of its workers.
worker_pids() {
    master_children "$1" | awk -v t="$WORKER_TITLE" '{ u = $1; p = $2; $1 = $2 = ""; sub(/^ +/, "") }
        $0 == t { print p }' | sort -n | tr '\n' ' '
}

# workers_are N: exactly one installed master whose title is right, with exactly N
# children, each a worker running as busgate.
workers_are() {
    mp=$(master_pid) || return 1
    [ "$(ps -o args= -p "$mp")" = "$MASTER_TITLE" ] || return 1
    n=0
    kids=$(master_children "$mp")
    [ -n "$kids" ] || return 1
    while read -r u p t; do
        [ "$u" = busgate ] && [ "$t" = "$WORKER_TITLE" ] || return 1
        [ -n "$p" ] && n=$((n + 1))
    done <<EOF
$kids
EOF
    masters=0
    for p in $(installed_pids); do
        [ "$(ps -o args= -p "$p")" = "$MASTER_TITLE" ] && masters=$((masters + 1))
    done
    [ "$n" -eq "$1" ] && [ "$masters" -eq 1 ]
}

# Prints the process picture, for the log of a failed check.
show_procs() {
    for p in $(installed_pids) $(user_pids); do
        ps -o user=,pid=,ppid=,args= -p "$p" 2>/dev/null
    done | sort -u
}

# valkey_start DIR: a private server on a free loopback port; sets VALKEY_PID and VALKEY_PORT.
valkey_start() {
    server=valkey-server cli=valkey-cli
    have valkey-server || { server=redis-server cli=redis-cli; }
    vk_try=0
    while [ "$vk_try" -lt 3 ]; do
        vk_try=$((vk_try + 1))
        VALKEY_PORT=$(free_port) || return 1
        "$server" --port "$VALKEY_PORT" --bind 127.0.0.1 --dir "$1" --save '' \
            --appendonly no --daemonize no >>"$1/valkey.log" 2>&1 &
        VALKEY_PID=$!
        if wait_until 50 valkey_ping; then
            return 0
        fi
        kill "$VALKEY_PID" 2>/dev/null
        wait "$VALKEY_PID" 2>/dev/null
        VALKEY_PID=""
    done
    return 1
}

valkey_ping() {
    [ "$("$cli" -h 127.0.0.1 -p "$VALKEY_PORT" ping 2>/dev/null)" = PONG ]
}

# stop_pid PID: SIGTERM, up to 5 s, then SIGKILL; PID is a child of this shell.
stop_pid() {
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    wait_until 50 sh -c "! kill -0 $1" || kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    return 0
}

# client_loop URL OUT STOP: one request at a time, each status code a line of OUT,
# until the file STOP exists; at most 60 s and 5000 requests.
client_loop() {
    end=$(($(date +%s) + 60))
    n=0
    while [ ! -e "$3" ] && [ "$n" -lt 5000 ] && [ "$(date +%s)" -lt "$end" ]; do
        http_code GET "$1" >>"$2"
        echo >>"$2"
        n=$((n + 1))
    done
}

# lines_in FILE: its number of lines (0 when absent).
lines_in() {
    if [ -e "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi
}

at_least_lines() { [ "$(lines_in "$1")" -ge "$2" ]; }
