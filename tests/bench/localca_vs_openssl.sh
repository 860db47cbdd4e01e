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
# With REPEAT=R (default 1) every run is made R times, alternating, and the
# fastest of each kept: on a machine shared with other work the load moves
# both rates from one second to the next.
#   tests/bench/localca_vs_openssl.sh BUILD_DIR [N [M]]
set -euo pipefail
BURST=${BURST:-50}
PREFILL=${PREFILL:-100000}
REPEAT=${REPEAT:-1}
B=${1:?usage: $0 BUILD_DIR [N [M]]}
N=${2:-1000}
M=${3:-100}
W=$(mktemp -d /tmp/bench-localca.XXXXXX)
trap 'rm -rf "$W"' EXIT

# bench_localca ARGS into a new CA, its line in $W/$1.out
run() {
	local out=$1
	shift
	"$B/tests/bench/bench_localca" "$@" -d "$W/$out.d" | tee "$W/$out.out"
}
# copies the fastest $W/KIND.rN.out to $W/KIND.out
fastest() {
	local k=$1 r
	for r in $(seq 1 "$REPEAT"); do
		if [ ! -e "$W/$k.out" ] || awk -v a="$(rate "$W/$k.r$r.out")" -v b="$(rate "$W/$k.out")" \
			'BEGIN { exit !(a > b) }'; then
			cp "$W/$k.r$r.out" "$W/$k.out"
		fi
	done
}
rate() { sed -n 's/.*: \([0-9.]*\) certificates\/s.*/\1/p' "$1"; }

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
# one loop of M: prints its rate
openssl_loop() {
	local start end i
	start=$(date +%s.%N)
	for i in $(seq 1 "$M"); do
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/k.pem" \
			-subj "/CN=host$i.bench.example" -addext "subjectAltName=DNS:host$i.bench.example,IP:127.0.0.1" \
			-out "$W/r.csr" 2>/dev/null
		openssl ca -config "$W/ossl.cnf" -batch -notext -in "$W/r.csr" -out "$W/c.pem" 2>/dev/null
	done
	end=$(date +%s.%N)
	awk -v m="$M" -v s="$start" -v e="$end" 'BEGIN { printf "%.2f\n", m / (e - s) }'
}

o=0
for r in $(seq 1 "$REPEAT"); do
	echo "== certsync local-ca: $N certificates, one per commit (run $r of $REPEAT)"
	run one.r$r -n "$N"
	echo "== certsync local-ca: $N certificates, bursts of $BURST (run $r of $REPEAT)"
	run burst.r$r -n "$N" -b "$BURST"
	echo "== certsync local-ca: $N certificates, bursts of $BURST, onto an index of $PREFILL lines (run $r of $REPEAT)"
	run prefill.r$r -n "$N" -b "$BURST" -p "$PREFILL"
	echo "== openssl ca: $M certificates (run $r of $REPEAT)"
	x=$(openssl_loop)
	echo "issued $M certificates with openssl req + openssl ca: $x certificates/s"
	o=$(awk -v a="$x" -v b="$o" 'BEGIN { print (a > b ? a : b) }')
done
for k in one burst prefill; do
	fastest $k
done
if [ "$REPEAT" -gt 1 ]; then
	echo "== the fastest of $REPEAT runs of each: openssl ca $o certificates/s"
	cat "$W/one.out" "$W/burst.out" "$W/prefill.out"
fi
# steady state: the last 10% (the first includes reading a prefilled index once)
msper() { sed -n 's/.* ms each over the first 10%, \([0-9.]*\) ms over the last.*/\1/p' "$1"; }
cpu() { sed -n 's/.*; CPU \([0-9.]*\) ms each.*/\1/p' "$1"; }
awk -v a="$(rate "$W/one.out")" -v b="$(rate "$W/burst.out")" -v o="$o" \
	-v e="$(msper "$W/burst.out")" -v f="$(msper "$W/prefill.out")" -v p="$PREFILL" \
	'BEGIN { printf "ratio to openssl ca: %.1fx one per commit, %.1fx in bursts; " \
		"ms per certificate from an empty index %.3f, from %d lines %.3f (%+.0f%%)\n", \
		a / o, b / o, e, p, f, (f / e - 1) * 100 }'
echo "CPU ms per certificate (bench_localca): $(cpu "$W/one.out") one per commit," \
	"$(cpu "$W/burst.out") in bursts, $(cpu "$W/prefill.out") in bursts onto $PREFILL lines"
