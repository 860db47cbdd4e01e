#!/usr/bin/env bash
# mkpki.sh DIR [ec|rsa] - a throwaway CA hierarchy for the ingest/validate
# tests and the certsyncctl integration test. Nothing here is a real secret.
#
#   root.key root.pem   self-signed root      CN=certsync Test Root
#   int.key  int.pem    intermediate (root)   CN=certsync Test Intermediate
#   leaf.key leaf.pem   server cert (int)     CN=leaf.example.test, SAN
#                       DNS:leaf.example.test, DNS:*.wild.example.test, IP:127.0.0.1
#   other.key           a key that matches none of the certificates
#   stray.pem           an unrelated self-signed certificate
# and the same material in the shapes administrators are handed:
#   mixed.pem           leaf.key leaf int root      shuffled.pem  leaf root int leaf.key
#   dup.pem             leaf int int root leaf      strayed.pem   leaf stray int root
#   mismatch.pem        other.key leaf int root     chain.pem     int root
#   leaf.der leaf.key.der (DER)   chain.p7b / chain.p7b.der (PKCS#7: leaf int root)
#   bundle.p12 (password in pw.txt: s3cret)   nopw.p12 (empty password)
#   leaf.enc.key (PKCS#8 encrypted)   leaf.legacy.key (Proc-Type: 4,ENCRYPTED)
#   trusted.pem (TRUSTED CERTIFICATE)  ecparams.key (EC PARAMETERS + key)
set -euo pipefail
dir=$1
alg=${2:-ec}
mkdir -p "$dir"
cd "$dir"

genkey() {
	if [ "$alg" = rsa ]; then
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
	else
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
	fi
	chmod 600 "$1"
}

cat >ext.cnf <<'CNF'
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:leaf.example.test, DNS:*.wild.example.test, IP:127.0.0.1
CNF

genkey root.key
openssl req -x509 -new -key root.key -subj "/O=certsync tests/CN=certsync Test Root" \
	-days 3650 -addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" -out root.pem
genkey int.key
openssl req -new -key int.key -subj "/O=certsync tests/CN=certsync Test Intermediate" -out int.csr
openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -set_serial 0x1001 -days 1825 \
	-extfile ext.cnf -extensions ca -out int.pem 2>/dev/null
genkey leaf.key
openssl req -new -key leaf.key -subj "/CN=leaf.example.test" -out leaf.csr
openssl x509 -req -in leaf.csr -CA int.pem -CAkey int.key -set_serial 0x0ABCDEF012 -days 90 \
	-extfile ext.cnf -extensions leaf -out leaf.pem 2>/dev/null
genkey other.key
genkey stray.key
openssl req -x509 -new -key stray.key -subj "/CN=certsync Stray" -days 30 -out stray.pem
rm -f int.csr leaf.csr

cat leaf.key leaf.pem int.pem root.pem >mixed.pem
cat leaf.pem root.pem int.pem leaf.key >shuffled.pem
cat leaf.pem int.pem int.pem root.pem leaf.pem >dup.pem
cat leaf.pem stray.pem int.pem root.pem >strayed.pem
cat other.key leaf.pem int.pem root.pem >mismatch.pem
cat int.pem root.pem >chain.pem
openssl x509 -in leaf.pem -outform DER -out leaf.der
openssl pkey -in leaf.key -outform DER -out leaf.key.der
openssl crl2pkcs7 -nocrl -certfile leaf.pem -certfile int.pem -certfile root.pem -out chain.p7b
openssl crl2pkcs7 -nocrl -certfile leaf.pem -certfile int.pem -certfile root.pem -outform DER \
	-out chain.p7b.der
printf 's3cret\n' >pw.txt
openssl pkcs12 -export -inkey leaf.key -in leaf.pem -certfile chain.pem -passout pass:s3cret \
	-out bundle.p12
openssl pkcs12 -export -inkey leaf.key -in leaf.pem -certfile chain.pem -passout pass: \
	-out nopw.p12
openssl pkey -in leaf.key -aes256 -passout pass:s3cret -out leaf.enc.key
if [ "$alg" = rsa ]; then
	openssl rsa -in leaf.key -aes256 -traditional -passout pass:s3cret -out leaf.legacy.key \
		2>/dev/null
else
	openssl ec -in leaf.key -aes256 -passout pass:s3cret -out leaf.legacy.key 2>/dev/null
fi
openssl x509 -in leaf.pem -trustout -out trusted.pem
openssl ecparam -name prime256v1 -genkey -out ecparams.key
chmod 600 ./*.key ./*.p12
