#!/usr/bin/env bash
# One agent per state_dir: while a certsyncd runs, a second one on the same
# state_dir (daemon or --once, even with another configuration file and
# socket) refuses to start, names the first one's PID and exits non-zero
# without writing anything; once the first is gone (even SIGKILLed), the
# next one starts.
. "$(dirname "$0")/lib.bash"

conf() { # conf SOCKET OUTDIR
	cat <<CONF
[agent]
state_dir = $T/state
socket    = $1

[issuer "local"]
type = local-ca
dir  = $T/ca

[cert "mail"]
issuer = local
names  = mail.example.test
bundle = $2/mail.pem
CONF
}
mkdir -p "$T/out" "$T/out2"
conf "$T/a.sock" "$T/out" >"$T/a.conf"
conf "$T/b.sock" "$T/out2" >"$T/b.conf"

"$CERTSYNCD" -f -c "$T/a.conf" 2>"$T/a.log" &
a=$!
CS_PIDS+=($a)
wait_for "$T/a.log" "started"
[ -f "$T/state/certsyncd.lock" ] || fail "no $T/state/certsyncd.lock"
[ "$(cat "$T/state/certsyncd.lock")" = "$a" ] || fail "the lock file does not hold PID $a"
pass "the running agent holds $T/state/certsyncd.lock with its PID"

for mode in --once -f; do
	set +e
	timeout 20 "$CERTSYNCD" $mode -c "$T/b.conf" >"$T/b.out" 2>&1
	rc=$?
	set -e
	[ $rc -ne 0 ] || fail "a second agent ($mode) on the same state_dir exited 0: $(cat "$T/b.out")"
	[ $rc -ne 124 ] || fail "a second agent ($mode) on the same state_dir kept running"
	grep -q "another certsyncd (PID $a) is running on state_dir $T/state" "$T/b.out" ||
		fail "the second agent ($mode) does not name PID $a: $(cat "$T/b.out")"
	[ ! -e "$T/out2/mail.pem" ] || fail "the second agent ($mode) deployed a certificate"
	[ ! -e "$T/b.sock" ] || fail "the second agent ($mode) created its socket"
	kill -0 $a || fail "the first agent died"
	pass "a second agent ($mode) refuses to run (exit $rc) and names PID $a"
done

# A killed holder leaves no stale lock.
kill -9 $a
wait $a 2>/dev/null || true
timeout 60 "$CERTSYNCD" --once -c "$T/b.conf" >"$T/c.out" 2>&1 ||
	fail "an agent after the holder was killed did not run: $(cat "$T/c.out")"
[ -s "$T/out2/mail.pem" ] || fail "no certificate deployed after the holder was killed"
pass "after the holder is SIGKILLed the next agent runs"
