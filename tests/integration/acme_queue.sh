#!/usr/bin/env bash
# Several certificates from one acme issuer in one pass: the pipeline asks for
# six at once (web and five more); the issuer creates the account once, then
# has several orders in flight, never more than max_orders (default 4). Every
# chain verifies against Pebble's root and names its own names. A max_orders
# outside 1..16 is refused by the configuration check.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

start_pebble
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
add_certs one two three four five
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent.log" ||
	{ cat "$T/agent.log" >&2; fail "certsyncd --once failed"; }
check_deployed
for n in one two three four five; do
	openssl x509 -in "$T/out/$n.crt" -out "$T/out/$n.leaf"
	awk 'n>0 {print} /END CERTIFICATE/ {n++}' "$T/out/$n.crt" >"$T/out/$n.chain"
	openssl verify -CAfile "$T/pebble-root.pem" -untrusted "$T/out/$n.chain" "$T/out/$n.leaf" \
		>/dev/null 2>&1 || fail "the chain of $n does not verify"
	openssl x509 -in "$T/out/$n.leaf" -noout -ext subjectAltName | has "DNS:$n.example.test" ||
		fail "the leaf of $n does not name $n.example.test"
done
[ "$(grep -c "account .* (created)" "$T/agent.log")" = 1 ] || fail "not exactly one account created"
[ "$(grep -c "certificate issued" "$T/agent.log")" = 6 ] || fail "not six issuances in the log"
# Orders in flight: from an order's first line ("order URL is pending") to its
# "certificate issued", counted along the log.
most=$(awk '/acme pebble: .*: order .* is pending/ { if (!seen[$7]++) { n++; if (n > m) m = n } }
	/acme pebble: .*: certificate issued/ { n-- }
	END { print m + 0 }' "$T/agent.log")
[ "$most" -ge 2 ] && [ "$most" -le 4 ] ||
	fail "$most orders in flight at most (want 2 to 4): $(cat "$T/agent.log")"
pass "six certificates from one issuer in one pass, one account, at most $most orders in flight"

for bad in 0 17 four; do
	sed -i "/^max_orders/d; s/^\\[issuer \"pebble\"\\]/&\nmax_orders = $bad/" "$T/certsync.conf"
	if "$CERTSYNCD" --check-config -c "$T/certsync.conf" >"$T/check.out" 2>&1; then
		fail "max_orders = $bad accepted"
	fi
	grep -q "max_orders.*'$bad' is not a number from 1 to 16" "$T/check.out" ||
		fail "no clear error for max_orders = $bad: $(cat "$T/check.out")"
done
pass "max_orders outside 1..16 refused with a clear error"
