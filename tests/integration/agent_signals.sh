#!/usr/bin/env bash
# certsyncd as a user runs it: --check-config on good and bad files, SIGHUP
# with a broken configuration keeps the old one, SIGHUP with a good one
# applies it, SIGTERM stops cleanly, and the service manager hears about each
# step (READY=1, RELOADING=1, STOPPING=1) through NOTIFY_SOCKET.
. "$(dirname "$0")/lib.bash"

std_conf >"$T/certsync.conf"
"$CERTSYNCD" --check-config -c "$T/certsync.conf" >"$T/check.out" 2>&1 ||
	fail "good configuration rejected: $(cat "$T/check.out")"
grep -q "configuration OK" "$T/check.out" || fail "no OK line"
pass "--check-config accepts a good file (exit 0)"

# Five different mistakes, each reported with file:line, exit status 2.
cat >"$T/bad.conf" <<CONF
[agent]
renew_before = soon
[issuer "local"]
type = local-ca
dir = relative/ca
[cert "mail"]
issuer = local
names = mail.example.test
bundle = $T/out/mail.pem
key = rsa:1024
reload = postfix
[frobnicate]
CONF
set +e
"$CERTSYNCD" --check-config -c "$T/bad.conf" >"$T/bad.out" 2>&1
rc=$?
set -e
[ $rc -eq 2 ] || fail "--check-config on a bad file exited $rc, not 2"
for line in 2 5 10 11 12; do
	grep -q "^$T/bad.conf:$line: " "$T/bad.out" || fail "no error for line $line: $(cat "$T/bad.out")"
done
[ "$(grep -c "^$T/bad.conf:[0-9]" "$T/bad.out")" -eq 5 ] || fail "not exactly five errors"
pass "--check-config lists all five mistakes with file:line, exit 2"

# The running agent.
"$CS_BUILD_DIR/tests/notify_recv" "$T/notify.sock" >"$T/notify.log" &
CS_PIDS+=($!)
wait_for_sock() { for _ in $(seq 100); do [ -S "$T/notify.sock" ] && return; sleep 0.05; done; fail "no notify socket"; }
wait_for_sock
NOTIFY_SOCKET=$T/notify.sock spawn_agent
wait_for "$T/notify.log" "READY=1"
wait_for "$T/agent.log" "started"
pass "agent started and sent READY=1"

# Break the configuration: the agent logs every error and keeps running.
cp "$T/bad.conf" "$T/certsync.conf"
kill -HUP $agent
wait_for "$T/agent.log" "keeping the previous one"
kill -0 $agent || fail "agent died on a bad configuration"
for line in 2 5 10 11 12; do
	grep -q "$T/certsync.conf:$line: " "$T/agent.log" || fail "error for line $line not logged"
done
wait_for "$T/notify.log" "RELOADING=1"
pass "SIGHUP with a broken configuration: errors logged, old configuration kept"

# Still serving the old configuration: a good reload afterwards works.
std_conf >"$T/certsync.conf"
cat >>"$T/certsync.conf" <<CONF

[cert "www"]
issuer = local
names  = www.example.test
bundle = $T/out/www.pem
CONF
kill -HUP $agent
wait_for "$T/agent.log" "configuration reloaded"
wait_for "$T/agent.log" "2 cert(s)"
kill -0 $agent || fail "agent died on a good reload"
pass "SIGHUP with a good configuration applies it"

kill -TERM $agent
for _ in $(seq 100); do kill -0 $agent 2>/dev/null || break; sleep 0.05; done
kill -0 $agent 2>/dev/null && fail "agent still running 5 s after SIGTERM"
wait $agent || fail "agent exited non-zero after SIGTERM"
wait_for "$T/notify.log" "STOPPING=1"
grep -q "stopped" "$T/agent.log" || fail "no 'stopped' in the log"
leftover=$(find "$T" -name '.*.??????' -o -name '*.tmp' | head -5)
[ -z "$leftover" ] || fail "temp files left behind: $leftover"
pass "SIGTERM: graceful stop, STOPPING=1, no temp files"
