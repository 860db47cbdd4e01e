#!/usr/bin/env bash
# Pebble stopped in the middle of an order: the running agent (certsyncd -f)
# fails the order, backs off (retry_min 2s, retry_max 4s) without a busy loop
# (few attempts, little CPU while Pebble is away), and completes once Pebble
# is back on the same port, registering its account again with the new
# Pebble (which has forgotten it). The chain verifies against the new root.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

start_pebble
# The dns-01 hook stops Pebble the first time it is asked to add a record:
# the order is then half done (authorizations fetched, challenges pending).
cat >"$T/dns-hook" <<HOOK
#!/bin/sh
if [ "\$1" = add ] && [ ! -e "$T/stopped" ]; then
	touch "$T/stopped"
	kill "\$(cat "$T/pebble.pid")"
fi
[ "\$1" = add ] && path=set-txt || path=clear-txt
curl -sf -X POST -d "{\"host\":\"\$2.\",\"value\":\"\$3\"}" "http://127.0.0.1:$CTS_MGMT/\$path" >/dev/null
exit 0
HOOK
chmod 755 "$T/dns-hook"
echo "$PEBBLE_PID" >"$T/pebble.pid"
write_conf "challenge = dns-01" "dns_hook  = $T/dns-hook"

spawn_agent
wait_for "$T/agent.log" "web: renewal failed" 20
pass "the order failed when Pebble went away: $(grep -m1 'web: renewal failed' "$T/agent.log" | cut -c 25-)"

# Ten seconds without Pebble: count attempts and CPU time.
cpu() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
c0=$(cpu)
sleep 10
c1=$(cpu)
fails=$(grep -c "web: renewal failed" "$T/agent.log")
[ "$fails" -le 8 ] || fail "$fails failed attempts in about 10 s: not backing off"
[ "$fails" -ge 2 ] || fail "only $fails attempt(s) in 10 s: the agent does not retry"
ticks=$((c1 - c0))
hz=$(getconf CLK_TCK)
[ "$ticks" -le $((hz / 2)) ] || fail "the agent used $ticks ticks of CPU in 10 s without Pebble"
pass "$fails attempts and $ticks/$hz s of CPU during 10 s of outage: backing off, no busy loop"
[ ! -e "$T/out/web.crt" ] || fail "something was deployed during the outage"

start_pebble # same ports: PEBBLE_PORT and the others are kept
echo "$PEBBLE_PID" >"$T/pebble.pid"
wait_for "$T/agent.log" "web: renewed: serial" 30
check_deployed
grep -q "registering again" "$T/agent.log" || fail "the agent did not say it registered again"
pass "once Pebble is back the agent registers again and the chain verifies against the new root"
