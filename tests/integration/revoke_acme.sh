#!/usr/bin/env bash
# certsyncctl revoke with an ACME issuer, against a running certsyncd -f and
# a real Pebble: the answer comes once Pebble has revoked the deployed leaf
# (its management interface then reports it Revoked), and a new certificate
# that Pebble reports Valid is deployed afterwards.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

export PEBBLE_VA_ALWAYS_VALID=1 # not a test of challenges
start_pebble
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
spawn_agent
wait_for "$T/agent.log" "status socket listening on" 10
wait_for "$T/agent.log" "web: renewed: serial" 30
check_deployed
serial() { openssl x509 -in "$T/out/web.crt" -noout -serial | cut -d= -f2; }
# status SERIAL: what Pebble's management interface says about it.
status() {
	curl -sf --cacert "$T/pebble-ca.pem" \
		"https://127.0.0.1:$PEBBLE_MGMT/cert-status-by-serial/$(tr 'A-F' 'a-f' <<<"$1")" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["Status"])'
}
s1=$(serial)
[ "$(status "$s1")" = Valid ] || fail "Pebble does not report $s1 valid: $(status "$s1")"

set +e
"$CERTSYNCCTL" -s "$T/certsync.sock" revoke web --reason superseded >"$T/stdout" 2>"$T/stderr"
rc=$?
set -e
[ $rc = 0 ] || fail "revoke exited $rc: $(cat "$T/stderr")"
[ "$(cat "$T/stdout")" = "revoked $s1 (reason superseded); a new certificate is being issued" ] ||
	fail "revoke printed: $(cat "$T/stdout")"
# The answer came after the CA's: no waiting here.
[ "$(status "$s1")" = Revoked ] || fail "Pebble does not report $s1 revoked: $(status "$s1")"
grep -q "web: revoked certificate $s1 with issuer pebble (reason superseded)" "$T/agent.log" ||
	fail "the revocation is not logged"
pass "certsyncctl revoke web: Pebble reports $s1 revoked when the command returns"

for _ in $(seq 200); do [ "$(serial)" != "$s1" ] && break; sleep 0.1; done
s2=$(serial)
[ "$s2" != "$s1" ] || fail "no new certificate deployed after the revocation"
check_deployed
[ "$(status "$s2")" = Valid ] || fail "Pebble does not report the new $s2 valid: $(status "$s2")"
set +e
"$CERTSYNCCTL" -s "$T/certsync.sock" revoke web --reason bogus >"$T/stdout" 2>"$T/stderr"
rc=$?
set -e
[ $rc = 1 ] || fail "revoke with a bad reason exited $rc"
grep -q 'unknown revocation reason "bogus"' "$T/stderr" || fail "bad reason: $(cat "$T/stderr")"
[ "$(status "$s2")" = Valid ] || fail "a refused revoke revoked $s2"
stop_agent
pass "a new certificate ($s2, valid at Pebble) was deployed after the revocation"
