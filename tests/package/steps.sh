# steps.sh: the package test's steps, in the order test_package.sh runs them, and the cleanup
# that leaves the machine as it was found. Sourced by test_package.sh.

INSTALLED=0
USER_EXISTED=1
GROUP_EXISTED=1
VALKEY_PID=""
ECHO_PID=""
CLIENT_PID=""
CLEANED=0

note_machine_state() {
    getent passwd busgate >/dev/null || USER_EXISTED=0
    getent group busgate >/dev/null || GROUP_EXISTED=0
}

# run_logged NAME TIMEOUT COMMAND...: output to LOG_DIR/NAME.log, its tail shown on failure.
run_logged() {
    log=$LOG_DIR/$1.log limit=$2
    shift 2
    bounded "$limit" "$@" >"$log" 2>&1 && return 0
    rc=$?
    [ "$rc" -eq 124 ] && echo "timed out after $limit s" >>"$log"
    tail -n 25 "$log" | sed 's/^/#     /'
    return "$rc"
}

step_build_packages() {
    # Build directories under TMP: whatever an interrupted build leaves, cleanup removes.
    mkdir -p "$TMP/build"
    run_logged deb 240 make --no-print-directory deb PKG_OUT="$OUT" PKG_TMPDIR="$TMP/build"
    verdict "make deb builds the packages" $? "log: see above"
    for p in $DEBS; do
        deb_of "$p" >/dev/null
        verdict "deb $p built" $?
    done
    run_logged rpm 240 make --no-print-directory rpm PKG_OUT="$OUT" PKG_TMPDIR="$TMP/build"
    verdict "make rpm builds the packages" $? "log: see above"
    for p in busgate busgate-libs busgate-devel; do
        rpm_of "$p" >/dev/null
        verdict "rpm $p built" $?
    done
}

# dpkg -i of the three debs; the maintainer scripts make the user and the directories.
step_install() {
    files=""
    for p in $DEBS; do
        f=$(deb_of "$p") || {
            fail "dpkg -i installs $DEBS" "no $p deb to install"
            return 1
        }
        files="$files $f"
    done
    INSTALLED=1
    # shellcheck disable=SC2086 # a list of paths without spaces (mktemp)
    run_logged dpkg-install 120 dpkg -i $files
    verdict "dpkg -i installs $DEBS" $? || return 1
    check "postinst made the busgate user, /var/log/busgate and /run/busgate" \
        sh -c 'id busgate && [ -d /var/log/busgate ] && [ -d /run/busgate ]'
    check "the packaged ini passes busgated -t (init script configtest)" "$INIT" configtest
    return 0
}

# Points the packaged conffile at the private Valkey: free loopback ports, 2 workers, a token,
# short heartbeats and drain so the test stays quick.
configure_ini() {
    GW_PORT=$(free_port) || return 1
    TOKEN=pkgtest-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    ini_set "$INI" gateway listen "127.0.0.1:$GW_PORT"
    ini_set "$INI" gateway workers 2
    ini_set "$INI" gateway drain_timeout 5s
    ini_set "$INI" valkey url "valkey://127.0.0.1:$VALKEY_PORT"
    ini_set "$INI" messaging heartbeat_interval 1s
    ini_set "$INI" messaging heartbeat_expiry 5s
    ini_set "$INI" admin token "$TOKEN"
    cp "$INI" "$TMP/busgate.ini.good"
    GW=http://127.0.0.1:$GW_PORT
    "$INIT" configtest
}

step_run_gateway() {
    valkey_start "$TMP/valkey"
    verdict "a private valkey-server answers on 127.0.0.1:${VALKEY_PORT:-?}" $? || return 1
    check "the ini points at it (listen, workers = 2, url, admin token, heartbeat)" configure_ini ||
        return 1
    step_start || return 1
    step_echo || return 1
    step_reload_workers
    step_reload_refused
    step_resync
    step_upgrade
    step_master_killed
    step_stop
}

step_start() {
    run_logged init-start 60 "$INIT" start
    verdict "$INIT start exits 0" $? || return 1
    run_logged init-status 30 "$INIT" status
    verdict "$INIT status exits 0 while running" $?
    wait_until 100 workers_are 2
    verdict "one master ($(ps -o user= -p "$(master_pid)" 2>/dev/null)) and 2 workers running as busgate" \
        $? "$(show_procs | tr '\n' ';')"
    wait_until 100 http_is 200 GET "$GW/healthz"
    verdict "curl /healthz -> 200" $? "got $(http_code GET "$GW/healthz")"
}

# A service built from examples/echo-service.c against the installed libbusgate-dev (the
# pkg-config line of the docs; the example also uses jansson itself); the build tree's
# echo-service if that fails.
build_echo() {
    # shellcheck disable=SC2046 # pkg-config prints a list of flags
    cc -o "$TMP/echo-service" "$ROOT/examples/echo-service.c" \
        $(pkg-config --cflags --libs busgate-service jansson)
}

step_echo() {
    echo_bin=$TMP/echo-service
    if ! check "examples/echo-service.c builds with pkg-config busgate-service (libbusgate-dev)" \
        build_echo; then
        echo_bin=${BUSGATE_ECHO:-$ROOT/build/echo-service}
    fi
    if [ ! -x "$echo_bin" ]; then
        fail "the echo service runs" "no $echo_bin"
        return 1
    fi
    "$echo_bin" -c "$INI" -n pkgtest-echo >"$LOG_DIR/echo.log" 2>&1 &
    ECHO_PID=$!
    wait_until 150 grep -q registered "$LOG_DIR/echo.log"
    verdict "the echo service registers on the bus" $? "$(tail -n 3 "$LOG_DIR/echo.log")"
    wait_until 150 http_is 200 GET "$GW/echo/pkgtest"
    verdict "GET /echo/pkgtest through the gateway -> 200" $? \
        "got $(http_code GET "$GW/echo/pkgtest")" || return 1
    curl -s --max-time 5 "$GW/echo/pkgtest" | grep -q '"path":"/echo/pkgtest"'
    verdict "the answer is the echo service's" $?
    return 0
}

# workers 2 -> 3 and reload while a client loops: new workers, same master, no failed request.
step_reload_workers() {
    master_before=$(master_pid)
    codes=$TMP/codes stop=$TMP/client.stop
    client_loop "$GW/echo/reload" "$codes" "$stop" &
    CLIENT_PID=$!
    wait_until 100 at_least_lines "$codes" 5
    ini_set "$INI" gateway workers 3
    cp "$INI" "$TMP/busgate.ini.good"
    run_logged init-reload 60 "$INIT" reload
    verdict "workers = 3, $INIT reload exits 0" $?
    wait_until 300 workers_are 3
    verdict "reload: three workers running as busgate" $? "$(show_procs | tr '\n' ';')"
    [ -n "$master_before" ] && [ "$(master_pid)" = "$master_before" ]
    verdict "reload: the master's pid is unchanged ($master_before)" $? "now $(master_pid)"
    seen=$(lines_in "$codes")
    wait_until 100 at_least_lines "$codes" $((seen + 20))
    touch "$stop"
    wait "$CLIENT_PID"
    CLIENT_PID=""
    total=$(lines_in "$codes")
    bad=$(grep -cv '^200$' "$codes")
    [ "$bad" -eq 0 ] && [ "$total" -ge 20 ]
    verdict "no failed request from a client running during the reload ($total requests)" $? \
        "$bad not 200: $(grep -v '^200$' "$codes" | sort | uniq -c | tr '\n' ' ')"
}

# A bad key: reload refuses with FILE:LINE: ... KEY, and the daemon keeps serving unchanged.
step_reload_refused() {
    master_before=$(master_pid)
    workers_before=$(worker_pids "$master_before")
    awk '{ print } /^\[gateway\]/ { print "pkgtest_bogus_key = 1" }' "$TMP/busgate.ini.good" >"$INI"
    line=$(line_of "$INI" "pkgtest_bogus_key = 1")
    refused=0
    bounded 60 "$INIT" reload >"$LOG_DIR/init-reload-bad.log" 2>&1 && refused=1
    verdict "bad key: $INIT reload is refused (non-zero exit)" "$refused"
    grep -q "$INI:$line:.*pkgtest_bogus_key" "$LOG_DIR/init-reload-bad.log"
    verdict "bad key: the error names $INI:$line and the key" $? \
        "printed: $(tr '\n' ' ' <"$LOG_DIR/init-reload-bad.log")"
    cat "$TMP/busgate.ini.good" >"$INI"
    sleep 1
    [ -n "$workers_before" ] && [ "$(master_pid)" = "$master_before" ] &&
        [ "$(worker_pids "$master_before")" = "$workers_before" ] &&
        http_is 200 GET "$GW/healthz" && http_is 200 GET "$GW/echo/after-bad-reload"
    verdict "bad key: the daemon keeps serving with the same master and workers" $? \
        "$(show_procs | tr '\n' ';')"
    check "ini restored: $INIT configtest passes" "$INIT" configtest
}

# The installed busgatectl reads the same ini and sees what the master registered.
ctl_sees_echo() {
    bounded 30 /usr/bin/busgatectl -c "$INI" state >"$LOG_DIR/ctl-state.out" 2>&1
    rc=$?
    cat "$LOG_DIR/ctl-state.out"
    [ "$rc" -eq 0 ] && grep -q 'pkgtest-echo' "$LOG_DIR/ctl-state.out"
}

step_resync() {
    check "busgatectl state lists the echo instance" ctl_sees_echo
    url=$GW/api/v1/gateway/administration/router/resync
    http_is 401 POST "$url"
    verdict "POST .../router/resync without the token -> 401" $? "got $(http_code POST "$url")"
    http_is 202 POST "$url" -H "Authorization: Bearer $TOKEN"
    verdict "POST .../router/resync with the token -> 202" $? \
        "got $(http_code POST "$url" -H "Authorization: Bearer $TOKEN")"
}

# The built busgate deb with its version raised: an upgrade without a second build.
make_upgrade_deb() {
    deb=$(deb_of busgate) || return 1
    rm -rf "$TMP/upgrade" && mkdir -p "$TMP/upgrade" || return 1
    dpkg-deb -R "$deb" "$TMP/upgrade/root" || return 1
    UPGRADE_VERSION="$(dpkg-deb -f "$deb" Version)+pkgtest1"
    sed -i "s/^Version: .*/Version: $UPGRADE_VERSION/" "$TMP/upgrade/root/DEBIAN/control"
    dpkg-deb -b "$TMP/upgrade/root" "$TMP/upgrade/busgate.deb"
}

# dpkg -i of a newer busgate while it runs: the edited ini stays, restart runs the new binary.
step_upgrade() {
    check "upgrade: a newer busgate deb (version raised)" make_upgrade_deb || return 1
    master_before=$(master_pid)
    run_logged dpkg-upgrade 120 dpkg -i "$TMP/upgrade/busgate.deb"
    verdict "upgrade: dpkg -i of busgate $UPGRADE_VERSION over the running gateway" $? || return 1
    cmp -s "$INI" "$TMP/busgate.ini.good"
    verdict "upgrade: the edited $INI is kept" $?
    run_logged init-restart 90 "$INIT" restart
    verdict "upgrade: $INIT restart exits 0" $?
    wait_until 100 workers_are 3 && [ "$(master_pid)" != "$master_before" ] &&
        wait_until 100 http_is 200 GET "$GW/echo/after-upgrade"
    verdict "upgrade: a new master with 3 workers serves through the echo service" $? \
        "$(show_procs | tr '\n' ';')"
}

# kill -9 of the master: status reports it dead (exit 1), its workers drain and leave on
# their own, and start brings up a fresh master that serves again.
step_master_killed() {
    mk_pid=$(master_pid) || {
        fail "kill -9 master: no master found"
        return 1
    }
    kill -9 "$mk_pid"
    wait_until 100 sh -c "! kill -0 $mk_pid 2>/dev/null"
    bounded 30 "$INIT" status >"$LOG_DIR/init-status-dead.log" 2>&1
    rc=$?
    [ "$rc" -eq 1 ]
    verdict "kill -9 master: $INIT status exits 1 (dead, pid file left)" $? "exit $rc"
    wait_until 200 no_busgate_left
    verdict "kill -9 master: its workers finish and exit by themselves" $? \
        "$(show_procs | tr '\n' ';')"
    run_logged init-start-after-kill 60 "$INIT" start
    verdict "kill -9 master: $INIT start exits 0 over the stale pid file" $? || return 1
    wait_until 100 workers_are 3 && wait_until 100 http_is 200 GET "$GW/echo/after-kill"
    verdict "kill -9 master: a fresh master with 3 workers serves through the echo service" $? \
        "$(show_procs | tr '\n' ';')"
}

step_stop() {
    stop_pid "$ECHO_PID"
    ECHO_PID=""
    run_logged init-stop 90 "$INIT" stop
    verdict "$INIT stop exits 0" $?
    wait_until 100 no_busgate_left
    verdict "stop: no busgate process left" $? "$(show_procs | tr '\n' ';')"
    bounded 30 "$INIT" status >"$LOG_DIR/init-status.log" 2>&1
    rc=$?
    [ "$rc" -eq 3 ]
    verdict "$INIT status exits 3 once stopped" $? "exit $rc"
}

# Failing runs show the daemon's own log before purge removes it.
show_daemon_log() {
    [ "$FAILED" -gt 0 ] || return 0
    for f in /var/log/busgate/error.log "$LOG_DIR/echo.log"; do
        [ -s "$f" ] || continue
        echo "# last lines of $f:"
        tail -n 20 "$f" | sed 's/^/#     /'
    done
}

purged() {
    for path in /usr/sbin/busgated /usr/bin/busgatectl /etc/busgate "$INIT" /etc/default/busgate \
        /var/log/busgate /run/busgate /usr/include/busgate; do
        [ -e "$path" ] && echo "left: $path" && return 1
    done
    ls /etc/rc?.d/*busgate >/dev/null 2>&1 && echo "left: /etc/rc?.d links" && return 1
    ls /etc/systemd/system/*.wants/busgate.service /lib/systemd/system/busgate.service \
        /var/lib/systemd/deb-systemd-helper-enabled/*busgate* >/dev/null 2>&1 &&
        echo "left: systemd unit or its enablement" && return 1
    ls /usr/lib/*/libbusgate* >/dev/null 2>&1 && echo "left: libbusgate" && return 1
    for p in $DEBS; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qv 'not-installed' &&
            echo "left: package $p" && return 1
    done
    return 0
}

step_purge() {
    [ "$INSTALLED" -eq 1 ] || return 0
    show_daemon_log
    # shellcheck disable=SC2086 # package names
    run_logged dpkg-purge 120 dpkg --purge $DEBS
    verdict "dpkg --purge $DEBS" $?
    check "purge: /usr/sbin/busgated, /etc/busgate, logs, libraries and headers are gone" purged
    INSTALLED=0
}

step_rpm_checks() {
    same_files busgate busgate
    same_files libbusgate-service0 busgate-libs
    same_files libbusgate-dev busgate-devel
    check "rpm -qp --scripts: busgate has %pre (useradd), %post, %preun (stop), %postun" \
        has_scriptlets busgate preinstall:useradd postinstall:. preuninstall:stop postuninstall:.
    check "rpm -qp --scripts: busgate-libs runs ldconfig" \
        has_scriptlets busgate-libs postinstall:ldconfig postuninstall:ldconfig
    check "rpm -qpR: busgate declares its libraries and shadow-utils" \
        requires busgate libc.so.6 libjansson.so libinih.so libseccomp.so shadow-utils
    check "rpm -qpR: busgate-devel requires busgate-libs" requires busgate-devel busgate-libs
    check "rpm: /etc/busgate/busgate.ini is %config(noreplace)" rpm_ini_noreplace
    check "deb: /etc/busgate/busgate.ini is a conffile" deb_ini_conffile
    check "deb: Depends from shlibs, Recommends valkey-server | redis-server" deb_depends
}

# Errors fail the check; warnings are listed under it (the packaging notes explain them).
step_lintian() {
    set -- "$OUT"/*.changes
    [ -e "$1" ] || {
        fail "lintian shows no errors" "no .changes file in $OUT"
        return
    }
    bounded 180 lintian --fail-on error "$@" >"$LOG_DIR/lintian.log" 2>&1
    rc=$?
    verdict "lintian on the debs shows no errors" "$rc" "$(grep '^E:' "$LOG_DIR/lintian.log")"
    grep '^[WE]:' "$LOG_DIR/lintian.log" | sed 's/^/#     /'
}

# Stops and removes whatever this run started or installed. Safe to call twice.
cleanup() {
    [ "$CLEANED" -eq 0 ] || return 0
    CLEANED=1
    # A second Ctrl-C must not cut the cleanup short; every step in it is bounded.
    trap '' INT TERM HUP
    stop_bounded
    [ -n "$CLIENT_PID" ] && touch "$TMP/client.stop" && stop_pid "$CLIENT_PID"
    stop_pid "$ECHO_PID"
    if [ -n "$(installed_pids)" ] && [ -x "$INIT" ]; then
        bounded 90 "$INIT" stop >/dev/null 2>&1
    fi
    for p in $(installed_pids) $(user_pids); do
        kill -KILL "$p" 2>/dev/null
    done
    if [ "$INSTALLED" -eq 1 ]; then
        # shellcheck disable=SC2086 # package names
        bounded 120 dpkg --purge $DEBS >/dev/null 2>&1
    fi
    restore_user
    stop_pid "$VALKEY_PID"
    rm -rf "$TMP" "$LOCK"
}

# After cleanup: nothing of this run is left (processes, files, packages, user, Valkey).
machine_as_found() {
    why=""
    [ -z "$(installed_pids)$(user_pids)" ] || why="busgate processes left: $(show_procs)"
    left=$(purged) || why="$why $left"
    if [ "$USER_EXISTED" -eq 0 ] && getent passwd busgate >/dev/null; then
        why="$why user busgate left"
    fi
    if [ "$GROUP_EXISTED" -eq 0 ] && getent group busgate >/dev/null; then
        why="$why group busgate left"
    fi
    if [ -n "$VALKEY_PID" ] && kill -0 "$VALKEY_PID" 2>/dev/null; then
        why="$why valkey-server $VALKEY_PID left"
    fi
    [ -z "$why" ]
    verdict "the machine is left as it was found" $? "$why"
}

# The busgate user and group stay after purge (Debian practice); this run made them, so it
# removes them.
restore_user() {
    if [ "$USER_EXISTED" -eq 0 ] && getent passwd busgate >/dev/null; then
        deluser --system busgate >/dev/null 2>&1 || userdel busgate >/dev/null 2>&1
    fi
    if [ "$GROUP_EXISTED" -eq 0 ] && getent group busgate >/dev/null; then
        delgroup --system busgate >/dev/null 2>&1 || groupdel busgate >/dev/null 2>&1
    fi
}
