# pkgfiles.sh: what the built packages contain: file sets of a deb and an rpm in one comparable
# form, scriptlets, dependencies, conffiles, lintian. Sourced by test_package.sh; OUT is the
# folder with the built packages.

# The documented differences between the two package formats, folded away:
# multiarch /usr/lib/<triplet> vs /usr/lib64, /etc/init.d vs /etc/rc.d/init.d,
# /lib/systemd vs /usr/lib/systemd, man pages and docs gzipped by dh_compress.
normalise_paths() {
    sed -e 's|^\./|/|' \
        -e 's|^/usr/lib/[a-z0-9_]*-linux-[a-z0-9_]*/|/usr/LIBDIR/|' \
        -e 's|^/usr/lib64/|/usr/LIBDIR/|' \
        -e 's|^/etc/rc\.d/init\.d/|/etc/init.d/|' \
        -e 's|^/lib/systemd/|/usr/lib/systemd/|' \
        -e 's|\.gz$||' | sort -u
}

# Files and symlinks of a deb (directories left out). Debian's own copyright and
# changelog under /usr/share/doc/PACKAGE and lintian overrides have no RPM twin.
deb_files() {
    dpkg-deb -c "$1" | awk 'substr($1, 1, 1) != "d" { print $6 }' | normalise_paths |
        grep -v -e '^/usr/share/doc/[^/]*/copyright$' -e '^/usr/share/doc/[^/]*/changelog' \
            -e '^/usr/share/lintian/'
}

# RPM's /usr/lib/.build-id links (one per ELF file, made by rpmbuild) have no deb twin.
rpm_files() {
    rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$1" 2>/dev/null |
        awk 'substr($1, 1, 1) != "d" { print $2 }' | normalise_paths |
        grep -v '^/usr/lib/\.build-id/'
}

# deb_of NAME / rpm_of NAME: the built package file of that package name.
deb_of() {
    for f in "$OUT"/"$1"_*.deb; do
        [ -e "$f" ] && echo "$f" && return 0
    done
    return 1
}

rpm_of() {
    for f in "$OUT"/*.rpm; do
        [ -e "$f" ] || continue
        [ "$(rpm -qp --qf '%{NAME}' "$f" 2>/dev/null)" = "$1" ] && echo "$f" && return 0
    done
    return 1
}

# same_files DEBNAME RPMNAME: the check line, with the differences under it.
same_files() {
    name="rpm -qpl: $2 has the file set of $1"
    deb=$(deb_of "$1") || { fail "$name" "no $1 deb in $OUT"; return; }
    rpm=$(rpm_of "$2") || { fail "$name" "no $2 rpm in $OUT"; return; }
    deb_files "$deb" >"$LOG_DIR/files.deb"
    rpm_files "$rpm" >"$LOG_DIR/files.rpm"
    if [ ! -s "$LOG_DIR/files.deb" ]; then
        fail "$name" "dpkg-deb -c $deb listed no files"
        return
    fi
    if diff -u "$LOG_DIR/files.deb" "$LOG_DIR/files.rpm" >"$LOG_DIR/files.diff"; then
        pass "$name ($(wc -l <"$LOG_DIR/files.deb" | tr -d ' ') files)"
        return
    fi
    fail "$name" "differences (- deb only, + rpm only):"
    grep '^[-+]/' "$LOG_DIR/files.diff" | sed 's/^/#     /'
}

# has_scriptlets RPMNAME KIND:PATTERN...: each scriptlet (or -p program) is there and contains
# PATTERN.
has_scriptlets() {
    pkg=$1
    shift
    rpm=$(rpm_of "$pkg") || return 1
    rpm -qp --scripts "$rpm" >"$LOG_DIR/scripts.$pkg" 2>&1 || return 1
    for want in "$@"; do
        kind=${want%%:*} pattern=${want#*:}
        awk -v k="$kind" '/^[a-z]+ (scriptlet|program)/ { on = ($1 == k) } on' "$LOG_DIR/scripts.$pkg" |
            grep -q -e "$pattern" || {
            echo "no $kind scriptlet containing '$pattern'"
            return 1
        }
    done
}

# requires RPMNAME DEP...: rpm -qpR lists every DEP (a prefix of a line).
requires() {
    pkg=$1
    shift
    rpm=$(rpm_of "$pkg") || return 1
    rpm -qpR "$rpm" >"$LOG_DIR/requires.$pkg" 2>&1 || return 1
    for dep in "$@"; do
        grep -q "^$dep" "$LOG_DIR/requires.$pkg" || {
            echo "rpm -qpR: no '$dep'"
            return 1
        }
    done
}

rpm_ini_noreplace() {
    rpm=$(rpm_of busgate) || return 1
    rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" |
        grep -q '^cn /etc/busgate/busgate.ini$'
}

deb_ini_conffile() {
    deb=$(deb_of busgate) || return 1
    dpkg-deb -I "$deb" conffiles | grep -qx /etc/busgate/busgate.ini
}

# The busgate deb's Depends come from ${shlibs:Depends}: libc6 and the libraries busgated links.
deb_depends() {
    deb=$(deb_of busgate) || return 1
    dep=$(dpkg-deb -f "$deb" Depends)
    echo "Depends: $dep"
    for lib in adduser libc6 libjansson libinih libseccomp libbsd; do
        printf '%s' "$dep" | grep -q "$lib" || return 1
    done
    dpkg-deb -f "$deb" Recommends | grep -q 'valkey-server | redis-server'
}
