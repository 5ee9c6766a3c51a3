#!/bin/sh
# check-layers.sh [RESULTS]: every #include "busgate/<layer>/..." must name a layer the
# including file's layer may use (docs/layout.md). Prints each violation as
# file:line: <layer> includes <layer>; with RESULTS, appends "layers <ok> <bad>" to it.
# Exits 1 when any include breaks the rule.
set -u
cd "$(dirname "$0")/.."

# layer: the layers it may include besides itself. Public headers (busgate/common.h,
# busgate/service.h) sit outside the layers; service.h is for the SDK and its users.
allowed() {
    case $1 in
    core) echo "" ;;
    proto) echo "core" ;;
    config) echo "core proto" ;;
    bus) echo "core proto config" ;;
    routing | metrics) echo "core" ;;
    control | workers) echo "core proto config bus routing metrics" ;;
    sdk | ctl) echo "core proto config bus" ;;
    master) echo "core proto config bus routing metrics control workers" ;;
    examples) echo "" ;; # the public busgate/service.h only: they build from the packages
    esac
}

layer_of() {
    case $1 in
    shared/*/*) echo "$1" | cut -d/ -f2 ;;
    include/busgate/*/*) echo "$1" | cut -d/ -f3 ;;
    master/control/*) echo control ;;
    master/*) echo master ;;
    workers/* | sdk/* | ctl/* | examples/*) echo "$1" | cut -d/ -f1 ;;
    esac
}

ok=0
bad=0
for f in $(git ls-files '*.c' '*.h' | grep -v '^tests/\|^bench/'); do
    [ -f "$f" ] || continue
    me=$(layer_of "$f" | tail -n 1)
    [ -n "$me" ] || continue
    may=" $me $(allowed "$me") "
    # "N:layer" for each layered include, "N:../" for a reach into another folder
    for hit in $(grep -n '#include "busgate/[a-z_]*/\|#include "\.\./' "$f" |
        sed -n 's|^\([0-9]*\):#include "busgate/\([a-z_]*\)/.*|\1:\2|p; s|^\([0-9]*\):#include "\.\./.*|\1:../|p'); do
        line=${hit%%:*}
        dep=${hit#*:}
        case "$may" in
        *" $dep "*) ok=$((ok + 1)) ;;
        *)
            echo "$f:$line: layer '$me' includes '$dep' (it may use:$(allowed "$me" | sed 's/^/ /'))"
            bad=$((bad + 1))
            ;;
        esac
    done
done
echo "layers: $ok includes follow the layering, $bad do not"
[ $# -ge 1 ] && echo "layers $((bad == 0 ? 1 : 0)) $bad" >>"$1"
[ "$bad" -eq 0 ]
