#!/usr/bin/env bash
# The running agent with an ACME issuer: a real Pebble behind the ARI fixture
# of acme_ari.sh (Debian's Pebble serves no renewalInfo), which suggests a
# renewal window a few seconds ahead. The agent issues the certificate at
# start, asks for the window of the deployed leaf, schedules the renewal
# inside it instead of two thirds into the lifetime, and renews there with
# no outside trigger; then it asks again for the new leaf.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

export PEBBLE_VA_ALWAYS_VALID=1 # not a test of challenges
start_pebble
FIX_PORT=$(free_port)
win_start=$(($(date +%s) + 12))
win_end=$((win_start + 6))
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
python3 "$(dirname "$0")/acme_ari_fixture.py" "$FIX_PORT" "$T/pebble.pem" "$T/pebble.key" \
	"$PEBBLE_PORT" "$T/pebble-ca.pem" "$(iso $win_start)" "$(iso $win_end)" "$T" \
	>"$T/fixture.out" 2>&1 &
CS_PIDS+=($!)
wait_for "$T/fixture.out" listening 10
ACME_DIR=https://127.0.0.1:$FIX_PORT/dir
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"

spawn_agent
wait_for "$T/agent.log" "web: renewed: serial" 30
check_deployed
serial1=$(openssl x509 -in "$T/out/web.crt" -noout -serial | cut -d= -f2)
pass "the running agent issued through ACME (serial $serial1)"

wait_for "$T/agent.log" "web: the issuer suggests renewing between" 10
line=$(grep "web: valid until .*inside the issuer's renewal window" "$T/agent.log" | tail -1)
[ -n "$line" ] || fail "the schedule does not follow the window: $(grep 'web:' "$T/agent.log")"
due=$(sed -n 's/.*next renewal \([0-9-]* [0-9:]*\) UTC.*/\1/p' <<<"$line")
due=$(date -u -d "$due" +%s)
[ "$due" -ge "$win_start" ] && [ "$due" -lt "$win_end" ] ||
	fail "next renewal $due is outside the window $win_start..$win_end"
pass "the renewal is scheduled inside the issuer's window ($(iso $win_start) .. $(iso $win_end))"

for _ in $(seq 300); do
	[ "$(grep -c "web: renewed: serial" "$T/agent.log")" -ge 2 ] && break
	sleep 0.1
done
[ "$(grep -c "web: renewed: serial" "$T/agent.log")" -ge 2 ] ||
	{ cat "$T/agent.log" >&2; fail "no renewal inside the window"; }
now=$(date +%s)
[ "$now" -ge "$win_start" ] || fail "renewed before the window opened"
check_deployed
serial2=$(openssl x509 -in "$T/out/web.crt" -noout -serial | cut -d= -f2)
[ "$serial2" != "$serial1" ] || fail "the serial did not change"
grep -q "\"replaces\"" <(tail -1 "$T/orders.log") || fail "the renewal order replaces nothing"
pass "renewed inside the window by the timer alone (serial $serial2), the order replacing the old one"

# The new leaf's window is asked for too (the fixture logs every certID). The
# fixture answers with the same window, which opened before the new leaf was
# issued: it is not for that leaf, and following it would renew in a loop.
for _ in $(seq 50); do [ "$(sort -u "$T/certids.log" | wc -l)" -ge 2 ] && break; sleep 0.1; done
[ "$(sort -u "$T/certids.log" | wc -l)" -ge 2 ] || fail "the new leaf's window was not asked for"
wait_for "$T/agent.log" "that window opened before this certificate was put in place" 5
sleep 2
[ "$(grep -c "web: renewed: serial" "$T/agent.log")" -eq 2 ] ||
	fail "renewed again for a window that was not for the new leaf"
pass "the window of the new leaf is asked for; a stale window does not renew it again"

stop_agent
