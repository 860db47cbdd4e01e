#!/usr/bin/env bash
# PKCS#12 files as other tools make them, read by certsyncctl convert, inspect
# and fingerprint: "legacy" ones (openssl pkcs12 -export -legacy: RC2-40 for
# the certificates, what OpenSSL 1.x and many Windows exports produce), ones
# without a MAC (-nomac), with and without a password; and a plain sentence,
# not an OpenSSL error code, when the legacy provider is not there.
. "$(dirname "$0")/lib.bash"

P=$T/pki
bash "$CS_SOURCE_DIR/tests/mkpki.sh" "$P" ec >/dev/null
O=$T/out
mkdir "$O"
expect_in() { grep -qF -- "$2" "$1" || { cat "$1" >&2; fail "\"$2\" not in $1"; }; }
export_p12() { # export_p12 OUT PASSWORD OPTIONS...
	local out=$1 pw=$2
	shift 2
	openssl pkcs12 -export -inkey "$P/leaf.key" -in "$P/leaf.pem" -certfile "$P/chain.pem" \
		-passout "pass:$pw" -out "$out" "$@"
}
if ! export_p12 "$T/legacy.p12" s3cret -legacy 2>"$T/ossl.err"; then
	echo "SKIP: openssl cannot write -legacy files here: $(cat "$T/ossl.err")"
	exit 77
fi
openssl pkcs12 -in "$T/legacy.p12" -info -noout -passin pass:s3cret -legacy 2>&1 |
	has "pbeWithSHA1And40BitRC2-CBC" || fail "the -legacy file is not RC2-40 encrypted"
export_p12 "$T/nomac.p12" s3cret -nomac
export_p12 "$T/nomac-empty.p12" "" -nomac
export_p12 "$T/legacy-nomac.p12" s3cret -legacy -nomac

want_fp=$(openssl x509 -in "$P/leaf.pem" -noout -fingerprint -sha256 | cut -d= -f2)
want_blocks="-----BEGIN PRIVATE KEY----- -----BEGIN CERTIFICATE----- -----BEGIN CERTIFICATE----- -----BEGIN CERTIFICATE----- "
check_bundle() { # check_bundle FILE: key, leaf, intermediate, root; key matches leaf
	local blocks
	blocks=$(grep -- '-----BEGIN' "$1" | tr '\n' ' ')
	[ "$blocks" = "$want_blocks" ] || fail "$1 blocks: $blocks"
	cmp -s <(openssl pkey -in "$1" -pubout) <(openssl x509 -in "$1" -noout -pubkey) ||
		fail "$1: the key does not match the first certificate"
	cmp -s <(openssl x509 -in "$1" -outform DER) <(openssl x509 -in "$P/leaf.pem" -outform DER) ||
		fail "$1: the first certificate is not the leaf"
}

for f in legacy nomac legacy-nomac; do
	run 0 "$CERTSYNCCTL" convert "$T/$f.p12" "$O/$f.pem" --to bundle --password-file "$P/pw.txt"
	check_bundle "$O/$f.pem"
	run 0 "$CERTSYNCCTL" inspect --password-file "$P/pw.txt" "$T/$f.p12"
	expect_in "$T/stdout" "$T/$f.p12: PKCS#12, 1 private key, 3 certificates"
	expect_in "$T/stdout" "certificate 1: leaf"
	run 0 "$CERTSYNCCTL" fingerprint --password-file "$P/pw.txt" "$T/$f.p12"
	[ "$(cat "$T/stdout")" = "$want_fp" ] || fail "fingerprint of $f.p12: $(cat "$T/stdout")"
	pass "$f.p12: convert (key, leaf, intermediate, root), inspect, fingerprint"
done

run 0 "$CERTSYNCCTL" convert "$T/nomac-empty.p12" "$O/nomac-empty.pem" --to bundle
check_bundle "$O/nomac-empty.pem"
pass "a -nomac file with an empty password needs none"

echo wrong >"$T/wrong.txt"
run 1 "$CERTSYNCCTL" inspect --password-file "$T/wrong.txt" "$T/nomac.p12"
expect_in "$T/stderr" "$T/nomac.p12: cannot decrypt the PKCS#12 file: wrong password"
run 1 "$CERTSYNCCTL" inspect "$T/nomac.p12"
expect_in "$T/stderr" "$T/nomac.p12: the PKCS#12 file is protected by a password and none was given"
pass "a -nomac file: a wrong or missing password is said so"

# Without the legacy provider (OPENSSL_MODULES pointing nowhere): a sentence.
run 1 env OPENSSL_MODULES=$T/nowhere "$CERTSYNCCTL" inspect --password-file "$P/pw.txt" "$T/legacy.p12"
expect_in "$T/stderr" "$T/legacy.p12: the PKCS#12 file is encrypted with pbeWithSHA1And40BitRC2-CBC, an algorithm of OpenSSL's legacy provider, and that provider cannot be loaded"
if grep -q "error:" "$T/stderr"; then fail "OpenSSL error codes in: $(cat "$T/stderr")"; fi
# ... and a modern file does not need it.
run 0 env OPENSSL_MODULES=$T/nowhere "$CERTSYNCCTL" inspect --password-file "$P/pw.txt" "$P/bundle.p12"
pass "legacy provider missing: a plain sentence naming the algorithm; modern files still read"
