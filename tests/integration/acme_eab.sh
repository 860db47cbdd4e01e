#!/usr/bin/env bash
# External Account Binding: Pebble requires it (externalAccountBindingRequired
# with a MAC key for kid-1). Without eab_kid/eab_hmac_key the agent says that
# the CA requires EAB; with a wrong key Pebble's problem document is the
# error, verbatim; with the right one the account is created and the chain
# verifies. The MAC key never appears in the log.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

export PEBBLE_VA_ALWAYS_VALID=1 # not a test of challenges
start_pebble 1

write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
if "$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent0.log"; then
	fail "issued without EAB although Pebble requires it"
fi
grep -q "the CA requires external account binding: set eab_kid and eab_hmac_key" "$T/agent0.log" ||
	{ cat "$T/agent0.log" >&2; fail "no message saying that EAB is required"; }
pass "without EAB settings the agent says the CA requires them"

wrong=b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH
write_conf "http_listen = 127.0.0.1:$HTTP_PORT" "eab_kid = kid-1" "eab_hmac_key = $wrong"
if "$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent1.log"; then
	fail "issued with a wrong EAB key"
fi
grep -q '"type": "urn:ietf:params:acme:error:unauthorized"' "$T/agent1.log" ||
	{ cat "$T/agent1.log" >&2; fail "Pebble's problem document is not in the error"; }
grep -q 'urn:ietf:params:acme:error:unauthorized' "$T/state/certs/web.json" ||
	fail "the problem document is not the cert's last error: $(cat "$T/state/certs/web.json")"
pass "a wrong EAB key: Pebble's problem document, verbatim, is the cert's last error"

write_conf "http_listen = 127.0.0.1:$HTTP_PORT" "eab_kid = kid-1" "eab_hmac_key = $EAB_KEY"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent.log" ||
	{ cat "$T/agent.log" >&2; fail "certsyncd --once failed with the right EAB key"; }
check_deployed
grep -q "account .* (created)" "$T/agent.log" || fail "no account created"
! grep -q -e "$EAB_KEY" -e "$wrong" "$T"/agent*.log || fail "the EAB MAC key is in the log"
pass "EAB: the account is created with kid-1 and the chain verifies; the MAC key is never logged"
