#!/usr/bin/env bash
# Native journald logging against a real systemd-journald where systemd is
# not PID 1 (containers, CI): a journald of the test's own, started in a
# private mount namespace (tmpfs over /run/systemd, /run/log and
# /var/log/journal there only: the host's journal is not touched), and
# certsyncd writing to it through libsystemd's sd_journal_sendv, read back
# with journalctl -D. As the packaged unit: -f with stderr a journal stream
# ($JOURNAL_STREAM set as systemd sets it): journalctl CERTSYNC_CERT=mail
# has the renewed event's fields and MESSAGE_ID and the cert's ordinary
# lines, a line about no cert has no CERTSYNC_CERT, nothing comes through
# the stderr stream; after SIGHUP a new cert's lines carry its name; a
# failed renewal is a warning with its own MESSAGE_ID and the reason. Then
# without -f, started as by systemd ($INVOCATION_ID): detached, the same
# fields. Skipped (77) without root, unshare or systemd-journald.
if [ -z "${CS_JOURNALD_NS:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "SKIP: a private mount namespace needs root"; exit 77; }
	for p in unshare journalctl systemd-cat /usr/lib/systemd/systemd-journald; do
		command -v "$p" >/dev/null || { echo "SKIP: no $p"; exit 77; }
	done
	grep -q '^SYSTEMD_FOUND:INTERNAL=1' "${CS_BUILD_DIR:?run through ctest}/CMakeCache.txt" ||
		{ echo "SKIP: built without libsystemd: no journal sink"; exit 77; }
	CS_JOURNALD_NS=1 exec unshare -m --propagation private bash "$0"
fi
. "$(dirname "$0")/lib.bash"

CHECK=$CS_SOURCE_DIR/tests/integration/journald_check.py
RENEWED_ID=e44168237c754367aafb3e838f6f81e3 # agent/cs_journal.c
JD=/run/log/journal

for d in /run/systemd /run/log /var/log/journal; do
	mkdir -p "$d"
	mount -t tmpfs tmpfs "$d" || fail "mount tmpfs on $d (namespace)"
done
# Its own settings too: in memory, not reading the kernel's log nor the
# audit stream, forwarding nothing.
cat >"$T/journald.conf" <<'CONF'
[Journal]
Storage=volatile
ReadKMsg=no
Audit=no
ForwardToSyslog=no
ForwardToWall=no
CONF
if [ -f /etc/systemd/journald.conf ]; then
	mount --bind "$T/journald.conf" /etc/systemd/journald.conf ||
		fail "bind-mount journald.conf (namespace)"
fi
/usr/lib/systemd/systemd-journald >"$T/journald.log" 2>&1 &
CS_PIDS+=($!)
wait_until 10 test -S /run/systemd/journal/socket -a -S /run/systemd/journal/stdout ||
	{ cat "$T/journald.log" >&2; fail "systemd-journald did not start"; }
pass "systemd-journald of the test's own (mount namespace)"

# entries PID MATCH...: the entries process PID wrote that match, as JSON lines.
entries() {
	local pid=$1
	shift
	journalctl --sync 2>/dev/null || true
	journalctl -q -D "$JD" -o json _PID="$pid" "$@" 2>/dev/null || true
}
has_renewed() { [ -n "$(entries "$1" CERTSYNC_CERT="$2" MESSAGE_ID=$RENEWED_ID)" ]; }
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }

# check PID CERT: CERT's fields in the entries of PID.
check() {
	local pid=$1 cert=$2
	wait_until 60 has_renewed "$pid" "$cert" || {
		journalctl -D "$JD" --no-pager _PID="$pid" | tail -30 >&2
		fail "no renewed entry with CERTSYNC_CERT=$cert from $pid"
	}
	entries "$pid" CERTSYNC_CERT="$cert" >"$T/$pid-$cert.json"
	python3 "$CHECK" cert "$T/$pid-$cert.json" "$cert" "$(serial_of "$T/out/$cert.pem")" local ||
		fail "the fields of $cert's entries"
	entries "$pid" >"$T/$pid.json"
	python3 "$CHECK" nocert "$T/$pid.json" || fail "a line about no cert"
}

# 1. -f, stderr a journal stream (systemd-cat), $JOURNAL_STREAM naming it.
mkdir -p "$T/out"
std_conf >"$T/certsync.conf"
systemd-cat -t certsyncd-stderr bash -c \
	'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$0" -f -c "$1"' \
	"$CERTSYNCD" "$T/certsync.conf" &
agent=$!
CS_PIDS+=($agent)
check "$agent" mail
pass "-f, stderr the journal: journalctl CERTSYNC_CERT=mail shows the renewed event's fields and the cert's lines"

cat >>"$T/certsync.conf" <<CONF

[cert "web"]
issuer = local
names  = web.example.test
bundle = $T/out/web.pem
CONF
kill -HUP "$agent"
check "$agent" web
pass "after SIGHUP a new cert's lines carry CERTSYNC_CERT=web"

# A renewal that fails (the CA cannot store what it issues while newcerts/
# is a file): a warning with the failed event's MESSAGE_ID and the reason.
mv "$T/ca/newcerts" "$T/ca/newcerts.off" && : >"$T/ca/newcerts"
ctl renew web --force
has_failed() { [ -n "$(entries "$agent" CERTSYNC_CERT=web CERTSYNC_EVENT=failed)" ]; }
wait_until 30 has_failed || {
	journalctl -D "$JD" --no-pager _PID="$agent" | tail -20 >&2
	fail "no failed event for web in the journal"
}
entries "$agent" CERTSYNC_CERT=web CERTSYNC_EVENT=failed >"$T/failed.json"
python3 "$CHECK" failed "$T/failed.json" web local newcerts || fail "the failed event's fields"
rm "$T/ca/newcerts" && mv "$T/ca/newcerts.off" "$T/ca/newcerts"
pass "a failed renewal: journalctl CERTSYNC_EVENT=failed has it, at warning, with its MESSAGE_ID"
kill -TERM "$agent"
wait "$agent" || fail "the agent exited non-zero after SIGTERM"
journalctl --sync 2>/dev/null || true
n=$(journalctl -q -D "$JD" SYSLOG_IDENTIFIER=certsyncd-stderr 2>/dev/null | wc -l)
[ "$n" -eq 0 ] || {
	journalctl -D "$JD" SYSLOG_IDENTIFIER=certsyncd-stderr >&2
	fail "$n line(s) came through the stderr stream instead of native entries"
}
pass "nothing through the stderr stream: every line a native entry"

# 2. Without -f, started as systemd starts a service: it detaches (stderr
# /dev/null) and writes to the journal all the same.
rm -rf "$T/state" "$T/out" && mkdir -p "$T/out" /run/systemd/system # sd_booted()
std_conf >"$T/certsync.conf"
INVOCATION_ID=0123456789abcdef0123456789abcdef "$CERTSYNCD" -c "$T/certsync.conf" \
	2>"$T/detached.stderr" || fail "certsyncd (detaching) exited non-zero"
# The lock file holds the PID of the process that locked it, the one that
# forked and exited, until the detached child writes its own: wait for a
# PID that is alive.
lock_pid_alive() {
	local p
	p=$(tr -dc 0-9 <"$T/state/certsyncd.lock" 2>/dev/null)
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null
}
wait_until 10 lock_pid_alive || fail "no running agent's PID in the lock file"
pid=$(tr -dc 0-9 <"$T/state/certsyncd.lock")
CS_PIDS+=($pid)
check "$pid" mail
pass "without -f, started by systemd: journalctl CERTSYNC_CERT=mail shows the fields"
kill -TERM "$pid"
wait_until 30 bash -c "! kill -0 $pid 2>/dev/null" || fail "the detached agent did not stop"
