#!/usr/bin/env bash
# A changed `profile =` of an acme issuer renews the certificate at the next
# pass (issue 20; lego #3205 is the bug avoided): the state keeps the profile
# the deployed certificate was ordered with, and a difference from the
# configured one makes the certificate due at once, with the reason in the
# log and in show, also when the outputs are "valid (as last examined)".
# Once renewed with the new profile it is not renewed again; a restart under
# another profile (--once) renews too. Debian's Pebble offers no profiles:
# the order then has none (and a warning says so), which is not what is
# tested here.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

export PEBBLE_VA_ALWAYS_VALID=1 # not a test of challenges
start_pebble
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
renewals() { grep -c "web: renewed: serial" "$T/agent.log"; }

spawn_agent
wait_for "$T/agent.log" "web: renewed: serial" 30
grep -q '"profile": ""' "$T/state/certs/web.json" ||
	fail "the state does not say the certificate was ordered with no profile: $(cat "$T/state/certs/web.json")"
serial1=$(openssl x509 -in "$T/out/web.crt" -noout -serial)
pass "issued with no profile, and the state says so"

# The same configuration again: nothing to do.
kill -HUP "$agent"
wait_for "$T/agent.log" "configuration reloaded" 10
sleep 2
[ "$(renewals)" = 1 ] || fail "a SIGHUP with the same profile renewed"

write_conf "http_listen = 127.0.0.1:$HTTP_PORT" "profile = shortlived"
kill -HUP "$agent"
wait_for "$T/agent.log" "web: renewing with issuer pebble (the issuer's profile changed: the certificate was ordered with no profile, the configuration asks for profile shortlived" 20
for _ in $(seq 300); do
	[ "$(renewals)" -ge 2 ] && break
	sleep 0.1
done
[ "$(renewals)" = 2 ] || { cat "$T/agent.log" >&2; fail "no renewal after the profile changed"; }
[ "$(openssl x509 -in "$T/out/web.crt" -noout -serial)" != "$serial1" ] || fail "the serial did not change"
grep -q '"profile": "shortlived"' "$T/state/certs/web.json" ||
	fail "the state does not keep the new profile: $(cat "$T/state/certs/web.json")"
pass "SIGHUP with another profile: renewed at once, the new profile kept"

# Renewed once, not again: the new certificate matches the configuration.
sleep 3
[ "$(renewals)" = 2 ] || fail "renewed again after the profile change: $(renewals) renewals"
"$CERTSYNCCTL" -s "$T/certsync.sock" show web >"$T/show.out" 2>&1 || { cat "$T/show.out" >&2; fail "show"; }
grep -q "profile changed" "$T/show.out" && fail "show still gives the profile as the reason: $(cat "$T/show.out")"
pass "one renewal per profile change, no loop"
kill -TERM "$agent"
wait "$agent" || true

# A restart under yet another profile: --once sees it from the state, and
# show (through the state) gives the reason before.
write_conf "http_listen = 127.0.0.1:$HTTP_PORT" "profile = tlsserver"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/once.log" || { cat "$T/once.log" >&2; fail "--once"; }
grep -q "web: renewing with issuer pebble (the issuer's profile changed: the certificate was ordered with profile shortlived, the configuration asks for profile tlsserver" "$T/once.log" ||
	{ cat "$T/once.log" >&2; fail "--once did not renew for the changed profile"; }
grep -q '"profile": "tlsserver"' "$T/state/certs/web.json" || fail "--once did not keep the profile"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/once2.log" || { cat "$T/once2.log" >&2; fail "second --once"; }
grep -q "web: renewing" "$T/once2.log" && fail "a second --once renewed again: $(cat "$T/once2.log")"
pass "a restart with another profile renews once, then not again"
