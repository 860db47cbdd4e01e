#!/usr/bin/env bash
# The DANE looks' DNS questions are asked by netproc, never by the privileged
# parent (issue 18's model, extended to issue 21's resolver): while the
# fixture resolver (netproc_dns.py) holds a question, the UDP socket that
# asked it is among netproc's descriptors and not the parent's. A malformed
# answer is parsed (and refused) in netproc: the parent logs netproc's
# reason, DANE is not ok (certsyncctl dane, exit 1) and netproc is neither
# killed nor restarted (it runs while a question waits, and stops between
# the looks when no acme issuer needs it). Renewals go on with the current
# key. And a netproc that cannot start fails the question at once instead of
# leaving it (and the agent's SIGTERM) waiting. Needs root (netproc's user).
. "$(dirname "$0")/lib.bash"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for netproc"; exit 77; }
python3 "$CS_SOURCE_DIR/tests/integration/netproc_dns.py" "$T" &
CS_PIDS+=($!)
wait_until 10 test -s "$T/port" || fail "the fixture resolver did not start"
port=$(cat "$T/port")
{ conf_head "metrics_file = $T/metrics.prom"; echo; conf_mail "dane          = 3 1 1
dane_update   = none
dane_resolver = 127.0.0.1:$port
dane_ttl      = 4s"; } >"$T/certsync.conf"
mkdir -p "$T/out"
spawn_agent
wait_until 20 test -s "$T/asked" || { log_tail; fail "no DNS question reached the resolver"; }

# The sockets connected to the resolver's port (hex in /proc/net/udp), by inode.
hexport=$(printf '%04X' "$port")
resolver_inodes() { awk -v p=":$hexport" '$3 ~ p"$" { print $10 }' /proc/net/udp; }
# socket_of PID INODE: PID holds the socket.
socket_of() { ls -l "/proc/$1/fd/" 2>/dev/null | has "socket:\[$2\]"; }
# A question is held for 5 s: look while it is.
found() {
	local i
	np=$(sed -n 's/.*netproc: started (pid \([0-9]*\)).*/\1/p' "$T/agent.log" | tail -n 1)
	for i in $(resolver_inodes); do
		socket_of "$agent" "$i" && { echo parent >"$T/owner"; return 0; }
		[ -n "$np" ] && socket_of "$np" "$i" && { echo netproc >"$T/owner"; return 0; }
	done
	return 1
}
wait_until 20 found || { log_tail; fail "no socket to the resolver found in the parent or netproc"; }
[ "$(cat "$T/owner")" = netproc ] || fail "the parent (pid $agent) holds the socket that asks the resolver"
pass "the question to the resolver is asked from netproc (pid $np), not the parent (pid $agent)"

timed_out() { grep -q "DANE: resolver 127.0.0.1:$port: no answer for _25._tcp.mail.example.test TLSA: timed out" "$T/agent.log"; }
wait_until 20 timed_out || { log_tail; fail "the unanswered question is not logged"; }
pass "an unanswered question is logged: $(grep -m1 'no answer for' "$T/agent.log" | cut -c25-)"

echo garbage >"$T/mode"
bad() { grep -q "DANE: resolver 127.0.0.1:$port: malformed answer for _25._tcp.mail.example.test TLSA" "$T/agent.log"; }
wait_until 30 bad || { log_tail; fail "the malformed answer is not logged"; }
ctl dane mail
[ "$rc" = 1 ] || { cat "$T/stdout" >&2; fail "certsyncctl dane exits $rc, not 1"; }
grep -q "malformed answer" "$T/stdout" || { cat "$T/stdout" >&2; fail "certsyncctl dane does not say the answer was malformed"; }
grep -q "protocol violation\|netproc: killed" "$T/agent.log" && { log_tail; fail "netproc was taken for a violator"; }
ctl metrics
grep -q '^certsync_netproc_restarts_total 0$' "$T/stdout" && grep -q '^certsync_netproc_violations_total 0$' "$T/stdout" ||
	{ grep netproc "$T/stdout" >&2; fail "netproc was restarted or saw a violation"; }
pass "a malformed answer is refused in netproc and shown by certsyncctl dane; netproc keeps running"

renewed() { [ "$(count 'mail: renewed')" -ge 1 ]; }
wait_until 20 renewed || { log_tail; fail "the cert was not issued"; }
[ "$(count 'mail: renewal failed')" = 0 ] || { log_tail; fail "a renewal failed"; }
stop_agent
pass "the cert was issued all the same"

# A netproc that cannot start (here: a test build's CERTSYNC_TEST_NETPROC_PROGRAM
# makes it /bin/false, as a missing user or a refused sandbox would): the
# look's question fails at once with the reason, rather than wait through
# restart after restart, and SIGTERM stops the agent.
cp "$T/agent.log" "$T/agent1.log"
CERTSYNC_TEST_NETPROC_PROGRAM=/bin/false spawn_agent
cannot() { grep -q "DANE: the network process exited with status 1 before it was ready" "$T/agent.log"; }
wait_until 20 cannot || { log_tail; fail "the question does not fail when netproc cannot start"; }
ctl dane mail
[ "$rc" = 1 ] && grep -q "before it was ready" "$T/stdout" || { cat "$T/stdout" >&2; fail "certsyncctl dane does not say netproc cannot start"; }
kill -TERM "$agent"
gone() { ! kill -0 "$agent" 2>/dev/null; }
wait_until 15 gone || { log_tail; fail "the agent did not stop within 15 s of SIGTERM"; }
wait "$agent" || fail "the agent exited non-zero after SIGTERM"
pass "a netproc that cannot start fails the question at once ($(grep -m1 'before it was ready' "$T/agent.log" | cut -c25-)); SIGTERM stops the agent"
