# lib.sh: helpers of the package test: check lines and counts, bounded waits, free ports, ini edits.
# Sourced by test_package.sh (POSIX sh); sets and reads the globals PASSED, FAILED, LOG_DIR.

PASSED=0
FAILED=0

say() { printf 'package test: %s\n' "$*"; }

# check NAME COMMAND...: runs COMMAND, one "ok"/"not ok" line; on failure the tail of
# its output follows. Its output is also kept in LOG_DIR/steps.log.
check() {
    name=$1
    shift
    "$@" >"$LOG_DIR/step.out" 2>&1
    rc=$?
    cat "$LOG_DIR/step.out" >>"$LOG_DIR/steps.log"
    if [ "$rc" -eq 0 ]; then
        pass "$name"
        return 0
    fi
    fail "$name"
    tail -n 15 "$LOG_DIR/step.out" | sed 's/^/#     /'
    return "$rc"
}

pass() {
    PASSED=$((PASSED + 1))
    printf 'ok - %s\n' "$1"
}

# fail NAME [WHY]: the reason goes on the next line, indented, so the check line stays greppable.
fail() {
    FAILED=$((FAILED + 1))
    printf 'not ok - %s\n' "$1"
    [ -z "${2:-}" ] || printf '#   %s\n' "$2"
}

# verdict NAME RC [WHY]: "ok" when RC (the status of the command just run) is 0; returns RC.
verdict() {
    if [ "$2" -eq 0 ]; then pass "$1"; else fail "$1" "${3:-}"; fi
    return "$2"
}

have() { command -v "$1" >/dev/null 2>&1; }

# bounded LIMIT COMMAND...: COMMAND with a time limit in seconds. It runs in the background
# (timeout makes it a process group) and is waited for, so that a signal to this shell (Ctrl-C)
# runs the cleanup at once instead of after the command; stop_bounded ends it there.
RUN_PID=""
bounded() {
    limit=$1
    shift
    timeout "$limit" "$@" &
    RUN_PID=$!
    wait "$RUN_PID"
    rc=$?
    RUN_PID=""
    return "$rc"
}

# Ends a command started by bounded, and its whole process group (timeout forwards the signal).
stop_bounded() {
    [ -n "$RUN_PID" ] || return 0
    kill -TERM "$RUN_PID" 2>/dev/null
    wait "$RUN_PID" 2>/dev/null
    wait_until 100 sh -c "! kill -0 -$RUN_PID" 2>/dev/null
    RUN_PID=""
}

# wait_until TENTHS COMMAND...: polls COMMAND every 0.1 s, at most TENTHS times. COMMAND runs
# in a subshell: sh has no local variables, and a polled function must not change the caller's.
wait_until() {
    wu_left=$1
    shift
    while [ "$wu_left" -gt 0 ]; do
        ("$@") >/dev/null 2>&1 && return 0
        sleep 0.1
        wu_left=$((wu_left - 1))
    done
    return 1
}

# A loopback TCP port nobody listens on right now (the caller retries if it is taken meanwhile).
free_port() {
    i=0
    while [ "$i" -lt 50 ]; do
        p=$(($(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000 + 30000))
        if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
            echo "$p"
            return 0
        fi
        i=$((i + 1))
    done
    return 1
}

# http_code METHOD URL [CURL_ARGS...]: prints the status code ("000" when no answer).
http_code() {
    method=$1 url=$2
    shift 2
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X "$method" "$@" "$url" 2>/dev/null ||
        true
}

http_is() { # WANT METHOD URL [CURL_ARGS...]
    want=$1
    shift
    [ "$(http_code "$@")" = "$want" ]
}

# ini_set FILE SECTION KEY VALUE: inside [SECTION], the first "KEY = ..." or ";KEY = ..." line
# becomes "KEY = VALUE"; without one, the line is added right after the section header.
ini_set() {
    awk -v sec="$2" -v key="$3" -v val="$4" '
        function flush() { if (insec && !done) { print key " = " val; done = 1 } }
        /^[ \t]*\[/ {
            if (insec && !done) { print key " = " val; done = 1 }
            s = $0; gsub(/[][ \t\r]/, "", s); insec = (s == sec)
            print; next
        }
        insec && !done && $0 ~ "^[;#]?[ \t]*" key "[ \t]*[=:]" { print key " = " val; done = 1; next }
        { print }
        END { flush() }
    ' "$1" >"$1.pkgtest.new" && cat "$1.pkgtest.new" >"$1" && rm -f "$1.pkgtest.new"
}

# ini_get FILE SECTION KEY: the value of an uncommented KEY in [SECTION].
ini_get() {
    awk -v sec="$2" -v key="$3" '
        /^[ \t]*\[/ { s = $0; gsub(/[][ \t\r]/, "", s); insec = (s == sec); next }
        insec && $0 ~ "^[ \t]*" key "[ \t]*[=:]" { v = $0; sub(/^[^=:]*[=:][ \t]*/, "", v); print v; exit }
    ' "$1"
}

# line_of FILE TEXT: the number of the first line equal to TEXT.
line_of() {
    awk -v t="$2" '$0 == t { print NR; exit }' "$1"
}
