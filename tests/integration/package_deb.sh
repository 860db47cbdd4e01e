#!/usr/bin/env bash
# The Debian package, as an administrator meets it: `dpkg-buildpackage -us
# -uc -b` on a clean copy of the source builds it, lintian reports no error,
# `apt-get install ./certsync_*.deb` installs it (the groups and the system
# user netproc runs as created),
# `certsyncd --check-config` passes on the installed configuration and every
# installed example, `man certsync.conf` renders, `systemd-analyze verify`
# accepts the unit, and `apt-get purge` leaves nothing behind.
# Installs into the running system: root only; done in the plain run, skipped
# (77) in the sanitizer build, where it would only repeat itself.
. "$(dirname "$0")/lib.bash"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to install a package"; exit 77; }
if grep -q '^CS_ASAN:BOOL=ON' "$CS_BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
	echo "SKIP: the package is built and installed in the plain run"
	exit 77
fi
if dpkg-query -W -f='${Status}' certsync 2>/dev/null | has 'ok installed'; then
	fail "a certsync package is already installed here; not touching it"
fi
purge() { apt-get purge -y -qq certsync >/dev/null 2>&1 || true; cleanup; }
trap purge EXIT

# A clean copy: what git tracks, nothing of the builds around it.
mkdir "$T/src"
tar -C "$CS_SOURCE_DIR" --exclude='./build*' --exclude=./.git --exclude='./obj-*' \
	--exclude='./packaging/debian/certsync' --exclude='./packaging/debian/.debhelper' -cf - . |
	tar -C "$T/src" -xf -
(cd "$T/src" && dpkg-buildpackage -us -uc -b) >"$T/build.log" 2>&1 ||
	{ tail -40 "$T/build.log"; fail "dpkg-buildpackage failed"; }
deb=$(ls "$T"/certsync_*_*.deb)
pass "dpkg-buildpackage -us -uc -b: $(basename "$deb")"

lintian "$deb" >"$T/lintian.log" 2>&1 || true
if grep -q '^E:' "$T/lintian.log"; then cat "$T/lintian.log"; fail "lintian reports errors"; fi
pass "lintian: no errors ($(grep -c '^W:' "$T/lintian.log") warning(s))"

dpkg -c "$deb" >"$T/contents"
for f in usr/sbin/certsyncd usr/bin/certsyncctl usr/include/certsync/reloader_plugin.h \
	usr/share/man/man8/certsyncd.8.gz usr/share/man/man8/certsyncctl.8.gz usr/share/man/man5/certsync.conf.5.gz \
	lib/systemd/system/certsyncd.service etc/certsync/certsync.conf \
	usr/share/doc/certsync/MIGRATION.md.gz \
	usr/share/bash-completion/completions/certsyncctl usr/share/bash-completion/completions/certsyncd \
	usr/share/certsync/prometheus/certsync.rules.yml usr/share/certsync/grafana/certsync.json \
	usr/lib/systemd/catalog/certsync.catalog; do
	grep -q " ./$f\$" "$T/contents" || fail "the package lacks /$f"
done
pass "binaries, plugin header, man pages, unit, configuration, guide, shell completion, alerting rules, dashboard and journal catalog are in the package"

DEBIAN_FRONTEND=noninteractive apt-get install -o DPkg::Lock::Timeout=300 -y -qq "$deb" >"$T/install.log" 2>&1 ||
	{ cat "$T/install.log"; fail "apt-get install ./$(basename "$deb")"; }
getent group certsync >/dev/null &&
	getent group certsync-admin >/dev/null || fail "groups not created"
# The user the network process runs as: a system user without a login shell.
pw=$(getent passwd certsync) || fail "the system user certsync was not created"
[ "$(echo "$pw" | cut -d: -f3)" -lt 1000 ] && [ "$(echo "$pw" | cut -d: -f7)" = /usr/sbin/nologin ] ||
	fail "certsync is not a system user without a shell: $pw"
/usr/sbin/certsyncd --check-config || fail "check-config on /etc/certsync/certsync.conf"
for f in /usr/share/doc/certsync/examples/*.conf; do
	/usr/sbin/certsyncd --check-config -c "$f" || fail "check-config on $f"
done
pass "installed; certsyncd --check-config passes on the configuration and each example"

MANWIDTH=80 man certsync.conf >"$T/man5" 2>/dev/null
grep -q "certsync.conf - configuration of the certsync agent" "$T/man5" ||
	fail "man certsync.conf does not render"
MANWIDTH=80 man 8 certsyncd >"$T/man8" 2>/dev/null
grep -q "^NAME" "$T/man8" || fail "man certsyncd does not render"
# Each man page the unit names must exist, or verify fails on it.
systemd-analyze verify /lib/systemd/system/certsyncd.service 2>"$T/verify.log" ||
	{ cat "$T/verify.log"; fail "systemd-analyze verify"; }
pass "man pages render; systemd-analyze verify accepts the unit"

# The journal's catalog: systemd's trigger on /usr/lib/systemd/catalog ran
# journalctl --update-catalog at install.
if command -v journalctl >/dev/null; then
	journalctl --list-catalog 2>/dev/null | has '^f93cacfa9f0a4e94af0b8729bf0fcb49 certsync: ' ||
		fail "the installed catalog is not in the journal's catalog database"
	pass "journalctl --list-catalog has certsync's MESSAGE_IDs"
fi

apt-get purge -o DPkg::Lock::Timeout=300 -y -qq certsync >/dev/null 2>&1 || fail "apt-get purge"
for p in /etc/certsync /var/lib/certsync /usr/sbin/certsyncd /usr/bin/certsyncctl \
	/lib/systemd/system/certsyncd.service /usr/include/certsync /usr/share/bash-completion/completions/certsyncctl \
	/usr/lib/systemd/catalog/certsync.catalog \
	/etc/systemd/system/multi-user.target.wants/certsyncd.service; do
	[ ! -e "$p" ] || fail "$p is left after purge"
done
pass "apt-get purge removes it cleanly"
