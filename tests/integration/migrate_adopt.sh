#!/usr/bin/env bash
# contrib/MIGRATION.md, step by step, on a certbot-style layout made here
# (live/NAME/*.pem symbolic links into archive/): `certsyncctl convert` makes
# the files certsync will own, and `certsyncd --once` adopts the valid
# certificate in them without issuing a new one; a configured name the
# certificate lacks makes it issue at once (the caveat the guide gives).
. "$(dirname "$0")/lib.bash"

P=$T/pki
bash "$CS_SOURCE_DIR/tests/mkpki.sh" "$P" ec >/dev/null 2>&1
# What certbot leaves: archive/NAME/{privkey1,fullchain1}.pem, live/ links.
LE=$T/letsencrypt
mkdir -p "$LE/archive/leaf.example.test" "$LE/live/leaf.example.test"
cp "$P/leaf.key" "$LE/archive/leaf.example.test/privkey1.pem"
cat "$P/leaf.pem" "$P/int.pem" >"$LE/archive/leaf.example.test/fullchain1.pem"
ln -s ../../archive/leaf.example.test/privkey1.pem "$LE/live/leaf.example.test/privkey.pem"
ln -s ../../archive/leaf.example.test/fullchain1.pem "$LE/live/leaf.example.test/fullchain.pem"
L=$LE/live/leaf.example.test

mkdir -p "$T/etc/postfix" "$T/etc/dovecot/private" "$T/state"
"$CERTSYNCCTL" convert "$L/privkey.pem" "$L/fullchain.pem" "$T/etc/postfix/mail.pem" --to bundle
"$CERTSYNCCTL" convert "$L/fullchain.pem" "$T/etc/dovecot/private/mail.crt" --to fullchain
"$CERTSYNCCTL" convert "$L/privkey.pem" "$T/etc/dovecot/private/mail.key" --to key
"$CERTSYNCCTL" inspect "$T/etc/postfix/mail.pem" >"$T/inspect" || { cat "$T/inspect"; fail "inspect"; }
grep -q "chain order: ok" "$T/inspect" && grep -q "key matches leaf: yes" "$T/inspect" ||
	fail "converted bundle: $(cat "$T/inspect")"
pass "certbot's live/ symlinks converted into files certsync owns"

conf() {
	cat >"$T/certsync.conf" <<CONF
[agent]
state_dir = $T/state
[issuer "ca"]
type    = local-ca
dir     = $T/ca
subject = /CN=certsync migration test CA
# The root of the certificates migrated (for Let's Encrypt, in the system's
# store, which an ACME issuer trusts without this line).
trust   = $P/root.pem
[cert "mail"]
issuer    = ca
names     = $1
key       = ec:P-256
bundle    = $T/etc/postfix/mail.pem
fullchain = $T/etc/dovecot/private/mail.crt
keyfile   = $T/etc/dovecot/private/mail.key
CONF
}
conf "leaf.example.test, 127.0.0.1"
sums() { sha256sum "$T/etc/postfix/mail.pem" "$T/etc/dovecot/private/mail.crt" "$T/etc/dovecot/private/mail.key"; }
before=$(sums)
"$CERTSYNCD" -f --once -c "$T/certsync.conf" 2>"$T/log1" || { cat "$T/log1"; fail "--once exited $?"; }
serial=$(openssl x509 -in "$P/leaf.pem" -noout -serial | cut -d= -f2)
grep -q "mail: adopting the deployed certificate $serial" "$T/log1" || { cat "$T/log1"; fail "not adopted"; }
grep -q "0 renewed, 0 repaired, 1 valid, 0 failed" "$T/log1" || { cat "$T/log1"; fail "summary"; }
[ "$(sums)" = "$before" ] || fail "the adopted files were rewritten"
[ ! -e "$T/ca/newcerts" ] || [ -z "$(ls "$T/ca/newcerts")" ] || fail "a certificate was issued"
# A second pass (the restart case) keeps it too.
"$CERTSYNCD" -f --once -c "$T/certsync.conf" 2>"$T/log2" || fail "second --once"
[ "$(sums)" = "$before" ] || fail "the second pass rewrote the files"
pass "certsyncd --once adopts serial $serial: nothing issued, files untouched, twice"

conf "leaf.example.test, smtp.example.test"
"$CERTSYNCD" -f --once -c "$T/certsync.conf" 2>"$T/log3" || { cat "$T/log3"; fail "--once with a new name"; }
grep -q "1 renewed" "$T/log3" || { cat "$T/log3"; fail "a missing name did not cause an issuance"; }
openssl x509 -in "$T/etc/postfix/mail.pem" -noout -ext subjectAltName | has "DNS:smtp.example.test" ||
	fail "the new certificate lacks the added name"
pass "a configured name the adopted certificate lacks: issued at once, as the guide warns"
