#!/usr/bin/env bash
# Compares the local-ca issuer with `openssl ca` on this machine: N ECDSA P-256
# certificates from bench_localca (key generation, CSR, issuance, fsynced
# index.txt/serial/newcerts, all in one process), then M iterations of
# `openssl req -newkey ec` + `openssl ca` (one process pair per certificate,
# as a shell-driven CA works). Both write into a CA in a temp directory.
#   tests/bench/localca_vs_openssl.sh BUILD_DIR [N [M]]
set -euo pipefail
B=${1:?usage: $0 BUILD_DIR [N [M]]}
N=${2:-1000}
M=${3:-100}
W=$(mktemp -d /tmp/bench-localca.XXXXXX)
trap 'rm -rf "$W"' EXIT

echo "== certsync local-ca: $N certificates"
"$B/tests/bench/bench_localca" -n "$N" -d "$W/certsync"

echo "== openssl ca: $M certificates"
d=$W/ossl
mkdir -p "$d/private" "$d/newcerts"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/private/cakey.pem" \
	-out "$d/cacert.pem" -subj "/CN=openssl bench CA" -days 3650 2>/dev/null
: >"$d/index.txt"
echo "unique_subject = no" >"$d/index.txt.attr"
echo 01 >"$d/serial"
cat >"$W/ossl.cnf" <<EOC
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = $d
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
certificate = \$dir/cacert.pem
serial = \$dir/serial
private_key = \$dir/private/cakey.pem
default_md = sha256
default_days = 90
policy = policy_any
copy_extensions = copy
rand_serial = yes
[ policy_any ]
commonName = supplied
EOC
start=$(date +%s.%N)
for i in $(seq 1 "$M"); do
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/k.pem" \
		-subj "/CN=host$i.bench.example" -addext "subjectAltName=DNS:host$i.bench.example,IP:127.0.0.1" \
		-out "$W/r.csr" 2>/dev/null
	openssl ca -config "$W/ossl.cnf" -batch -notext -in "$W/r.csr" -out "$W/c.pem" 2>/dev/null
done
end=$(date +%s.%N)
awk -v m="$M" -v s="$start" -v e="$end" \
	'BEGIN { printf "issued %d certificates with openssl req + openssl ca in %.2f s: %.1f certificates/s\n", m, e - s, m / (e - s) }'
