#!/usr/bin/env bash
# DANE when the zone refuses the agent's updates (issue 21): the agent signs
# them with the wrong TSIG key. The operator published the first key's
# record by hand; the agent can add nothing (no next key in DNS), so every
# renewal keeps the current key, in time, and mail keeps flowing: every
# message delivered over verified TLS, none deferred. The failure is
# visible: the log, certsyncctl dane (exit 1, the nsupdate error), show,
# certsync_dane_ok 0 and the failed updates counted. Then the right key is
# configured (SIGHUP): the next key is published and the rollover resumes.
# Needs root, BIND, Unbound and Postfix.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/servers.bash"
. "$(dirname "$0")/dns.bash"
. "$(dirname "$0")/dane_agent.bash"

started=$SECONDS
dane_setup wrong
first_key=$(key_of "$T/out/mail.pem")
dns_update add _25._tcp.mail.example.test "$DANE_TTL" "3 1 1 $first_key" ||
	fail "the operator's update with the right key was refused"
spawn_agent
update_failed() { [ "$(count 'DANE: cannot publish TLSA records')" -ge 1 ]; }
wait_until 30 update_failed || { log_tail; fail "no failed update logged"; }
grep -q "DANE: cannot publish TLSA records: nsupdate to 127.0.0.1:$DNS_PORT exited" "$T/agent.log" ||
	{ log_tail; fail "the log does not say nsupdate failed"; }
pass "the refused update is logged: $(grep -m1 'cannot publish TLSA' "$T/agent.log" | cut -c1-160)"

mail_loop_start
# Three renewals, in time, each with the current key.
three() { [ "$(renewals)" -ge 3 ]; }
wait_until 60 three || { log_tail 40; fail "fewer than 3 renewals in 60 s"; }
mail_loop_stop
all_verified
[ "$(sort -u "$T/keys")" = "$first_key" ] || fail "a key other than the published one was served"
[ "$(key_of "$T/out/mail.pem")" = "$first_key" ] || fail "the deployed key changed"
kept=$(count "DANE: renewing with the current key")
[ "$kept" -ge 3 ] || { log_tail 40; fail "only $kept renewal(s) say they kept the current key"; }
[ "$(count 'mail: renewal failed')" = 0 ] || { log_tail; fail "a renewal failed"; }
pass "$(renewals) renewals in time, every one with the current key ($((SECONDS - started)) s)"

ctl dane mail
[ "$rc" = 1 ] || { cat "$T/stdout" >&2; fail "certsyncctl dane exits $rc, not 1"; }
grep -q "NOT OK" "$T/stdout" && grep -q "failing: nsupdate to 127.0.0.1:$DNS_PORT" "$T/stdout" ||
	{ cat "$T/stdout" >&2; fail "certsyncctl dane does not show the failing update"; }
grep -q "^next: publishing fails" "$T/stdout" || { cat "$T/stdout" >&2; fail "certsyncctl dane does not say what happens next"; }
ctl show mail
grep -qE "dane .*NOT OK: publishing fails.*renewals that kept the current key: [3-9]" "$T/stdout" ||
	{ cat "$T/stdout" >&2; fail "show does not say DANE is failing and the key was kept"; }
ctl metrics
grep -q '^certsync_dane_ok{name="mail"} 0$' "$T/stdout" || fail "certsync_dane_ok is not 0"
grep -qE '^certsync_dane_update_failures_total\{name="mail"\} [1-9]' "$T/stdout" || fail "no failed update counted"
grep -qE '^certsync_dane_current_key_kept_total\{name="mail"\} [3-9]' "$T/stdout" || fail "the kept keys are not counted"
pass "certsyncctl dane (exit 1), show and the metrics show the failure"

# The right key: the next key is published, then used.
sed -i "s|^dane_tsig_key = .*|dane_tsig_key = $DNS_TSIG|" "$T/certsync.conf"
kill -HUP "$agent"
rolled() { [ "$(count 'DANE: renewing with the staged next key')" -ge 1 ]; }
wait_until 60 rolled || { log_tail 40; fail "no rollover after the right key was configured"; }
# The line above is logged when the renewal starts; the deployment follows.
key_changed() { [ "$(key_of "$T/out/mail.pem")" != "$first_key" ]; }
wait_until 30 key_changed || { log_tail 40; fail "the key did not change within 30 s of the rollover's start"; }
wait_until 30 dane_ok || { cat "$T/stdout" >&2; fail "DANE not ok after the rollover"; }
pass "with the right TSIG key the next key is published and the rollover happens ($((SECONDS - started)) s)"
stop_agent
