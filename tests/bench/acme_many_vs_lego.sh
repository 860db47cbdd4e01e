#!/usr/bin/env bash
# M certificates (default 20) from one ACME CA, certsync beside lego, in one
# run against the same Pebble with PEBBLE_VA_ALWAYS_VALID=1 (no validation:
# the figures measure how the clients pace their orders, not the network):
#   - certsync: one `certsyncd --once` with M [cert] sections (cI.example.test,
#     ec:P-256) from one [issuer], i.e. one account and its orders;
#   - lego: M `lego run` processes started at once (each its own account and
#     one name, --http.webroot so that they do not fight over a port), the
#     fastest way lego gets M certificates; and, for reference, lego one
#     certificate alone.
# Each figure is the median of R runs (default 3), wall clock from the start
# of the command(s) to the exit of the last one; every run starts from nothing.
#   tests/bench/acme_many_vs_lego.sh BUILD_DIR [M [R]]
# Needs the Debian packages pebble and lego. Not run by ctest.
set -euo pipefail
B=$(cd "${1:?usage: $0 BUILD_DIR [M [R]]}" && pwd)
M=${2:-20}
R=${3:-3}
export CS_BUILD_DIR=$B CS_SOURCE_DIR=$(cd "$(dirname "$0")/../.." && pwd)
. "$CS_SOURCE_DIR/tests/integration/lib.bash"
. "$CS_SOURCE_DIR/tests/integration/acme_lib.bash"
command -v lego >/dev/null || { echo "lego is not installed (apt-get install -y lego)"; exit 1; }

export PEBBLE_WFE_NONCEREJECT=0 PEBBLE_VA_ALWAYS_VALID=1
start_pebble

ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

run_certsync() {
	local d=$T/cs$1 i
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
CONF
	for i in $(seq "$M"); do
		cat >>"$d/certsync.conf" <<CONF
[cert "c$i"]
issuer    = pebble
names     = c$i.example.test
key       = ec:P-256
fullchain = $d/out/c$i.crt
keyfile   = $d/out/c$i.key
CONF
	done
	"$CERTSYNCD" --once -c "$d/certsync.conf" 2>"$d/log" || { cat "$d/log" >&2; exit 1; }
	[ "$(ls "$d/out"/*.crt | wc -l)" = "$M" ] || { cat "$d/log" >&2; fail "not $M certificates"; }
}

lego_one() { # DIR NAME
	mkdir -p "$1/www"
	LEGO_CA_CERTIFICATES=$T/pebble-ca.pem lego --server "$ACME_DIR" --email bench@example.test \
		--accept-tos --key-type ec256 --domains "$2" --http --http.webroot "$1/www" \
		--path "$1" run >"$1.log" 2>&1
}

run_lego() {
	local pids=() i
	for i in $(seq "$M"); do
		lego_one "$T/many$1-$i" "c$i.example.test" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || { cat "$T"/many"$1"-*.log >&2; fail "lego failed"; }
	done
}

run_lego1() {
	lego_one "$T/alone$1" c1.example.test || { cat "$T/alone$1.log" >&2; fail "lego failed"; }
}

declare -A times
for tool in certsync lego lego1; do
	: >"$T/$tool.times"
	for i in $(seq "$R"); do
		t0=$(ms)
		"run_$tool" "$i"
		echo $(($(ms) - t0)) >>"$T/$tool.times"
	done
	times[$tool]=$(median <"$T/$tool.times")
done
echo "certsync, $M certificates, one agent:   median ${times[certsync]} ms ($(tr '\n' ' ' <"$T/certsync.times")ms)"
echo "lego, $M processes at once:             median ${times[lego]} ms ($(tr '\n' ' ' <"$T/lego.times")ms)"
echo "lego, one certificate alone:            median ${times[lego1]} ms ($(tr '\n' ' ' <"$T/lego1.times")ms)"
awk -v c="${times[certsync]}" -v l="${times[lego]}" 'BEGIN {
	printf "certsync / lego for %d certificates: %.2fx\n", '"$M"', c / l }'
