#!/bin/sh
# lint-packaging.sh: check busgate's packaging and operation files: shellcheck on
# the shell scripts, the man pages through groff and man, the logrotate rules,
# the systemd unit, the init script's actions and LSB exit codes against a
# stand-in daemon, the versions of the deb and the rpm, and lintian on
# packaging/out/ when debs are there.
# Usage: sh scripts/lint-packaging.sh   (from anywhere; exits non-zero on a failure)
set -u

cd "$(dirname "$0")/.." || exit 1

failures=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/busgate-lint.XXXXXX") || exit 1

log() { printf 'lint-packaging: %s\n' "$*"; }
fail() {
    printf 'lint-packaging: FAIL: %s\n' "$*" >&2
    failures=$((failures + 1))
}
have() { command -v "$1" >/dev/null 2>&1; }

# Stand-in daemons started by check_init are stopped here, whatever happened.
cleanup() {
    for pidfile in "$tmp"/run*/busgated.pid; do
        [ -s "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

PKG_SCRIPTS="packaging/debian/busgate.postinst packaging/debian/busgate.prerm packaging/debian/busgate.postrm packaging/debian/package-ini.sh"

check_shell() {
    if ! have shellcheck; then
        fail "shellcheck not installed (apt-get install shellcheck)"
        return
    fi
    # shellcheck disable=SC2086
    shellcheck -s sh etc/init.d/busgate scripts/lint-packaging.sh $PKG_SCRIPTS ||
        fail "shellcheck: init script, maintainer scripts or this script"
    # Sourced by the init script; its variables are used there.
    shellcheck -s sh -e SC2034 etc/default/busgate || fail "shellcheck: etc/default/busgate"
    for f in etc/init.d/busgate $PKG_SCRIPTS; do
        sh -n "$f" || fail "sh -n $f"
    done
}

check_man() {
    for f in docs/man/*.[1-8]; do
        out=$(groff -man -ww -z "$f" 2>&1) || fail "groff $f"
        [ -z "$out" ] || fail "groff warnings in $f: $out"
        out=$(MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null)
        [ -z "$out" ] || fail "man warnings in $f: $out"
    done
}

# logrotate -d parses the rules without rotating; su/create name the busgate
# user, which exists only where the package is installed.
check_logrotate() {
    if ! have logrotate; then
        log "skipped logrotate check: logrotate not installed"
        return
    fi
    sed -e "s|/var/log/busgate|$tmp/log|" -e 's/busgate adm/root root/' \
        etc/logrotate.d/busgate >"$tmp/logrotate.conf"
    mkdir -p "$tmp/log" && : >"$tmp/log/error.log"
    logrotate -d -s "$tmp/logrotate.state" "$tmp/logrotate.conf" >"$tmp/logrotate.out" 2>&1 ||
        fail "logrotate -d: $(grep -i error "$tmp/logrotate.out" | head -3)"
}

# systemd-analyze verify, less its complaint that busgated is not installed here.
check_unit() {
    if ! have systemd-analyze; then
        log "skipped unit check: systemd-analyze not installed"
        return
    fi
    out=$(systemd-analyze verify --man=no etc/systemd/busgate.service 2>&1 |
        grep -v 'Command /usr/sbin/busgated is not executable')
    [ -z "$out" ] || fail "systemd-analyze verify busgate.service: $out"
}

# The ini as the packages ship it must pass "busgated -t" (when a build is there).
check_packaged_ini() {
    busgated=${BUSGATED:-build/busgated}
    if [ ! -x "$busgated" ]; then
        log "skipped packaged ini check: no $busgated (set BUSGATED=path)"
        return
    fi
    cp etc/busgate.ini "$tmp/packaged.ini"
    sh packaging/debian/package-ini.sh "$tmp/packaged.ini" || fail "package-ini.sh"
    "$busgated" -t -c "$tmp/packaged.ini" >"$tmp/t.out" 2>&1 ||
        fail "busgated -t on the packaged ini: $(cat "$tmp/t.out")"
}

check_versions() {
    deb=$(sed -n '1s/^busgate (\([^)-]*\).*/\1/p' packaging/debian/changelog)
    rpm=$(sed -n 's/^Version:[[:space:]]*//p' packaging/rpm/busgate.spec)
    if [ -z "$deb" ] || [ "$deb" != "$rpm" ]; then
        fail "version: debian/changelog has '$deb', busgate.spec has '$rpm'"
    fi
}

# A stand-in for busgated: "-t" fails when the ini contains "bogus"; otherwise
# it detaches, writes its pid file and records SIGHUPs. It runs under a copy of
# sh named busgated, so the init script's /proc/PID/exe check accepts it.
make_stand_in() {
    dir=$1
    mkdir -p "$dir/sbin" "$dir/lib" "$dir/run"
    cp "$(command -v sh)" "$dir/lib/busgated"
    cat >"$dir/sbin/busgated" <<EOF
#!$dir/lib/busgated
pidfile=$dir/run/busgated.pid
case "\$1" in
--child)
    printf %s \$\$ >"\$pidfile"
    trap 'echo hup >>$dir/hups' HUP
    trap 'rm -f "\$pidfile"; exit 0' TERM
    while :; do sleep 1 & wait \$!; done ;;
esac
while getopts c:tgs: opt; do
    case "\$opt" in c) conf=\$OPTARG ;; t) test_only=1 ;; *) ;; esac
done
if grep -q bogus "\$conf"; then
    echo "\$conf:2: [gateway] bogus = 'x': unknown key (allowed: workers, ...)" >&2
    [ -n "\${test_only:-}" ] && exit 1
    exit 2
fi
[ -n "\${test_only:-}" ] && { echo "configuration file \$conf test is successful"; exit 0; }
"\$0" --child </dev/null >/dev/null 2>&1 &
i=0; while [ ! -s "\$pidfile" ] && [ \$i -lt 50 ]; do sleep 0.1; i=\$((i + 1)); done
exit 0
EOF
    chmod 755 "$dir/sbin/busgated"
    printf '[gateway]\nworkers = 2\npid_file = "%s/run/busgated.pid" ; the stand-in writes here\n' \
        "$dir" >"$dir/busgate.ini"
    printf 'CONFIG=%s/busgate.ini\nSTOP_TIMEOUT=5\n' "$dir" >"$dir/default"
    # No init-functions: their systemd redirect must not catch this copy.
    sed -e "s|^DAEMON=.*|DAEMON=$dir/sbin/busgated|" -e "s|^DEFAULTS=.*|DEFAULTS=$dir/default|" \
        -e "s|/lib/lsb/init-functions|$dir/no-init-functions|g" \
        etc/init.d/busgate >"$dir/init"
    if [ "$2" = portable ]; then
        sed -i 's/command -v start-stop-daemon/false/' "$dir/init"
    fi
}

# expect WHAT WANTED_RC ACTION: runs the init script copy, compares its exit code.
expect() {
    what=$1 want=$2
    shift 2
    sh "$dir/init" "$@" >"$dir/out" 2>&1
    got=$?
    [ "$got" -eq "$want" ] || fail "init ($mode) $what: exit $got, expected $want: $(cat "$dir/out")"
}

master_pid() { cat "$dir/run/busgated.pid" 2>/dev/null; }

hups() {
    if [ -e "$dir/hups" ]; then wc -l <"$dir/hups"; else echo 0; fi
}

# Waits up to 5 s for the stand-in to have recorded $1 SIGHUPs.
hups_reach() {
    i=0
    while [ "$(hups)" -lt "$1" ] && [ "$i" -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(hups)" -eq "$1" ]
}

check_init_mode() {
    mode=$1
    dir="$tmp/run-$mode"
    make_stand_in "$dir" "$mode"
    expect "status before start" 3 status
    expect "start" 0 start
    expect "status after start" 0 status
    pid=$(master_pid)
    expect "second start" 0 start
    [ "$(master_pid)" = "$pid" ] || fail "init ($mode): second start replaced the daemon"
    expect "reload" 0 reload
    hups_reach 1 || fail "init ($mode): reload sent no SIGHUP"
    cp "$dir/busgate.ini" "$dir/busgate.ini.good"
    echo "bogus = x" >>"$dir/busgate.ini"
    expect "reload with a bad config" 1 reload
    grep -q "bogus = 'x': unknown key" "$dir/out" || fail "init ($mode): bad config error not printed"
    expect "restart with a bad config" 1 restart
    if ! kill -0 "$pid" 2>/dev/null || [ "$(master_pid)" != "$pid" ]; then
        fail "init ($mode): a bad config touched the running daemon"
    fi
    hups_reach 1 || fail "init ($mode): a bad config was signalled"
    cp "$dir/busgate.ini.good" "$dir/busgate.ini"
    expect "restart" 0 restart
    if [ -z "$(master_pid)" ] || [ "$(master_pid)" = "$pid" ]; then
        fail "init ($mode): restart did not start a new daemon"
    fi
    kill -KILL "$(master_pid)"
    sleep 0.2
    expect "status of a dead daemon" 1 status
    expect "start over a stale pid file" 0 start
    pid=$(master_pid)
    expect "stop" 0 stop
    kill -0 "$pid" 2>/dev/null && fail "init ($mode): daemon still running after stop"
    expect "status after stop" 3 status
    expect "stop when stopped" 0 stop
    expect "reload when stopped" 7 reload
    expect "unknown action" 2 frobnicate
}

check_init() {
    if have start-stop-daemon; then
        check_init_mode ssd
    else
        log "start-stop-daemon not installed: only the portable path is checked"
    fi
    check_init_mode portable
}

check_lintian() {
    set -- packaging/out/*.changes
    if [ ! -e "$1" ]; then
        log "skipped lintian: no packages in packaging/out (make deb)"
        return
    fi
    if ! have lintian; then
        fail "lintian not installed (apt-get install lintian)"
        return
    fi
    # Errors fail; warnings are printed and must be explained in the release note.
    lintian --fail-on error "$@" ||
        fail "lintian reported errors"
}

check_shell
check_man
check_logrotate
check_unit
check_packaged_ini
check_versions
check_init
check_lintian

if [ "$failures" -ne 0 ]; then
    log "$failures check(s) failed"
    exit 1
fi
log "all checks passed"
