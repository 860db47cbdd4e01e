#!/usr/bin/env bash
# ARI (RFC 9773) and profiles. Debian's Pebble serves neither renewalInfo nor
# profiles, so this test puts a fixture in front of it (acme_ari_fixture.py,
# a small python3 HTTPS server) that adds renewalInfo and meta.profiles to
# Pebble's directory, answers renewalInfo with a fixed window and forwards
# the rest to the real Pebble. Checked:
# - against plain Pebble, cs_acme_renewal_info says -ENOTSUP (no ARI);
# - through the fixture, the window of the deployed certificate is read
#   (check_acme's live case) and asked for under the RFC 9773 certID that
#   openssl's view of the certificate gives;
# - the first order carries the configured profile (offered by the
#   directory) and no "replaces"; the renewal order (a name was added)
#   carries "replaces": CERTID of the deployed certificate.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

export PEBBLE_VA_ALWAYS_VALID=1 # not a test of challenges
start_pebble

# Plain Pebble first: no renewalInfo.
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent0.log" ||
	{ cat "$T/agent0.log" >&2; fail "certsyncd --once against Pebble failed"; }
check_deployed
live() {
	CS_ACME_DIRECTORY=$1 CS_ACME_CA_BUNDLE=$T/pebble-ca.pem CS_ACME_STATE_DIR=$T/state \
		CS_ACME_ISSUER=pebble CS_ACME_CERT=$T/out/leaf.pem CS_ACME_LIVE_ARI=1 \
		CK_RUN_CASE=live "$CS_BUILD_DIR/tests/check_acme" >"$T/check.log" 2>&1 ||
		{ cat "$T/check.log" >&2; fail "the live ARI case failed"; }
	grep -q "100%: Checks: 1," "$T/check.log" || { cat "$T/check.log" >&2; fail "the live case did not run"; }
}
live "$ACME_DIR"
pass "Debian's Pebble offers no ARI: cs_acme_renewal_info reports -ENOTSUP"

FIX_PORT=$(free_port)
ARI_START=2031-01-02T04:00:00Z
ARI_END=2031-01-03T04:00:00Z
python3 "$(dirname "$0")/acme_ari_fixture.py" "$FIX_PORT" "$T/pebble.pem" "$T/pebble.key" \
	"$PEBBLE_PORT" "$T/pebble-ca.pem" "$ARI_START" "$ARI_END" "$T" >"$T/fixture.out" 2>&1 &
CS_PIDS+=($!)
wait_for "$T/fixture.out" listening 10
ACME_DIR=https://127.0.0.1:$FIX_PORT/dir
rm -rf "$T/out" "$T/state/generations" "$T/state/certs"
write_conf "http_listen = 127.0.0.1:$HTTP_PORT" "profile = shortlived"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent1.log" ||
	{ cat "$T/agent1.log" >&2; fail "certsyncd --once through the fixture failed"; }
check_deployed
first=$(tail -1 "$T/orders.log")
grep -q '"profile": *"shortlived"' <<<"$first" || fail "the order has no profile: $first"
! grep -q replaces <<<"$first" || fail "a first order with replaces: $first"
pass "the first order asks for the offered profile and replaces nothing"

# The RFC 9773 certID of the deployed leaf, from openssl's view of it.
b64url() { xxd -r -p | base64 -w0 | tr '+/' '-_' | tr -d '='; }
aki=$(openssl x509 -in "$T/out/leaf.pem" -noout -ext authorityKeyIdentifier |
	sed -n 's/^ *\(keyid:\)\{0,1\}\([0-9A-F:]\{20,\}\).*/\2/p' | tr -d ':')
serial=$(openssl x509 -in "$T/out/leaf.pem" -noout -serial | cut -d= -f2)
[ $((${#serial} % 2)) = 0 ] || serial=0$serial
case $serial in [89A-F]*) serial=00$serial ;; esac
certid=$(printf %s "$aki" | b64url).$(printf %s "$serial" | b64url)
CS_ACME_ARI_START=$ARI_START CS_ACME_ARI_END=$ARI_END live "$ACME_DIR"
[ "$(tail -1 "$T/certids.log")" = "$certid" ] ||
	fail "renewalInfo was asked for $(tail -1 "$T/certids.log"), not $certid"
pass "the window $ARI_START .. $ARI_END is read for certID $certid"

# A renewal (due at once: a name was added to the cert) replaces it.
sed -i 's/^names     = a.example.test, b.example.test$/&, c.example.test/' "$T/certsync.conf"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent2.log" ||
	{ cat "$T/agent2.log" >&2; fail "the renewal through the fixture failed"; }
grep -q "web: renewed" "$T/agent2.log" || fail "no renewal happened"
second=$(tail -1 "$T/orders.log")
grep -q "\"replaces\": *\"$certid\"" <<<"$second" || fail "the renewal order does not replace $certid: $second"
check_deployed
pass "the renewal order carries replaces=$certid"
