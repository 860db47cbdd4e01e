#!/usr/bin/env bash
# A [cert] moved to another issuer (issue 15 item 14): after SIGHUP the agent
# notices that the deployed certificate came from the old issuer, says so in
# the schedule, and renews at once with the new one, instead of waiting until
# the old certificate is due. A restart with the new configuration does the
# same (the deployed certificate's issuer is kept in the state).
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out"
conf() {
	cat >"$T/certsync.conf" <<CONF
[agent]
state_dir = $T/state

[issuer "old"]
type = local-ca
dir  = $T/ca-old
subject = /CN=Old CA

[issuer "new"]
type = local-ca
dir  = $T/ca-new
subject = /CN=New CA

[cert "mail"]
issuer = $1
names  = mail.example.test
bundle = $T/out/mail.pem
CONF
}
issued_by() { openssl x509 -in "$T/out/mail.pem" -noout -issuer | sed 's/.*CN *= *//'; }

conf old
spawn_agent
wait_for "$T/agent.log" "mail: renewed: serial" 10
[ "$(issued_by)" = "Old CA" ] || fail "first certificate issued by $(issued_by)"
grep -q '"issuer": "old"' "$T/state/certs/mail.json" || fail "the state does not name the issuer"
conf new
kill -HUP $agent
wait_for "$T/agent.log" "mail: renewing with issuer new (the \[cert\]'s issuer changed" 10
wait_for "$T/agent.log" "mail: renewed: serial.*generation 2" 10
[ "$(issued_by)" = "New CA" ] || fail "after SIGHUP the certificate is issued by $(issued_by)"
openssl verify -CAfile "$T/ca-new/cacert.pem" "$T/out/mail.pem" >/dev/null || fail "does not verify to the new CA"
pass "SIGHUP with another issuer: renewed at once by the new one"
kill -TERM $agent
wait $agent || true

# A restart under a changed configuration: the same, from the state.
conf old
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/once.log" || { cat "$T/once.log" >&2; fail "--once"; }
grep -q "mail: renewing with issuer old (the \[cert\]'s issuer changed" "$T/once.log" ||
	{ cat "$T/once.log" >&2; fail "--once did not renew with the old issuer again"; }
[ "$(issued_by)" = "Old CA" ] || fail "after --once the certificate is issued by $(issued_by)"
pass "a restart with another issuer renews at once too"
