#!/usr/bin/env bash
# End-to-end time of one ACME issuance against the same Pebble in one run:
# `certsyncd --once` (built-in http-01 responder) beside `lego run --http` and
# `certbot certonly --standalone`, each answering http-01 on the port Pebble
# validates. Every iteration starts from nothing (new account key, new
# account, new certificate key, one name), as a first run on a host does;
# the time is wall clock from the command's start to its exit. Pebble runs
# with PEBBLE_VA_NOSLEEP=1 and PEBBLE_WFE_NONCEREJECT=0 so that the figures
# measure the clients, not Pebble's artificial delays or random rejections.
#   tests/bench/acme_vs_lego_certbot.sh BUILD_DIR [N]
# Needs the Debian packages pebble, lego and certbot. Not run by ctest.
#
# Figures: tests/bench/README.md. Most of the peers' figures is waiting
# between polls: lego often waits about 5 s before it looks at the
# authorization again, certbot about a second per poll; certsync polls an
# order 20 ms after answering the challenges and again 20 ms after finalize,
# doubling the interval each time (or as Retry-After says).
set -euo pipefail
B=$(cd "${1:?usage: $0 BUILD_DIR [N]}" && pwd)
N=${2:-5}
export CS_BUILD_DIR=$B CS_SOURCE_DIR=$(cd "$(dirname "$0")/../.." && pwd)
. "$CS_SOURCE_DIR/tests/integration/lib.bash"
. "$CS_SOURCE_DIR/tests/integration/acme_lib.bash"
for c in lego certbot; do
	command -v $c >/dev/null || { echo "$c is not installed (apt-get install -y lego certbot)"; exit 1; }
done

export PEBBLE_WFE_NONCEREJECT=0
start_pebble

ms() { echo $(($(date +%s%N) / 1000000)); }
declare -A times

run_certsync() {
	local d=$T/cs$1
	mkdir -p "$d/out"
	cat >"$d/certsync.conf" <<CONF
[agent]
state_dir = $d/state
socket    = $d/certsync.sock
[issuer "pebble"]
type        = acme
directory   = $ACME_DIR
ca_bundle   = $T/pebble-ca.pem
trust       = $T/pebble-root.pem
contact     = mailto:bench@example.test
http_listen = 127.0.0.1:$HTTP_PORT
[cert "web"]
issuer    = pebble
names     = a.example.test
key       = ec:P-256
fullchain = $d/out/web.crt
keyfile   = $d/out/web.key
CONF
	"$CERTSYNCD" --once -c "$d/certsync.conf" 2>"$d/log" || { cat "$d/log" >&2; exit 1; }
}

run_lego() {
	local d=$T/lego$1
	LEGO_CA_CERTIFICATES=$T/pebble-ca.pem lego --server "$ACME_DIR" --email bench@example.test \
		--accept-tos --key-type ec256 --domains a.example.test --http \
		--http.port "127.0.0.1:$HTTP_PORT" --path "$d" run >"$T/lego$1.log" 2>&1 ||
		{ cat "$T/lego$1.log" >&2; exit 1; }
}

run_certbot() {
	local d=$T/certbot$1
	REQUESTS_CA_BUNDLE=$T/pebble-ca.pem certbot certonly --standalone --non-interactive \
		--agree-tos -m bench@example.test --server "$ACME_DIR" -d a.example.test \
		--key-type ecdsa --elliptic-curve secp256r1 \
		--http-01-port "$HTTP_PORT" --http-01-address 127.0.0.1 \
		--config-dir "$d/config" --work-dir "$d/work" --logs-dir "$d/logs" \
		>"$T/certbot$1.log" 2>&1 || { cat "$T/certbot$1.log" >&2; exit 1; }
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

for tool in certsync lego certbot; do
	: >"$T/$tool.times"
	for i in $(seq "$N"); do
		t0=$(ms)
		"run_$tool" "$i"
		echo $(($(ms) - t0)) >>"$T/$tool.times"
	done
	times[$tool]=$(median <"$T/$tool.times")
	echo "$tool: median ${times[$tool]} ms of $N issuances ($(tr '\n' ' ' <"$T/$tool.times")ms)"
done
awk -v c="${times[certsync]}" -v l="${times[lego]}" -v b="${times[certbot]}" 'BEGIN {
	printf "ratios (median time / certsyncd --once): lego %.2f, certbot %.2f\n", l / c, b / c }'
