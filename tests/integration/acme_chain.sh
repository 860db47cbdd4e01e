#!/usr/bin/env bash
# Alternate chains (Link rel="alternate") and preferred_chain: Pebble with an
# alternate root (PEBBLE_ALTERNATE_ROOTS=1) offers each certificate under two
# roots. With preferred_chain naming the alternate root's CN (the issuer of
# the top certificate of the chain), the deployed chain verifies against that
# root and not against the default one; with a CN no chain has, the default
# chain is deployed. A chain that does not end at the issuer's trust (the
# alternate chain while only the default root is trusted) is refused.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

export PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_ALTERNATE_ROOTS=1 # not a test of challenges
start_pebble
curl -sf --cacert "$T/pebble-ca.pem" "https://127.0.0.1:$PEBBLE_MGMT/roots/1" >"$T/root1.pem" ||
	fail "cannot fetch Pebble's alternate root"
cn1=$(openssl x509 -in "$T/root1.pem" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p')
[ -n "$cn1" ] || fail "no CN in the alternate root"

# Both roots are the issuer's trust here.
cat "$T/pebble-root.pem" "$T/root1.pem" >"$T/roots.pem"
export ACME_TRUST=$T/roots.pem

verifies() { openssl verify -CAfile "$1" -untrusted "$T/out/chain.pem" "$T/out/leaf.pem" >/dev/null 2>&1; }

write_conf "http_listen = 127.0.0.1:$HTTP_PORT" "preferred_chain = $cn1"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent.log" ||
	{ cat "$T/agent.log" >&2; fail "certsyncd --once failed"; }
mv "$T/pebble-root.pem" "$T/root0.pem"
cp "$T/root1.pem" "$T/pebble-root.pem"
check_deployed
verifies "$T/root0.pem" && fail "the chain for '$cn1' also verifies against the default root"
grep -q "using the alternate chain" "$T/agent.log" || fail "the log does not say an alternate chain was used"
pass "preferred_chain = $cn1: the alternate chain is deployed and verifies against its root"

rm -rf "$T/out" "$T/state/generations" "$T/state/certs"
write_conf "http_listen = 127.0.0.1:$HTTP_PORT" "preferred_chain = No Such Root"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent2.log" ||
	{ cat "$T/agent2.log" >&2; fail "certsyncd --once failed"; }
cp "$T/root0.pem" "$T/pebble-root.pem"
check_deployed
grep -q "no chain under No Such Root; keeping the default one" "$T/agent2.log" ||
	fail "the log does not say the default chain was kept"
pass "a preferred_chain no chain has: the default chain is deployed"

# Only the default root trusted: the alternate chain is not deployed.
rm -rf "$T/out" "$T/state/generations" "$T/state/certs"
cp "$T/root0.pem" "$T/only0.pem"
ACME_TRUST=$T/only0.pem write_conf "http_listen = 127.0.0.1:$HTTP_PORT" "preferred_chain = $cn1"
rc=0
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent3.log" || rc=$?
[ "$rc" -ne 0 ] || { cat "$T/agent3.log" >&2; fail "certsyncd --once deployed a chain outside the issuer's trust"; }
[ ! -e "$T/out/web.crt" ] || fail "a chain outside the issuer's trust was deployed"
grep -q "refusing to deploy: the chain does not verify to CAfile $T/only0.pem" "$T/agent3.log" ||
	{ cat "$T/agent3.log" >&2; fail "the log does not say why the chain was refused"; }
pass "a chain that does not end at the issuer's trust is refused"
