#!/bin/sh
# package-ini.sh: make the installed busgate.ini the packaged one. The source
# tree's ini leaves every key at its default (no pid file, log to stderr, no
# user switch); the packages run busgated as a daemon from the init script or
# the unit, so these keys are set. Used by debian/rules and busgate.spec.
# Usage: sh package-ini.sh PATH/TO/busgate.ini
set -eu

ini=$1

# set_key KEY VALUE: turns the ";KEY = ..." line into "KEY = VALUE".
set_key() {
    if ! grep -q "^;$1 = " "$ini"; then
        echo "package-ini.sh: no ';$1 = ...' line in $ini to set" >&2
        exit 1
    fi
    sed -i "0,/^;$1 = .*/s||$1 = $2|" "$ini"
}

set_key pid_file /run/busgate/busgated.pid
set_key error_log /var/log/busgate/error.log
set_key access_log /var/log/busgate/access.log
set_key user busgate
set_key group busgate
