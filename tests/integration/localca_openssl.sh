#!/usr/bin/env bash
# The local-ca issuer and the `openssl ca` command share one CA directory:
# - for every key type, a CA certsync creates issues a leaf (of the same type and
#   of the other kind) that `openssl verify` accepts, with the SANs and usages asked for;
# - on that CA, `openssl ca -revoke`, `-gencrl`, `-updatedb` and a plain `openssl ca`
#   issuance work, and certsync's own revoke/gencrl produce a CRL openssl verifies;
# - a CA made by hand (`openssl req -x509` plus the `ca` layout) is adopted without
#   touching its certificate or key, and both tools go on issuing into one index.txt;
# - 1,000 issuances leave an index.txt that `openssl ca -updatedb` reads, with
#   1,000 distinct serials, each with its newcerts/SERIAL.pem.
. "$(dirname "$0")/lib.bash"

SUBJ="/C=US/ST=Minnesota/L=Saint Paul/O=The Milly Server/OU=milly.example.com/CN=Milly CA"

. "$(dirname "$0")/localca_lib.bash"

# --- every key type, for the CA and for leaves.
for kt in ec:P-256 ec:P-384 rsa:2048 rsa:3072 rsa:4096 ed25519; do
	d=$T/ca-${kt/:/-}
	"$DRV" -d "$d" -k "$kt" -s "$SUBJ" issue -t "$kt" -o "$T/leaf" www.example.test 192.0.2.7 >/dev/null ||
		fail "$kt: issuing failed"
	"$DRV" -d "$d" issue -t ec:P-256 -u client -o "$T/client" client.example.test >/dev/null ||
		fail "$kt: issuing an EC client leaf failed"
	openssl verify -CAfile "$d/cacert.pem" -purpose sslserver "$T/leaf.pem" >/dev/null ||
		fail "$kt CA: openssl verify rejects the $kt server leaf"
	openssl verify -CAfile "$d/cacert.pem" -purpose sslclient "$T/client.pem" >/dev/null ||
		fail "$kt CA: openssl verify rejects the client leaf"
	openssl x509 -in "$T/leaf.pem" -noout -ext subjectAltName,extendedKeyUsage >"$T/ext"
	grep -q "DNS:www.example.test, IP Address:192.0.2.7" "$T/ext" || fail "$kt: SANs: $(cat "$T/ext")"
	grep -q "TLS Web Server Authentication" "$T/ext" || fail "$kt: no serverAuth"
	[ "$(openssl x509 -in "$d/cacert.pem" -noout -subject)" = \
		"subject=C = US, ST = Minnesota, L = Saint Paul, O = The Milly Server, OU = milly.example.com, CN = Milly CA" ] ||
		fail "$kt: CA subject $(openssl x509 -in "$d/cacert.pem" -noout -subject)"
	cmp -s <(openssl pkey -in "$T/leaf.key" -pubout) <(openssl x509 -in "$T/leaf.pem" -noout -pubkey) ||
		fail "$kt: leaf does not carry the CSR's key"
	index_ok "$d"
	pass "$kt CA: server and client leaves verify with openssl"
done

# --- openssl ca on a CA certsync created.
d=$T/ca-ec-P-256
cnf "$d"
s1=$(sed -n 1p "$d/index.txt" | cut -f4)
osslca "$d" -revoke "$d/newcerts/$s1.pem" -crl_reason keyCompromise || fail "openssl ca -revoke failed"
grep -qP "^R\t[0-9]{12}Z\t[0-9]{12}Z,keyCompromise\t$s1\tunknown\t/CN=www.example.test$" "$d/index.txt" ||
	fail "openssl ca -revoke did not mark $s1: $(cat "$d/index.txt")"
osslca "$d" -gencrl -out "$T/ossl-crl.pem" || fail "openssl ca -gencrl failed"
openssl crl -in "$T/ossl-crl.pem" -CAfile "$d/cacert.pem" -noout 2>&1 | has "verify OK" ||
	fail "the CRL of openssl ca does not verify"
openssl crl -in "$T/ossl-crl.pem" -noout -text | has "Serial Number: $s1" || fail "$s1 not in openssl's CRL"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/o.key" \
	-subj /CN=ossl.example.test -out "$T/o.csr" 2>/dev/null
osslca "$d" -in "$T/o.csr" -out "$T/o.pem" || fail "openssl ca could not issue on certsync's CA"
openssl verify -CAfile "$d/cacert.pem" "$T/o.pem" >/dev/null || fail "openssl ca's leaf does not verify"
osslca "$d" -updatedb || fail "openssl ca -updatedb failed"
pass "openssl ca -revoke, -gencrl, -updatedb and issuance work on a CA certsync created"

# certsync carries on after openssl ca: issues, revokes, makes a CRL openssl checks.
"$DRV" -d "$d" issue -o "$T/after" after.example.test >"$T/s" || fail "issuing after openssl ca failed"
s2=$(cat "$T/s")
"$DRV" -d "$d" revoke "$s2" superseded || fail "certsync revoke failed"
grep -qP "^R\t[0-9]{12}Z\t[0-9]{12}Z,superseded\t$s2\tunknown\t/CN=after.example.test$" "$d/index.txt" ||
	fail "certsync revoke wrote: $(grep "$s2" "$d/index.txt")"
"$DRV" -d "$d" revoke "$s2" 2>"$T/err" && fail "revoking $s2 twice succeeded"
grep -q "already revoked" "$T/err" || fail "second revoke said: $(cat "$T/err")"
n0=$(cat "$d/crlnumber")
"$DRV" -d "$d" gencrl 3 || fail "certsync gencrl failed"
[ "$(cat "$d/crlnumber")" = "$(printf '%02X\n' $((16#$n0 + 1)))" ] || fail "crlnumber $(cat "$d/crlnumber") after $n0"
openssl crl -in "$d/crl.pem" -CAfile "$d/cacert.pem" -noout 2>&1 | has "verify OK" ||
	fail "certsync's CRL does not verify"
openssl crl -in "$d/crl.pem" -noout -text >"$T/crl.txt"
grep -q "Serial Number: $s1" "$T/crl.txt" && grep -q "Serial Number: $s2" "$T/crl.txt" ||
	fail "certsync's CRL lacks $s1 or $s2"
cat "$d/cacert.pem" "$d/crl.pem" >"$T/trust.pem"
openssl verify -crl_check -CAfile "$T/trust.pem" "$T/after.pem" >/dev/null 2>&1 &&
	fail "openssl verify -crl_check accepts the revoked leaf"
openssl verify -crl_check -CAfile "$T/trust.pem" "$T/o.pem" >/dev/null || fail "-crl_check rejects a valid leaf"
osslca "$d" -gencrl -out "$T/ossl-crl2.pem" || fail "openssl ca -gencrl after certsync's revoke failed"
openssl crl -in "$T/ossl-crl2.pem" -noout -text | has "Serial Number: $s2" || fail "$s2 not in openssl's CRL"
index_ok "$d"
pass "certsync revokes and generates CRLs openssl verifies, after and before openssl ca"

# --- a CA made by hand with openssl req -x509 and the ca layout.
h=$T/hand
mkdir -p "$h/private" "$h/newcerts"
chmod 700 "$h/private"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$h/private/cakey.pem" -out "$h/cacert.pem" \
	-subj "/C=US/O=Hand Made/CN=Hand Made CA" -days 365 2>/dev/null
touch "$h/index.txt"
echo 1000 >"$h/serial"
cnf "$h"
osslca "$h" -in "$T/o.csr" -out "$T/h1.pem" || fail "openssl ca on the hand-made CA failed"
cp "$h/cacert.pem" "$T/hand-cacert.pem"
cp "$h/private/cakey.pem" "$T/hand-cakey.pem"
"$DRV" -d "$h" -k ed25519 -s /CN=ignored issue -o "$T/h2" hand.example.test >/dev/null ||
	fail "certsync cannot issue from the hand-made CA"
cmp -s "$h/cacert.pem" "$T/hand-cacert.pem" && cmp -s "$h/private/cakey.pem" "$T/hand-cakey.pem" ||
	fail "adopting rewrote the CA certificate or key"
openssl verify -CAfile "$h/cacert.pem" "$T/h2.pem" >/dev/null || fail "leaf of the hand-made CA does not verify"
[ "$(sed -n 1p "$h/index.txt" | cut -f4)" = 1000 ] || fail "openssl ca's line changed: $(sed -n 1p "$h/index.txt")"
[ "$(wc -l <"$h/index.txt")" = 2 ] || fail "hand-made index.txt: $(cat "$h/index.txt")"
[ "$(cat "$h/index.txt.attr")" = "unique_subject = no" ] || fail "index.txt.attr: $(cat "$h/index.txt.attr")"
osslca "$h" -in "$T/o.csr" -out "$T/h3.pem" || fail "openssl ca after certsync on the hand-made CA failed"
osslca "$h" -updatedb || fail "openssl ca -updatedb on the hand-made CA failed"
index_ok "$h"
pass "certsync adopts a hand-made openssl req -x509 CA and issues alongside openssl ca"

# --- an encrypted CA key cannot be used unattended: refused, with the file named.
e=$T/enc
mkdir -p "$e/private" "$e/newcerts"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -passout pass:secret \
	-keyout "$e/private/cakey.pem" -out "$e/cacert.pem" -subj "/CN=Encrypted CA" -days 30 2>/dev/null
touch "$e/index.txt"
"$DRV" -d "$e" issue enc.example.test >/dev/null 2>"$T/err" </dev/null && fail "issued with an encrypted CA key"
grep -q "$e/private/cakey.pem: no unencrypted PEM private key" "$T/err" || fail "encrypted key: $(cat "$T/err")"
pass "an encrypted CA key is refused with a message naming it"

# --- 1,000 issuances.
k=$T/thousand
"$DRV" -d "$k" issue -n 1000 many.example.test >"$T/serials" || fail "1,000 issuances failed"
[ "$(wc -l <"$k/index.txt")" = 1000 ] || fail "index.txt has $(wc -l <"$k/index.txt") lines"
cmp -s <(cut -f4 "$k/index.txt") "$T/serials" || fail "index.txt serials differ from the issued ones"
index_ok "$k"
cnf "$k"
osslca "$k" -updatedb || fail "openssl ca -updatedb rejects index.txt after 1,000 issuances"
last=$(tail -n 1 "$T/serials")
next=$(cat "$k/serial")
[[ $next =~ ^([0-9A-F]{2})+$ ]] || fail "serial file holds \"$next\", not even-length uppercase hex"
[ "$(echo "ibase=16; $next - $last" | bc)" = 1 ] || fail "serial $next is not $last + 1"
pass "1,000 issuances: distinct serials, index.txt readable by openssl ca -updatedb"
