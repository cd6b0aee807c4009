#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The packaging, checked from a built tree: the systemd unit passes
# systemd-analyze verify; CPack builds the .deb and the .rpm; both hold the
# same files, the expected ones, with the configuration as conffiles; the
# .deb is lintian-clean of errors. With CORDON_TEST_DPKG_INSTALL=1 (ctest's
# packaging_install; root, on a host where no cordon package is installed,
# else it exits 77, skipped) the .deb is also installed,
# its binaries check the example profiles and run the demo, an upgrade and
# a removal keep the configuration, and a purge leaves nothing behind.
#
# Usage: check_packages.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
work=$(mktemp -d /run/cordon-test-pkg.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "check_packages: $*" >&2; exit 1; }

# The cgroup2 mount point: the field after "-" names the filesystem (proc(5)).
cgroup2_mount() {
    awk '{for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break }}' \
        /proc/self/mountinfo | head -1
}

purge_and_clean() {
    dpkg --purge cordon >/dev/null 2>&1 || true
    rm -rf "/sys/fs/bpf/$tag"
    rmdir "$(cgroup2_mount)/$tag" 2>/dev/null || true
    rm -rf "$work"
}

# 1. The unit, with ExecStart pointing at the built cordond (verify checks
# that the command exists); man pages are not installed here.
sed "s#/usr/sbin/cordond#$build/cordond#" "$src/packaging/cordond.service" >"$work/cordond.service"
systemd-analyze verify --man=no "$work/cordond.service" || fail "systemd-analyze verify failed"

# 2. Both packages from the same tree.
(cd "$build" && cpack -B "$work/out" >"$work/cpack.log" 2>&1) || {
    cat "$work/cpack.log" >&2
    fail "cpack failed"
}
deb=$(ls "$work"/out/cordon_*.deb)
rpm=$(ls "$work"/out/cordon-*.rpm)

# 3. The same files (directories aside) in both.
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {sub(/^\./, "", $6); print $6}' | sort >"$work/deb.files"
rpm -qlp --dump "$rpm" 2>/dev/null | awk '$5 !~ /^04/ {print $1}' | sort >"$work/rpm.files"
diff -u "$work/deb.files" "$work/rpm.files" || fail ".deb and .rpm hold different files"
for f in /usr/bin/agent-run /usr/bin/cordonctl /usr/sbin/cordond \
    /usr/lib/systemd/system/cordond.service /etc/cordon/cordond.json /etc/logrotate.d/cordon \
    /usr/share/cordon/profile.schema.json /usr/share/cordon/examples/support-agent.json \
    /usr/share/cordon/seccomp/groups.json /usr/share/man/man1/agent-run.1.gz \
    /usr/share/man/man1/cordonctl.1.gz /usr/share/man/man8/cordond.8.gz \
    /usr/share/bash-completion/completions/cordonctl; do
    grep -qx "$f" "$work/deb.files" || fail "$f is not in the packages"
done

# 4. Configuration as conffiles, in both.
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$work/deb.conf"
rpm -qcp "$rpm" 2>/dev/null | sort >"$work/rpm.conf"
diff -u <(sort "$work/deb.conf") "$work/rpm.conf" || fail "conffiles differ"
grep -qx /etc/cordon/cordond.json "$work/deb.conf" || fail "cordond.json is not a conffile"

# 5. lintian: no errors (warnings are reported, not fatal).
if command -v lintian >/dev/null; then
    lintian --fail-on error "$deb" 2>/dev/null || fail "lintian found errors in $deb"
fi

# 6. Optional: install, check, purge on this host.
if [ "${CORDON_TEST_DPKG_INSTALL:-0}" = 1 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "check_packages: skipped: installing the .deb needs root" >&2
        exit 77
    fi
    if dpkg-query -W -f='${Status}' cordon 2>/dev/null | grep -q "ok installed"; then
        echo "check_packages: skipped: a cordon package is installed on this host already," \
            "and this test would replace it" >&2
        exit 77
    fi
    # Purged whatever happens next; the demo's cgroup and pins are the test's own.
    tag=cordon-test-pkg-$$
    trap purge_and_clean EXIT
    dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i failed"; }
    /usr/bin/cordonctl validate /usr/share/cordon/examples/coding-agent.json ||
        fail "the installed cordonctl cannot validate an example profile"
    /usr/sbin/cordond --check --profiles-dir /usr/share/cordon/examples ||
        fail "the installed cordond refuses the example profiles"
    # The demo, standalone, with the installed agent-run and its data.
    CORDON_CGROUP=$tag CORDON_BPF_PIN_DIR=/sys/fs/bpf/$tag CORDON_RUN_DIR=$work/run \
        "$src/examples/demo.sh" /usr/bin/agent-run >"$work/demo.log" 2>&1 || {
        cat "$work/demo.log" >&2
        fail "the demo failed with the installed agent-run"
    }
    # The administrator's configuration survives an upgrade (here: the same
    # package again) and a removal; only a purge takes it.
    echo '{"logLevel": "debug"}' >/etc/cordon/cordond.json
    dpkg -i "$deb" >>"$work/dpkg.log" 2>&1 || fail "reinstalling failed"
    grep -q debug /etc/cordon/cordond.json || fail "an upgrade replaced cordond.json"
    dpkg --remove cordon >>"$work/dpkg.log" 2>&1 || fail "dpkg --remove failed"
    grep -q debug /etc/cordon/cordond.json || fail "a removal took cordond.json"
    [ ! -e /usr/sbin/cordond ] || fail "a removal left /usr/sbin/cordond"
    dpkg --purge cordon >>"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "purge failed"; }
    for f in $(cat "$work/deb.files") /etc/cordon /var/log/cordon /sys/fs/bpf/cordond; do
        [ ! -e "$f" ] || fail "$f is left after purge"
    done
fi
echo "check_packages: ok ($(wc -l <"$work/deb.files") files in both packages)"
