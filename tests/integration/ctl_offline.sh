#!/usr/bin/env bash
# certsyncctl inspect and convert as an administrator uses them, on files made
# here with openssl: DER -> PEM, PKCS#7 -> chain, PKCS#12 -> Postfix bundle
# (key, leaf, intermediate, root; mode 0600), a shuffled bundle put in order,
# and every kind of bad input refused with exit 1 and a message naming the
# file. What we print is compared with what openssl prints for the same file.
. "$(dirname "$0")/lib.bash"

P=$T/pki
bash "$CS_SOURCE_DIR/tests/mkpki.sh" "$P" ec >/dev/null
mkdir "$T/out"
O=$T/out
# subjects FILE: the subject of each certificate in FILE, in file order.
subjects() {
	openssl crl2pkcs7 -nocrl -certfile "$1" | openssl pkcs7 -print_certs -noout |
		sed -n 's/^subject=//p'
}
mode_of() { stat -c %a "$1"; }
expect_in() { grep -qF -- "$2" "$1" || { cat "$1" >&2; fail "\"$2\" not in $1"; }; }

want_order=$(printf '%s\n' "CN = leaf.example.test" \
	"O = certsync tests, CN = certsync Test Intermediate" \
	"O = certsync tests, CN = certsync Test Root")

# --- DER certificate -> PEM: the same certificate, byte for byte, mode 0644.
run 0 "$CERTSYNCCTL" convert "$P/leaf.der" "$O/cert.pem" --to cert
openssl x509 -in "$O/cert.pem" -outform DER -out "$T/back.der"
cmp -s "$T/back.der" "$P/leaf.der" || fail "DER -> PEM changed the certificate"
[ "$(grep -c BEGIN "$O/cert.pem")" = 1 ] || fail "cert output holds more than the leaf"
[ "$(mode_of "$O/cert.pem")" = 644 ] || fail "cert mode $(mode_of "$O/cert.pem"), not 644"
pass "DER certificate -> PEM (openssl x509 -inform DER equivalent), mode 0644"

# --- PKCS#7 (DER and PEM) -> fullchain and chain, leaf first.
run 0 "$CERTSYNCCTL" convert "$P/chain.p7b.der" "$O/fullchain.pem" --to fullchain
[ "$(subjects "$O/fullchain.pem")" = "$want_order" ] || fail "fullchain order: $(subjects "$O/fullchain.pem")"
run 0 "$CERTSYNCCTL" convert "$P/chain.p7b" "$O/chain.pem" --to chain
[ "$(subjects "$O/chain.pem")" = "$(echo "$want_order" | tail -n 2)" ] || fail "chain order"
openssl verify -CAfile "$P/root.pem" -untrusted "$O/chain.pem" "$O/fullchain.pem" >/dev/null ||
	fail "openssl verify rejects the converted chain"
pass "PKCS#7 -> fullchain (leaf, intermediate, root) and chain (intermediate, root)"

# --- PKCS#12 -> Postfix bundle: key, leaf, intermediate, root; 0600.
run 0 "$CERTSYNCCTL" convert "$P/bundle.p12" "$O/bundle.pem" --to bundle --password-file "$P/pw.txt"
[ "$(mode_of "$O/bundle.pem")" = 600 ] || fail "bundle mode $(mode_of "$O/bundle.pem"), not 600"
blocks=$(grep -- '-----BEGIN' "$O/bundle.pem" | tr '\n' ' ')
[ "$blocks" = "-----BEGIN PRIVATE KEY----- -----BEGIN CERTIFICATE----- -----BEGIN CERTIFICATE----- -----BEGIN CERTIFICATE----- " ] ||
	fail "bundle blocks: $blocks"
[ "$(subjects "$O/bundle.pem")" = "$want_order" ] || fail "bundle order: $(subjects "$O/bundle.pem")"
openssl pkey -in "$O/bundle.pem" -pubout >"$T/k.pub"
openssl x509 -in "$O/bundle.pem" -noout -pubkey >"$T/c.pub"
cmp -s "$T/k.pub" "$T/c.pub" || fail "the bundle's key does not match its first certificate"
pass "PKCS#12 (--password-file) -> bundle: key, leaf, intermediate, root; mode 0600"

run 0 env CS_P12_PW=s3cret "$CERTSYNCCTL" convert "$P/bundle.p12" "$O/b2.pem" \
	--to bundle --password-env CS_P12_PW
cmp -s "$O/bundle.pem" "$O/b2.pem" || fail "--password-env gives a different bundle"
run 0 "$CERTSYNCCTL" convert "$P/bundle.p12" "$O/b3.pem" --to bundle --mode 0640 \
	--password-file "$P/pw.txt"
[ "$(mode_of "$O/b3.pem")" = 640 ] || fail "--mode 0640 gave $(mode_of "$O/b3.pem")"
pass "PKCS#12 with --password-env; --mode 0640 honoured"

# --- A shuffled bundle (leaf, root, intermediate, key) comes out in order.
run 0 "$CERTSYNCCTL" convert "$P/shuffled.pem" "$O/fixed.pem" --to bundle
[ "$(subjects "$O/fixed.pem")" = "$want_order" ] || fail "reordered bundle: $(subjects "$O/fixed.pem")"
head -n 1 "$O/fixed.pem" | has 'BEGIN PRIVATE KEY' || fail "key not first"
pass "wrongly ordered bundle rewritten leaf, intermediate, root"

# --- Encrypted key: decrypted with the password, same key as openssl pkey gives.
run 0 "$CERTSYNCCTL" convert "$P/leaf.legacy.key" "$O/leaf.key" --to key --password-file "$P/pw.txt"
[ "$(mode_of "$O/leaf.key")" = 600 ] || fail "key mode $(mode_of "$O/leaf.key")"
openssl pkey -in "$P/leaf.key" >"$T/want.key"
cmp -s "$O/leaf.key" "$T/want.key" || fail "decrypted key differs from openssl pkey's"
pass "encrypted key -> unencrypted PKCS#8 key, mode 0600"

# --- inspect: facts equal openssl's, verdicts right, exit status meaningful.
run 0 "$CERTSYNCCTL" inspect "$P/mixed.pem"
expect_in "$T/stdout" "$P/mixed.pem: PEM, 1 private key, 3 certificates, 0 CRLs"
expect_in "$T/stdout" "chain order: ok"
expect_in "$T/stdout" "key matches leaf: yes"
expect_in "$T/stdout" "serial:     $(openssl x509 -in "$P/leaf.pem" -noout -serial | cut -d= -f2)"
expect_in "$T/stdout" "sha256:     $(openssl x509 -in "$P/leaf.pem" -noout -fingerprint -sha256 | cut -d= -f2)"
expect_in "$T/stdout" "SANs:       $(openssl x509 -in "$P/leaf.pem" -noout -ext subjectAltName | tail -n 1 | sed 's/^ *//')"
grep -qE "not after:  .* UTC \((89|90) days left\)" "$T/stdout" || fail "days left of a 90-day leaf"
pass "inspect: serial, sha256, SANs as openssl prints them; order ok; key matches"

run 1 "$CERTSYNCCTL" inspect "$P/shuffled.pem"
expect_in "$T/stdout" "chain order: wrong (certsync would reorder: CN=leaf.example.test > O=certsync tests, CN=certsync Test Intermediate > O=certsync tests, CN=certsync Test Root)"
run 1 "$CERTSYNCCTL" inspect "$P/mismatch.pem"
expect_in "$T/stdout" "key matches leaf: no"
expect_in "$T/stdout" "note: no certificate matches the private key"
run 1 "$CERTSYNCCTL" inspect "$P/strayed.pem"
expect_in "$T/stdout" "certificate 4: stray"
expect_in "$T/stdout" "chain order: wrong (not part of the leaf's chain: CN=certsync Stray)"
grep -qF "chain order: ok" "$T/stdout" && fail "inspect says the order of a file with a stray is ok"
pass "inspect: wrong order, a stray and mismatched key exit 1; strays shown"

run 0 "$CERTSYNCCTL" inspect --json --password-file "$P/pw.txt" "$P/bundle.p12" "$P/leaf.der"
python3 - "$T/stdout" <<'PY' || fail "inspect --json: unexpected document"
import json, sys
d = json.load(open(sys.argv[1]))
p12, der = d["files"]
assert p12["format"] == "PKCS#12", p12["format"]
assert p12["key"]["certsync_type"] == "ec:P-256"
assert [c["role"] for c in p12["certificates"]] == ["leaf", "intermediate", "root"]
assert p12["chain_order"] == "ok" and p12["key_matches_leaf"] is True
assert p12["certificates"][0]["sans"] == ["DNS:leaf.example.test", "DNS:*.wild.example.test", "IP Address:127.0.0.1"]
assert der["format"] == "DER certificate" and der["key"] is None
assert der["key_matches_leaf"] is None
PY
pass "inspect --json"

# --- Bad input: exit 1, the message names the file, nothing is written.
head -c 2000 /dev/urandom | tr -d - >"$T/garbage.bin"
run 1 "$CERTSYNCCTL" convert "$T/garbage.bin" "$O/g.pem" --to fullchain
expect_in "$T/stderr" "$T/garbage.bin: not a PEM, DER, PKCS#7 or PKCS#12 file"
[ ! -e "$O/g.pem" ] || fail "output written for garbage input"
run 1 "$CERTSYNCCTL" inspect "$T/garbage.bin"
expect_in "$T/stderr" "$T/garbage.bin: not a PEM, DER, PKCS#7 or PKCS#12 file"

head -n 8 "$P/leaf.pem" >"$T/truncated.pem"
run 1 "$CERTSYNCCTL" inspect "$T/truncated.pem"
expect_in "$T/stderr" "$T/truncated.pem: PEM block 1 starting at line 1 is truncated or corrupt"

run 1 "$CERTSYNCCTL" convert "$P/leaf.enc.key" "$O/e.pem" --to key
expect_in "$T/stderr" "$P/leaf.enc.key: the private key (block 1, line 1) is encrypted"
expect_in "$T/stderr" "Postfix cannot use encrypted keys"
[ ! -e "$O/e.pem" ] || fail "output written for an encrypted key without password"

echo wrong >"$T/wrong.txt"
run 1 "$CERTSYNCCTL" convert "$P/bundle.p12" "$O/w.pem" --to bundle --password-file "$T/wrong.txt"
expect_in "$T/stderr" "$P/bundle.p12: cannot decrypt the PKCS#12 file (MAC check failed): wrong password"

run 1 "$CERTSYNCCTL" convert "$P/mismatch.pem" "$O/m.pem" --to bundle
expect_in "$T/stderr" "$P/mismatch.pem: the private key does not belong to the certificate CN=leaf.example.test"
[ ! -e "$O/m.pem" ] || fail "bundle written with a mismatched key"

run 1 "$CERTSYNCCTL" convert "$P/leaf.der" "$O/k.pem" --to key
[ ! -e "$O/k.pem" ] || fail "key output written without a key"
run 1 "$CERTSYNCCTL" inspect "$T/does-not-exist.pem"
expect_in "$T/stderr" "$T/does-not-exist.pem: cannot open: No such file or directory"
pass "garbage, truncated PEM, encrypted key, wrong PKCS#12 password, mismatched key: exit 1, file named"

# --- Usage errors: exit 2; --help: exit 0.
run 2 "$CERTSYNCCTL" convert "$P/leaf.der" "$O/x.pem"
expect_in "$T/stderr" "--to is required"
run 2 "$CERTSYNCCTL" convert "$P/leaf.der" "$O/x.pem" --to pfx
expect_in "$T/stderr" "--to pfx: expected bundle, fullchain, cert, chain or key"
run 2 "$CERTSYNCCTL" convert "$P/leaf.der" "$O/x.pem" --to cert --mode 9z
run 2 "$CERTSYNCCTL" inspect
run 0 "$CERTSYNCCTL" inspect --help
expect_in "$T/stdout" "usage: certsyncctl inspect"
run 0 "$CERTSYNCCTL" convert --help
expect_in "$T/stdout" "usage: certsyncctl convert"
pass "bad usage exits 2, --help exits 0"

# --- fingerprint: the same bytes openssl prints after "Fingerprint=", for every
# digest, for every input format; --pubkey equals openssl's SPKI digest.
for dg in sha256 sha1 md5; do
	want=$(openssl x509 -in "$P/leaf.pem" -noout -fingerprint -$dg | cut -d= -f2)
	for f in leaf.pem leaf.der mixed.pem shuffled.pem chain.p7b; do
		run 0 "$CERTSYNCCTL" fingerprint --digest $dg "$P/$f"
		[ "$(cat "$T/stdout")" = "$want" ] || fail "fingerprint --digest $dg $f: $(cat "$T/stdout") != $want"
	done
	run 0 "$CERTSYNCCTL" fingerprint --digest $dg --password-file "$P/pw.txt" "$P/bundle.p12"
	[ "$(cat "$T/stdout")" = "$want" ] || fail "fingerprint of the PKCS#12 file ($dg)"
	wantpk=$(openssl x509 -in "$P/leaf.pem" -pubkey -noout | openssl pkey -pubin -outform DER |
		openssl dgst -$dg -c | sed 's/^.*= //' | tr a-f A-F)
	run 0 "$CERTSYNCCTL" fingerprint --digest $dg --pubkey "$P/mixed.pem"
	[ "$(cat "$T/stdout")" = "$wantpk" ] || fail "fingerprint --pubkey $dg: $(cat "$T/stdout") != $wantpk"
done
run 0 "$CERTSYNCCTL" fingerprint "$P/leaf.pem"
[ "$(cat "$T/stdout")" = "$(openssl x509 -in "$P/leaf.pem" -noout -fingerprint -sha256 | cut -d= -f2)" ] ||
	fail "default digest is not sha256"
run 0 "$CERTSYNCCTL" fingerprint "$P/leaf.pem" "$P/root.pem"
expect_in "$T/stdout" "$P/root.pem: $(openssl x509 -in "$P/root.pem" -noout -fingerprint -sha256 | cut -d= -f2)"
run 1 "$CERTSYNCCTL" fingerprint "$T/garbage.bin"
expect_in "$T/stderr" "$T/garbage.bin: not a PEM, DER, PKCS#7 or PKCS#12 file"
run 1 "$CERTSYNCCTL" fingerprint "$P/other.key"
expect_in "$T/stderr" "$P/other.key: no certificate in the file"
run 2 "$CERTSYNCCTL" fingerprint --digest sha512 "$P/leaf.pem"
expect_in "$T/stderr" "--digest sha512: expected sha256, sha1 or md5"
pass "fingerprint: sha256/sha1/md5 of certificate and public key equal openssl's, every format"

# --- tlsa: the association data openssl computes, in a zone-file line.
spki_sha256=$(openssl x509 -in "$P/leaf.pem" -pubkey -noout | openssl pkey -pubin -outform DER |
	openssl dgst -sha256 -r | cut -d' ' -f1)
run 0 "$CERTSYNCCTL" tlsa "$P/mixed.pem"
[ "$(cat "$T/stdout")" = "_25._tcp.leaf.example.test. IN TLSA 3 1 1 $spki_sha256" ] ||
	fail "tlsa default: $(cat "$T/stdout")"
cert_sha512=$(openssl x509 -in "$P/leaf.pem" -outform DER | openssl dgst -sha512 -r | cut -d' ' -f1)
run 0 "$CERTSYNCCTL" tlsa --selector 0 --matching 2 --host mx.example.org --port 465 "$P/leaf.der"
[ "$(cat "$T/stdout")" = "_465._tcp.mx.example.org. IN TLSA 3 0 2 $cert_sha512" ] ||
	fail "tlsa 3 0 2: $(cat "$T/stdout")"
root_spki=$(openssl x509 -in "$P/root.pem" -pubkey -noout | openssl pkey -pubin -outform DER |
	openssl dgst -sha256 -r | cut -d' ' -f1)
run 0 "$CERTSYNCCTL" tlsa --usage 2 "$P/mixed.pem"
[ "$(cat "$T/stdout")" = "_25._tcp.leaf.example.test. IN TLSA 2 1 1 $root_spki" ] ||
	fail "tlsa --usage 2: $(cat "$T/stdout")"
run 1 "$CERTSYNCCTL" tlsa --usage 2 "$P/leaf.pem"
expect_in "$T/stderr" "--usage 2 needs the issuer certificates"
run 2 "$CERTSYNCCTL" tlsa --selector 3 "$P/leaf.pem"
run 2 "$CERTSYNCCTL" tlsa "$P/leaf.pem" "$P/root.pem"
pass "tlsa: 3 1 1, 3 0 2 and 2 1 1 records equal openssl's digests"
