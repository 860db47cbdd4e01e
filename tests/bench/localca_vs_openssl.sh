#!/usr/bin/env bash
# Compares the local-ca issuer with `openssl ca` on this machine: N ECDSA P-256
# certificates from bench_localca (key generation, CSR, issuance, fsynced
# index.txt/serial/newcerts, all in one process), then M iterations of
# `openssl req -newkey ec` + `openssl ca` (one process pair per certificate,
# as a shell-driven CA works). Both write into a CA in a temp directory.
# bench_localca runs twice: one certificate per commit, and in bursts of
# BURST (default 50) committed together, as the agent's issuer does when
# several renewals wait; then once more in bursts onto an index of PREFILL
# lines (default 100000) to show the cost per certificate does not grow.
#   tests/bench/localca_vs_openssl.sh BUILD_DIR [N [M]]
set -euo pipefail
BURST=${BURST:-50}
PREFILL=${PREFILL:-100000}
B=${1:?usage: $0 BUILD_DIR [N [M]]}
N=${2:-1000}
M=${3:-100}
W=$(mktemp -d /tmp/bench-localca.XXXXXX)
trap 'rm -rf "$W"' EXIT

echo "== certsync local-ca: $N certificates, one per commit"
"$B/tests/bench/bench_localca" -n "$N" -d "$W/certsync1" | tee "$W/one.out"
echo "== certsync local-ca: $N certificates, bursts of $BURST"
"$B/tests/bench/bench_localca" -n "$N" -b "$BURST" -d "$W/certsync" | tee "$W/burst.out"
echo "== certsync local-ca: $N certificates, bursts of $BURST, onto an index of $PREFILL lines"
"$B/tests/bench/bench_localca" -n "$N" -b "$BURST" -p "$PREFILL" -d "$W/certsyncp" | tee "$W/prefill.out"

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
rate() { sed -n 's/.*: \([0-9.]*\) certificates\/s.*/\1/p' "$1"; }
# steady state: the last 10% (the first includes reading a prefilled index once)
msper() { sed -n 's/.* ms each over the first 10%, \([0-9.]*\) ms over the last.*/\1/p' "$1"; }
o=$(awk -v m="$M" -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", m / (e - s) }')
awk -v a="$(rate "$W/one.out")" -v b="$(rate "$W/burst.out")" -v o="$o" \
	-v e="$(msper "$W/burst.out")" -v f="$(msper "$W/prefill.out")" -v p="$PREFILL" \
	'BEGIN { printf "ratio to openssl ca: %.1fx one per commit, %.1fx in bursts; " \
		"ms per certificate from an empty index %.3f, from %d lines %.3f (%+.0f%%)\n", \
		a / o, b / o, e, p, f, (f / e - 1) * 100 }'
