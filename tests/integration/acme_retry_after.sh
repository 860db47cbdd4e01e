#!/usr/bin/env bash
# Retry-After on 503 and 429 (RFC 8555 section 6.6), with the fixture of
# acme_ari.sh in front of Pebble answering the first newOrder requests itself:
# - 503 with Retry-After: 1: the issuer waits the second on a timer and
#   sends the order again; the certificate is issued in the same run;
# - 429 with Retry-After: 7200: too long to wait inside one issuance, so it
#   fails with the CA's problem document, verbatim, as the cert's last error,
#   and the scheduler gets the two hours (the state's retry_after);
# - Retry-After: 2 on a processing order: the poll waits 2 s;
# - 429 with Retry-After: 7200 to six certs at once: no more newOrder requests
#   than max_orders (4) were in flight, and every cert, the ones still waiting
#   to start too, fails at once with the two hours for the scheduler.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

export PEBBLE_VA_ALWAYS_VALID=1 # not a test of challenges
# Nor of nonces: Pebble rejects 5% of good nonces by default, and each
# badNonce retry is one more newOrder in the counts below (acme_badnonce.sh
# tests that).
export PEBBLE_WFE_NONCEREJECT=0
start_pebble
start_fixture() {
	FIX_PORT=$(free_port)
	FIXTURE_ORDER_FAILS=$1 FIXTURE_POLL_RETRY_AFTER=${2:-} python3 "$(dirname "$0")/acme_ari_fixture.py" "$FIX_PORT" \
		"$T/pebble.pem" "$T/pebble.key" "$PEBBLE_PORT" "$T/pebble-ca.pem" \
		2031-01-02T04:00:00Z 2031-01-03T04:00:00Z "$T" >"$T/fixture-$1.out" 2>&1 &
	FIX_PID=$!
	CS_PIDS+=($FIX_PID)
	wait_for "$T/fixture-$1.out" listening 10
	ACME_DIR=https://127.0.0.1:$FIX_PORT/dir
}

start_fixture 503:1
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
t0=$(date +%s%N)
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent.log" ||
	{ cat "$T/agent.log" >&2; fail "certsyncd --once failed"; }
t1=$(date +%s%N)
check_deployed
grep -q "HTTP 503, retrying in 1 s as the CA asks" "$T/agent.log" ||
	fail "the log does not show the wait: $(cat "$T/agent.log")"
[ "$(wc -l <"$T/orders.log")" = 2 ] || fail "not exactly two newOrder requests: $(cat "$T/orders.log")"
[ $(((t1 - t0) / 1000000)) -ge 1000 ] || fail "issued in under a second: Retry-After was not waited"
pass "503 with Retry-After: 1: waited on a timer, ordered again, issued"

kill "$FIX_PID"
rm -rf "$T/out" "$T/state/generations" "$T/state/certs" "$T/orders.log"
mkdir -p "$T/out"
start_fixture 429:7200
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
if "$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent2.log"; then
	fail "--once succeeded although the CA said 429 for two hours"
fi
st=$T/state/certs/web.json
grep -q '"retry_after": 7200' "$st" || fail "the state has no retry_after of 7200: $(cat "$st")"
grep -q 'fixture: slow down (7200 s)' "$st" && grep -q 'urn:ietf:params:acme:error:rateLimited' "$st" ||
	fail "the problem document is not the last error: $(cat "$st")"
grep -q 'HTTP 429: {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "fixture: slow down (7200 s)", "status": 429}' "$T/agent2.log" ||
	fail "the problem document is not in the log verbatim: $(cat "$T/agent2.log")"
[ "$(wc -l <"$T/orders.log")" = 1 ] || fail "the order was sent again despite Retry-After: 7200"
pass "429 with Retry-After: 7200: fails at once, the problem document verbatim, retry_after 7200 for the scheduler"

kill "$FIX_PID"
rm -rf "$T/out" "$T/state/generations" "$T/state/certs" "$T/orders.log"
mkdir -p "$T/out"
start_fixture "" 2
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent3.log" ||
	{ cat "$T/agent3.log" >&2; fail "certsyncd --once failed with Retry-After on polls"; }
check_deployed
# The order as the finalize answer shows it is "processing", with Retry-After:
# the next look at it comes 2 s later, not after the usual 20 ms.
mapfile -t lines < <(grep "web: order .* is " "$T/agent3.log" | sed 's/^[^ ]* \([^ ]*\) .* is \(.*\)$/\1 \2/')
secs() { IFS=:. read -r h m s f <<<"$1"; echo $(((10#$h * 3600 + 10#$m * 60 + 10#$s) * 1000 + 10#$f)); }
n=0
for ((i = 1; i < ${#lines[@]}; i++)); do
	read -r t0 st0 <<<"${lines[i - 1]}"
	read -r t1 _ <<<"${lines[i]}"
	[ "$st0" = processing ] || continue
	d=$(($(secs "$t1") - $(secs "$t0")))
	[ "$d" -ge 1990 ] || fail "a poll came $d ms after a processing order with Retry-After: 2"
	n=$((n + 1))
done
[ "$n" -ge 1 ] || fail "no poll of a processing order: $(printf '%s\n' "${lines[@]}")"
pass "Retry-After: 2 on a processing order: the next poll came 2 s later"

kill "$FIX_PID"
rm -rf "$T/out" "$T/state/generations" "$T/state/certs" "$T/orders.log"
mkdir -p "$T/out"
start_fixture 429:7200,429:7200,429:7200,429:7200
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
add_certs one two three four five
t0=$(date +%s%N)
if "$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent4.log"; then
	fail "--once succeeded although the CA said 429 for two hours"
fi
t1=$(date +%s%N)
[ "$(wc -l <"$T/orders.log")" -le 4 ] ||
	fail "more newOrder requests than max_orders after a 429: $(cat "$T/orders.log")"
for n in web one two three four five; do
	grep -Eq '"retry_after": (7200|71[0-9][0-9])' "$T/state/certs/$n.json" ||
		fail "$n has no retry_after of about 7200: $(cat "$T/state/certs/$n.json")"
done
[ $(((t1 - t0) / 1000000)) -lt 30000 ] || fail "the waiting orders did not fail at once"
pass "429 with Retry-After: 7200 to six certs: $(wc -l <"$T/orders.log") newOrder requests, every cert handed the two hours"
