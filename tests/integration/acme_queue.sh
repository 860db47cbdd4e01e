#!/usr/bin/env bash
# Several certificates from one acme issuer in one pass: the pipeline asks for
# four at once (web and three more); the issuer creates the account once and
# works through the orders one after the other. Every chain verifies against
# Pebble's root and names its own names.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

start_pebble
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
for n in one two three; do
	cat >>"$T/certsync.conf" <<CONF

[cert "$n"]
issuer    = pebble
names     = $n.example.test
fullchain = $T/out/$n.crt
keyfile   = $T/out/$n.key
CONF
done
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent.log" ||
	{ cat "$T/agent.log" >&2; fail "certsyncd --once failed"; }
check_deployed
for n in one two three; do
	openssl x509 -in "$T/out/$n.crt" -out "$T/out/$n.leaf"
	awk 'n>0 {print} /END CERTIFICATE/ {n++}' "$T/out/$n.crt" >"$T/out/$n.chain"
	openssl verify -CAfile "$T/pebble-root.pem" -untrusted "$T/out/$n.chain" "$T/out/$n.leaf" \
		>/dev/null 2>&1 || fail "the chain of $n does not verify"
	openssl x509 -in "$T/out/$n.leaf" -noout -ext subjectAltName | grep -q "DNS:$n.example.test" ||
		fail "the leaf of $n does not name $n.example.test"
done
[ "$(grep -c "account .* (created)" "$T/agent.log")" = 1 ] || fail "not exactly one account created"
[ "$(grep -c "certificate issued" "$T/agent.log")" = 4 ] || fail "not four issuances in the log"
pass "four certificates from one issuer in one pass, one account"
