#!/bin/sh
# setup-deps.sh: install what busgate needs to build, test and run its demo on Debian.
# Idempotent: when everything is present it only checks and exits.
set -eu

BUILD_PKGS="build-essential pkg-config libssl-dev libbsd-dev libjansson-dev libinih-dev libcriterion-dev libseccomp-dev curl openssl"
# Test tools: redis-py drives tests/plain_service.py, the service written from docs/protocol.md alone.
TEST_PKGS="python3 python3-redis"
# Packaging and its checks (make deb, make rpm, the package test).
PACKAGING_PKGS="debhelper lintian rpm logrotate shellcheck groff-base"
HIREDIS_PKG="libhiredict-shims-dev"
BACKPORTS_FILE=/etc/apt/sources.list.d/busgate-backports.list

log() { printf 'setup-deps: %s\n' "$*"; }

have_pkg() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing_of() {
    out=""
    for p in "$@"; do
        have_pkg "$p" || out="$out $p"
    done
    printf '%s' "$out"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

codename() {
    . /etc/os-release
    printf '%s' "${VERSION_CODENAME:-}"
}

backports_enabled() {
    grep -rqs -- "$(codename)-backports" /etc/apt/sources.list /etc/apt/sources.list.d/
}

apt_updated=0
apt_update() {
    [ "$apt_updated" -eq 1 ] && return 0
    log "apt-get update"
    as_root apt-get update -qq
    apt_updated=1
}

enable_backports() {
    cn=$(codename)
    [ -n "$cn" ] || return 1
    backports_enabled && return 0
    log "adding ${cn}-backports to apt sources ($BACKPORTS_FILE)"
    echo "deb http://deb.debian.org/debian ${cn}-backports main" | as_root tee "$BACKPORTS_FILE" >/dev/null
    apt_updated=0
}

apt_install() {
    log "installing:$*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

install_hiredis() {
    # hiredis 1.x API: Debian 12 ships it in backports as libhiredict-shims-dev;
    # newer releases have libhiredis-dev >= 1.0 directly.
    if pkg-config --atleast-version=1.0 hiredis 2>/dev/null && pkg-config --exists hiredis_ssl; then
        return 0
    fi
    enable_backports || true
    apt_update
    if apt-cache show "$HIREDIS_PKG" >/dev/null 2>&1; then
        apt_install -t "$(codename)-backports" "$HIREDIS_PKG" 2>/dev/null || apt_install "$HIREDIS_PKG"
    else
        apt_install libhiredis-dev
    fi
    pkg-config --atleast-version=1.0 hiredis || { log "error: hiredis >= 1.0 not available"; exit 1; }
}

install_valkey() {
    command -v valkey-server >/dev/null 2>&1 && return 0
    have_pkg redis-server && [ -n "${BUSGATE_VALKEY_FALLBACK_OK:-}" ] && return 0
    enable_backports || true
    apt_update
    if apt_install -t "$(codename)-backports" valkey-server 2>/dev/null || apt_install valkey-server 2>/dev/null; then
        # The package starts a system instance; busgate's tests and demo never use it.
        return 0
    fi
    command -v redis-server >/dev/null 2>&1 && { log "valkey-server unavailable; using installed redis-server"; return 0; }
    log "valkey-server cannot be installed; installing redis-server as the fallback"
    apt_install redis-server
}

# The Sentinel failover tests (tests/ha) start valkey-sentinel; without it they fall back
# to redis-sentinel or `valkey-server --sentinel`, so a failed install is not fatal.
install_sentinel() {
    command -v valkey-sentinel >/dev/null 2>&1 && return 0
    command -v redis-sentinel >/dev/null 2>&1 && return 0
    command -v valkey-server >/dev/null 2>&1 || return 0
    enable_backports || true
    apt_update
    # Like valkey-server, the package would start a system instance; the tests never use it.
    apt_install -t "$(codename)-backports" valkey-sentinel 2>/dev/null || apt_install valkey-sentinel 2>/dev/null ||
        log "valkey-sentinel unavailable; the Sentinel tests use valkey-server --sentinel"
}

main() {
    missing=$(missing_of $BUILD_PKGS $TEST_PKGS $PACKAGING_PKGS)
    if [ -n "$missing" ]; then
        apt_update
        apt_install $missing
    fi
    install_hiredis
    install_valkey
    install_sentinel
    for extra in ${BUSGATE_EXTRA_PKGS:-}; do
        have_pkg "$extra" || { apt_update; apt_install "$extra"; }
    done
    log "all dependencies present"
}

main "$@"
