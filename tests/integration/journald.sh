#!/usr/bin/env bash
# Native journald logging, as an operator queries it: the agent run by
# systemd (systemd-run, as the packaged unit runs it: -f, Type=notify; and
# without -f, Type=forking) writes structured entries, and
# `journalctl -u UNIT CERTSYNC_CERT=mail` finds the cert's lines: the
# "renewed" event with CERTSYNC_EVENT, CERTSYNC_ISSUER, CERTSYNC_SERIAL (the
# serial of the bundle deployed) and its MESSAGE_ID; an ordinary "mail: ..."
# line with CERTSYNC_CERT and no MESSAGE_ID; a line about no cert without
# CERTSYNC_CERT. Skipped (77) where systemd is not PID 1 (containers, CI):
# there check_journal checks the same fields through a stubbed
# sd_journal_sendv, and it_journald_own through a real journald of its own.
. "$(dirname "$0")/lib.bash"

pid1=$(ps -p 1 -o comm= 2>/dev/null || echo "?")
if [ ! -d /run/systemd/system ] || [ "$pid1" != systemd ]; then
	echo "SKIP: no systemd (PID 1 is $pid1)"
	exit 77
fi
[ "$(id -u)" = 0 ] || { echo "SKIP: systemd-run of a system unit needs root"; exit 77; }
command -v systemd-run >/dev/null && command -v journalctl >/dev/null ||
	{ echo "SKIP: systemd-run or journalctl missing"; exit 77; }

RENEWED_ID=e44168237c754367aafb3e838f6f81e3 # agent/cs_journal.c
CHECK=$CS_SOURCE_DIR/tests/integration/journald_check.py
UNITS=()
stop_units() {
	local u
	for u in "${UNITS[@]}"; do
		systemctl stop "$u" >/dev/null 2>&1 || true
		systemctl reset-failed "$u" >/dev/null 2>&1 || true
	done
	cleanup
}
trap stop_units EXIT

mkdir -p "$T/out"
std_conf >"$T/certsync.conf"

# entries UNIT MATCH...: the unit's journal entries matching, as JSON lines.
entries() {
	local u=$1
	shift
	journalctl --sync 2>/dev/null || true
	journalctl -q -u "$u" -o json "$@" 2>/dev/null || true
}
has_renewed() { [ -n "$(entries "$1" CERTSYNC_CERT=mail MESSAGE_ID=$RENEWED_ID)" ]; }

# check UNIT: the fields of the unit's entries (journald_check.py).
check() {
	local u=$1 serial
	wait_until 60 has_renewed "$u" || {
		journalctl -u "$u" --no-pager | tail -30 >&2
		fail "$u: no renewed entry with CERTSYNC_CERT=mail in the journal"
	}
	serial=$(openssl x509 -in "$T/out/mail.pem" -noout -serial | cut -d= -f2)
	entries "$u" CERTSYNC_CERT=mail >"$T/$u.json"
	python3 "$CHECK" cert "$T/$u.json" mail "$serial" local || fail "$u: the cert's fields"
	entries "$u" >"$T/$u.all.json"
	python3 "$CHECK" nocert "$T/$u.all.json" || fail "$u: a line about no cert"
}

# 1. As the packaged unit: -f, Type=notify; stderr is the journal's stream.
U1=certsync-it-journald-$$-f
UNITS+=("$U1")
systemd-run --quiet --unit="$U1" -p Type=notify -p NotifyAccess=main \
	"$CERTSYNCD" -f -c "$T/certsync.conf" || fail "systemd-run $U1"
check "$U1"
pass "-f under systemd: journalctl -u $U1 CERTSYNC_CERT=mail shows the fields"
systemctl stop "$U1"

# 2. Without -f: certsyncd detaches (daemon(); stderr is /dev/null) and logs
# to the journal all the same.
rm -rf "$T/state" "$T/out" && mkdir -p "$T/out"
U2=certsync-it-journald-$$-d
UNITS+=("$U2")
systemd-run --quiet --unit="$U2" -p Type=forking -p "PIDFile=$T/state/certsyncd.lock" \
	"$CERTSYNCD" -c "$T/certsync.conf" || fail "systemd-run $U2"
check "$U2"
pass "without -f under systemd: journalctl -u $U2 CERTSYNC_CERT=mail shows the fields"
systemctl stop "$U2"
