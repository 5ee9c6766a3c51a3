#!/bin/sh
# test_package.sh RESULTS: build the deb and rpm packages, install the debs, run busgated through
# its init script against a private Valkey, purge; one "ok"/"not ok" line per check; appends
# "package PASSED FAILED" to RESULTS. Skips (exit 0, nothing appended) where it cannot run safely.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RESULTS=${1:-}
INI=/etc/busgate/busgate.ini
INIT=/etc/init.d/busgate
DEBS="busgate libbusgate-service0 libbusgate-dev"
LOCK=/run/lock/busgate-package-test

# shellcheck source=tests/package/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/package/procs.sh
. "$HERE/procs.sh"
# shellcheck source=tests/package/pkgfiles.sh
. "$HERE/pkgfiles.sh"
# shellcheck source=tests/package/steps.sh
. "$HERE/steps.sh"

# Prints why the test cannot run here, or nothing.
skip_reason() {
    if [ -n "${BUSGATE_SKIP_PACKAGE_TEST:-}" ]; then
        echo "BUSGATE_SKIP_PACKAGE_TEST is set"
        return
    fi
    [ "$(id -u)" -eq 0 ] || {
        echo "not root: installing packages needs root"
        return
    }
    for tool in dpkg dpkg-deb dpkg-buildpackage dh rpmbuild rpm lintian curl ss timeout \
        start-stop-daemon; do
        have "$tool" || {
            echo "$tool not found; make deps installs the packaging tools"
            return
        }
    done
    have valkey-server || have redis-server || {
        echo "no valkey-server or redis-server"
        return
    }
    for p in $DEBS; do
        if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv '^unknown ok not-installed'; then
            echo "package $p is installed here (state: $(dpkg-query -W -f='${Status}' "$p")); not touching a real install"
            return
        fi
    done
    for path in /usr/sbin/busgated /etc/busgate "$INIT"; do
        [ -e "$path" ] && {
            echo "$path exists (an installed busgate); not touching it"
            return
        }
    done
    [ -z "$(installed_pids)" ] || echo "a busgated from /usr/sbin is running"
}

# One package test at a time on a machine; a lock left by a dead run is taken over.
take_lock() {
    if ! mkdir "$LOCK" 2>/dev/null; then
        holder=$(cat "$LOCK/pid" 2>/dev/null)
        if [ -n "$holder" ] && kill -0 "$holder" 2>/dev/null; then
            return 1
        fi
        rm -rf "$LOCK"
        mkdir "$LOCK" 2>/dev/null || return 1
    fi
    echo $$ >"$LOCK/pid"
}

main() {
    why=$(skip_reason)
    if [ -n "$why" ]; then
        say "skipped ($why)"
        exit 0
    fi
    mkdir -p "$(dirname "$LOCK")"
    take_lock || {
        say "skipped (another package test holds $LOCK)"
        exit 0
    }
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/busgate-pkgtest.XXXXXX") || exit 1
    LOG_DIR=$TMP/log OUT=$TMP/out
    mkdir -p "$LOG_DIR" "$OUT" "$TMP/valkey"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    note_machine_state
    cd "$ROOT" || exit 1
    # A parent make's jobserver must not leak into the package builds.
    unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
    step_build_packages
    if step_install; then
        step_run_gateway
    fi
    step_purge
    step_rpm_checks
    step_lintian
    finish
}

finish() {
    cleanup
    machine_as_found
    echo "package: $PASSED passed, $FAILED failed"
    if [ -n "$RESULTS" ]; then
        echo "package $PASSED $FAILED" >>"$RESULTS"
    fi
    [ "$FAILED" -eq 0 ] && exit 0
    exit 1
}

main "$@"
