# shellcheck shell=sh
# cost.sh: what one wrk run cost, per request, for bench/http_bench.sh and bench/curves.sh.
# Sourced after lib.sh (it uses say, dir and hz). POSIX sh (dash).
#
# A script calls cost_measure for a measured run (cost_snap, then wrk in its own process group,
# its CPU time read from the shell that waited for it, then cost_snap), then cost_table: CPU
# microseconds per request of each process class, and "other", the rest of the machine (near 0
# on a quiet one). Both samples are taken while every measured process lives (before wrk starts,
# after it has exited), so a delta is never negative: a process gone in between (a restarted
# worker) is shown as n/a, and "other" is never below 0 (the kernel's per-process and per-CPU
# clocks can disagree by a tick or two; that is shown as 0). Also: Valkey's commands per
# request (INFO commandstats deltas), worker RSS, and syscalls per request (perf stat, or
# strace -c) for the profile mode.
# What it keeps in the script's shell: wgroup (the running wrk's process group, for on_stop),
# wrk_ticks, win_ms (the window between the two samples), cost_cpu_us and cost_other_pct (of
# the last cost_table).
# shellcheck disable=SC2034 # wrk_ticks, win_ms and the cost_* figures are for the caller
# shellcheck disable=SC2154 # dir and hz come from lib.sh

# cost_snap name=pid,pid ...: one line "name=ticks ... busy=T irq=T" read in one go (no fork
# per process): each group's utime+stime (all threads), "x" when one of its processes is gone;
# busy = user+nice+system of all CPUs from /proc/stat, irq = irq+softirq (loopback networking
# may land there, depending on the kernel's accounting).
cost_snap() {
    for g in "$@"; do printf '%s\n' "$g"; done | awk '
        {
            name = $0; sub(/=.*/, "", name)
            list = $0; sub(/^[^=]*=/, "", list)
            n = split(list, p, ","); t = 0; gone = 0
            for (i = 1; i <= n; i++) {
                f = "/proc/" p[i] "/stat"
                if ((getline line < f) > 0) {
                    close(f); sub(/.*\) /, "", line); split(line, a, " "); t += a[12] + a[13]
                } else gone = 1
            }
            printf "%s=%s ", name, gone || n == 0 ? "x" : t
        }
        END {
            while ((getline line < "/proc/stat") > 0)
                if (line ~ /^cpu /) { split(line, c, " "); break }
            printf "busy=%d irq=%d\n", c[2] + c[3] + c[4], c[7] + c[8]
        }'
}

# cost_now: milliseconds, wall clock.
cost_now() { echo $(($(date +%s%N) / 1000000)); }

# cost_wrk_start out seconds [wrk options] url: wrk -dSECONDS --latency in the background,
# stopped 20 s after it should have ended; output in OUT. wrk runs in its own process group
# (wgroup, for cost_on_stop), under a shell that reads its own stat once wrk is reaped: its
# children's CPU time is wrk's (and timeout's).
cost_wrk_start() {
    out=$1 ws=$2
    shift 2
    # shellcheck disable=SC2016 # the inner script expands its own arguments
    setsid sh -c 'o=$1 t=$2 s=$3; shift 3
        timeout "$t" wrk -d"${s}s" --latency "$@" >"$o" 2>&1
        rc=$?
        read -r st </proc/$$/stat
        echo "$st" >"$o.stat"
        exit $rc' sh "$out" $((ws + 20)) "$ws" "$@" &
    wgroup=$!
}

# cost_wrk_wait out: waits for the run cost_wrk_start began; sets wrk_ticks (empty when
# unknown); returns wrk's exit status.
cost_wrk_wait() {
    wait "$wgroup"
    rc=$?
    wgroup=""
    wrk_ticks=$(awk '{ sub(/.*\) /, ""); print $14 + $15 }' "$1.stat" 2>/dev/null)
    return $rc
}

# cost_wrk out seconds [wrk options] url: cost_wrk_start, then cost_wrk_wait.
cost_wrk() {
    cost_wrk_start "$@"
    cost_wrk_wait "$1"
}

# cost_on_stop: for the script's on_stop: a wrk still running (its whole group) and the
# syscall counters of cost_syscalls.
cost_on_stop() {
    [ -n "${wgroup:-}" ] && stop_group "$wgroup"
    for t in ${cost_tracers:-}; do stop_group "$t"; done
    return 0
}

# cost_measure out seconds groups [wrk options] url: cost_snap, a wrk run, cost_snap; sets
# cost_before, cost_after (with wrk=TICKS), win_ms, and cost_mid_rss (cost_rss of the pids
# in cost_rss_pids halfway through the run, when set). GROUPS is one argument of blank-separated
# "name=pid,pid" words, e.g. "workers=11,12 valkey=9".
cost_measure() {
    cm_out=$1 cm_s=$2 cm_groups=$3
    shift 3
    # shellcheck disable=SC2086 # the groups are words
    cost_before="$(cost_snap $cm_groups) wrk=0"
    cm_t0=$(cost_now)
    cost_wrk_start "$cm_out" "$cm_s" "$@"
    cost_mid_rss=""
    if [ -n "${cost_rss_pids:-}" ]; then
        sleep "$(awk -v s="$cm_s" 'BEGIN { print s / 2 }')"
        # shellcheck disable=SC2086
        cost_mid_rss=$(cost_rss $cost_rss_pids)
    fi
    cost_wrk_wait "$cm_out"
    cm_rc=$?
    cm_t1=$(cost_now)
    # shellcheck disable=SC2086
    cost_after="$(cost_snap $cm_groups) wrk=${wrk_ticks:-x}"
    win_ms=$((cm_t1 - cm_t0))
    return $cm_rc
}

# cost_table title requests: the table of the last cost_measure. One row per group (and wrk),
# then other (the rest of the machine: what a quiet machine keeps near 0) and the total of the
# rows above it; sets cost_cpu_us to that total (CPU us per request) and cost_other_pct to
# other's share (% of one core).
cost_table() {
    cost_cpu_us="n/a" cost_other_pct="n/a"
    if [ -z "$2" ] || [ "$2" -le 0 ] || [ "$win_ms" -le 0 ]; then
        say "cost per request: $1: no requests counted, no figures"
        return 0
    fi
    say "cost per request: $1 ($2 requests in $((win_ms / 1000)).$(printf '%03d' $((win_ms % 1000))) s)"
    printf '%s\n%s\n' "$cost_before" "$cost_after" | awk -v req="$2" -v ms="$win_ms" -v hz="$hz" '
        function us(d) { return d * 1e6 / hz / req }
        function pc(d) { return d * 100000 / hz / ms }
        function val(line, key,   x, y) { split(line, x, " " key "="); split(x[2], y, " "); return y[1] }
        NR == 1 { for (i = 1; i <= NF; i++) { split($i, kv, "="); b[kv[1]] = kv[2] } next }
        {
            printf "    %-10s %11s %10s\n", "class", "CPU us/req", "% of core"
            ours = 0
            for (i = 1; i <= NF; i++) {
                split($i, kv, "="); k = kv[1]
                if (k == "busy" || k == "irq") continue
                if (kv[2] == "x" || b[k] == "x" || kv[2] + 0 < b[k] + 0) {
                    printf "    %-10s %11s %10s  (a process of it exited during the run)\n", k,
                        "n/a", "n/a"
                    continue
                }
                d = kv[2] - b[k]; ours += d
                printf "    %-10s %11.1f %9.0f%%\n", k, us(d), pc(d)
            }
            busy = val(" " $0, "busy") - b["busy"]; irq = val(" " $0, "irq") - b["irq"]
            other = busy + irq - ours
            note = "the rest of the machine, near 0 when quiet"
            if (other < 0) { other = 0; note = note "; clock skew shown as 0" }
            printf "    %-10s %11.1f %9.0f%%  (%s)\n", "other", us(other), pc(other), note
            printf "    %-10s %11.1f %9.0f%%  (the classes above other; irq+softirq of the machine: %.1f us/req)\n",
                "total", us(ours), pc(ours), us(irq)
            if (pc(other) > 25)
                printf "    WARNING: other processes used %.0f%% of a core: compare figures from a quiet machine only\n", pc(other)
            printf "TOTAL %.1f %.0f\n", us(ours), pc(other)
        }' >"$dir/cost.txt"
    grep -v '^TOTAL' "$dir/cost.txt"
    cost_cpu_us=$(awk '$1 == "TOTAL" { print $2 }' "$dir/cost.txt")
    cost_other_pct=$(awk '$1 == "TOTAL" { print $3 }' "$dir/cost.txt")
}

# cost_cmdstats port: Valkey's command counters, "name calls" per line.
cost_cmdstats() {
    valkey-cli -p "$1" info commandstats 2>/dev/null | tr -d '\r' |
        awk -F'[:=,]' '/^cmdstat_/ { print substr($1, 9), $3 }'
}

# cost_commands before_file after_file requests: Valkey commands per request, the busiest first
# and their total (the bench's own INFO is left out; those under 0.005 per request, the
# gateway's and services' periodic work, are summed on one line).
cost_commands() {
    say "valkey commands per request ($3 requests)"
    awk -v req="$3" 'NR == FNR { b[$1] = $2; next }
        $1 != "info" && $2 - b[$1] > 0 { d = $2 - b[$1]; t += d; printf "%s %.3f\n", $1, d / req }
        END { printf "TOTAL %.3f\n", t / req }' "$1" "$2" | sort -k2 -rn |
        awk '$1 == "TOTAL" { t = $2; next }
            $2 >= 0.005 { printf "    %-20s %8.2f\n", $1, $2; next }
            { rare++; r += $2 }
            END {
                if (rare) printf "    %-20s %8.2f\n", "(" rare " others)", r
                printf "    %-20s %8.2f\n", "total", t
            }'
}

# cost_rss pid...: one line per live process: "PID rss=KiB anon=KiB file=KiB shmem=KiB".
cost_rss() {
    for p in "$@"; do
        awk -v p="$p" '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 }
            /^RssShmem:/ { s = $2 } END { if (r != "") printf "%s rss=%d anon=%d file=%d shmem=%d\n",
                p, r, a, f, s }' "/proc/$p/status" 2>/dev/null
    done
}

# cost_rss_line label: one printed line from cost_rss output on stdin: each process's RSS in
# MiB (anon, file, shmem: the shared routing table and other mappings).
cost_rss_line() {
    say "$1: $(awk '{ split($2, r, "="); split($3, a, "="); split($4, f, "=")
        split($5, s, "="); printf "%s%s %.1f MiB (anon %.1f, file %.1f, shmem %.1f)", (NR > 1 ? "; " : ""),
        $1, r[2] / 1024, a[2] / 1024, f[2] / 1024, s[2] / 1024 }')"
}

# ---------------------------------------------------------------- syscalls (profile mode)
# cost_syscall_tool: "perf" when perf can count syscall tracepoints here, else "strace" when
# strace is installed, else nothing (and says why). BENCH_SYSCALLS=strace picks strace.
cost_syscall_tool() {
    if [ "${BENCH_SYSCALLS:-}" = strace ] && command -v strace >/dev/null 2>&1; then
        echo strace
    elif command -v perf >/dev/null 2>&1 &&
        perf stat -e 'syscalls:sys_enter_getpid' -x, -- true >/dev/null 2>&1; then
        echo perf
    elif command -v strace >/dev/null 2>&1; then
        echo strace
    else
        say "syscalls per request: skipped (neither perf with syscall tracepoints nor strace" \
            "here: perf_event_paranoid, no tracefs or not installed)" >&2
    fi
}

# The syscalls perf counts one by one (the rest shows as "(others)", from raw_syscalls): few
# tracepoints attach fast and slow the processes less than all of them would.
cost_syscall_list="read write readv writev sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg
    epoll_wait epoll_pwait epoll_pwait2 epoll_ctl poll ppoll select pselect6 io_uring_enter futex
    accept accept4 connect close shutdown openat setsockopt getsockopt ioctl fcntl nanosleep
    clock_nanosleep getrandom mmap munmap mprotect madvise brk rt_sigprocmask sched_yield"

# cost_syscalls out seconds groups [wrk options] url: counts the syscalls of each group
# (GROUPS as in cost_measure) over one wrk run, then prints them per request: the 15 most
# frequent over all groups, the rest, and each group's total. Counting slows the processes
# (perf stat on tracepoints a little, strace -c -f, the fallback, a lot), so the run's req/s
# means nothing; the counts per request still hold (a slower run batches less: they lean to
# the high side).
cost_syscalls() {
    cs_out=$1 cs_s=$2 cs_groups=$3
    shift 3
    cs_tool=$(cost_syscall_tool)
    [ -n "$cs_tool" ] || return 0
    cs_events=$(perf list 'syscalls:sys_enter_*' 2>/dev/null | awk -v want="$cost_syscall_list" '
        BEGIN { n = split(want, w, /[ \n]+/); for (i = 1; i <= n; i++) ok["syscalls:sys_enter_" w[i]] = 1 }
        ok[$1] { printf "%s,", $1 }')raw_syscalls:sys_enter
    cs_tracers="" cs_names=""
    for g in $cs_groups; do
        name=${g%%=*} list=${g#*=}
        cs_names="$cs_names $name"
        if [ "$cs_tool" = perf ]; then
            # -I: a first interval in the file says the counters are on.
            spawn "sys-$name" perf stat -I 250 -x, -e "$cs_events" -o "$dir/sys-$name.txt" -p "$list"
        else
            # shellcheck disable=SC2046 # one -p per pid
            spawn "sys-$name" strace -c -f -o "$dir/sys-$name.txt" $(echo "$list" | tr ',' '\n' |
                sed 's/^/-p /')
        fi
        cs_tracers="$cs_tracers $last_pid"
    done
    cost_tracers=$cs_tracers # for cost_on_stop
    if [ "$cs_tool" = perf ]; then
        for name in $cs_names; do
            wait_until 100 grep -q sys_enter "$dir/sys-$name.txt" ||
                say "syscalls: perf stat on $name did not start counting within 10 s"
        done
    else
        sleep 2 # strace prints nothing before it detaches
    fi
    cost_wrk "$cs_out" "$cs_s" "$@"
    for t in $cs_tracers; do kill -INT "$t" 2>/dev/null; done
    for t in $cs_tracers; do
        i=0
        while [ $i -lt 50 ] && kill -0 "$t" 2>/dev/null; do
            sleep 0.1
            i=$((i + 1))
        done
        stop_group "$t"
    done
    cost_tracers=""
    n=$(awk '/requests in/ { print $1 }' "$cs_out")
    if [ -z "$n" ] || [ "$n" -eq 0 ]; then
        say "syscalls per request: the wrk run failed"
        return 0
    fi
    say "syscalls per request ($cs_tool, $n requests; the 15 most frequent over all columns)"
    for name in $cs_names; do
        # "syscall count" per line; "TOTAL count" from perf's raw_syscalls
        if [ "$cs_tool" = perf ]; then
            awk -F, '$4 ~ /sys_enter/ && $2 ~ /^[0-9]+$/ { ev = $4; sub(/^.*sys_enter_?/, "", ev)
                c[ev == "" ? "TOTAL" : ev] += $2 } END { for (e in c) print e, c[e] }' \
                "$dir/sys-$name.txt"
        else
            awk 'NF >= 5 && $4 ~ /^[0-9]+$/ && $NF != "total" { print $NF, $4 }' "$dir/sys-$name.txt"
        fi >"$dir/sys-$name.counts"
    done
    # shellcheck disable=SC2046 # one file per group
    awk -v req="$n" -v names="$cs_names" '
        BEGIN { k = split(names, col, " "); for (i = 1; i < ARGC; i++) idx[ARGV[i]] = i }
        { f = idx[FILENAME] }
        $1 == "TOTAL" { total[f] = $2; next }
        $2 > 0 { c[f, $1] += $2; named[f] += $2; all[$1] += $2 }
        END {
            printf "    %-18s", "syscall"
            for (g = 1; g <= k; g++) printf " %9s", col[g]
            printf "\n"
            n = 0
            for (s in all) order[++n] = s
            for (i = 1; i <= n; i++) # by count over all groups, highest first
                for (j = i + 1; j <= n; j++)
                    if (all[order[j]] > all[order[i]]) { x = order[i]; order[i] = order[j]; order[j] = x }
            for (i = 1; i <= n && i <= 15; i++) {
                printf "    %-18s", order[i]
                for (g = 1; g <= k; g++) printf " %9.2f", c[g, order[i]] / req
                printf "\n"
            }
            printf "    %-18s", "(others)"
            for (g = 1; g <= k; g++) {
                if (!(g in total)) total[g] = named[g]
                shown = 0
                for (i = 1; i <= n && i <= 15; i++) shown += c[g, order[i]]
                printf " %9.2f", (total[g] > shown ? total[g] - shown : 0) / req
            }
            printf "\n    %-18s", "total"
            for (g = 1; g <= k; g++) printf " %9.2f", total[g] / req
            printf "\n"
        }' $(for name in $cs_names; do echo "$dir/sys-$name.counts"; done)
}
