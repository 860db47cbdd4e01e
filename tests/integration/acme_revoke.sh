#!/usr/bin/env bash
# cs_acme_revoke against Pebble: after certsyncd --once has issued a
# certificate, check_acme's "live" case revokes it with the account, in a
# new process reading the account key from disk (reason superseded):
# Pebble's management interface then reports it revoked, and a second
# revocation is refused with alreadyRevoked.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

export PEBBLE_VA_ALWAYS_VALID=1 # not a test of challenges
start_pebble
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent.log" ||
	{ cat "$T/agent.log" >&2; fail "certsyncd --once failed"; }
check_deployed
serial=$(openssl x509 -in "$T/out/leaf.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
status() {
	curl -sf --cacert "$T/pebble-ca.pem" \
		"https://127.0.0.1:$PEBBLE_MGMT/cert-status-by-serial/$serial" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["Status"])'
}
[ "$(status)" = Valid ] || fail "Pebble does not report the new certificate valid: $(status)"

CS_ACME_DIRECTORY=$ACME_DIR CS_ACME_CA_BUNDLE=$T/pebble-ca.pem CS_ACME_STATE_DIR=$T/state \
	CS_ACME_ISSUER=pebble CS_ACME_CERT=$T/out/leaf.pem \
	CS_ACME_LIVE_REVOKE=1 CK_RUN_CASE=live \
	"$CS_BUILD_DIR/tests/check_acme" >"$T/check.log" 2>&1 ||
	{ cat "$T/check.log" >&2; fail "the live revocation case failed"; }
grep -q "100%: Checks: 1," "$T/check.log" || { cat "$T/check.log" >&2; fail "the live case did not run"; }
[ "$(status)" = Revoked ] || fail "Pebble does not report the certificate revoked: $(status)"
pass "cs_acme_revoke revoked serial $serial at Pebble; a second revocation got alreadyRevoked"
