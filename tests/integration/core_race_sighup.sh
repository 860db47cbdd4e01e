#!/usr/bin/env bash
# SIGHUP while a renewal is in flight (its reload is held by the test): the
# renewal still ends (reloaded with the new certificate, or a failure
# reported, never left half-way), the new configuration applies (a cert
# added to the file is issued), the CA issued exactly one certificate for the
# renewal that was in flight, the agent is alive and answers status, and
# every output holds a key matching its certificate.
. "$(dirname "$0")/core_lib.bash"

core_conf "retry_min = 2s
retry_max = 60s"
start_agent
first_cert
mails() { grep -c "/CN=mail.example.test$" "$CA/index.txt" || true; }
m0=$(mails)
pass "first certificate $good deployed and reloaded"

touch "$T/reload.hold"
renew_in_reload
pass "renewal of mail in flight: $inflight deployed, its reload held"

cat >>"$T/certsync.conf" <<CONF

[cert "web"]
issuer = local
names  = web.example.test
bundle = $OUT/web.pem
CONF
hups=$(count "SIGHUP")
kill -HUP "$agent"
until_count "SIGHUP" $((hups + 1)) 5
rm "$T/reload.hold"
pass "SIGHUP received with the reload in flight; reload released"

# The renewal ends: reloaded well (its serial deployed, failures 0), or reported.
for ((i = 0; i < 20 * 20; i++)); do
	if grep -q "^end .* ok" <(tail -n +$((starts + 1)) "$T/reloads.log") &&
		[ "$(state 'j["failures"]')" = 0 ] && [ "$(deployed)" = "$inflight" ]; then
		outcome="reloaded with $inflight"
		break
	fi
	if [ "$(count "mail: renewal failed (")" -gt 0 ]; then
		outcome="reported: $(failure_lines | tail -n 1 | sed 's/^.* certsyncd //' | cut -c1-150)"
		break
	fi
	sleep 0.05
done
[ -n "${outcome:-}" ] || { log_tail 30; fail "the renewal in flight did not end within 20 s of the release"; }
pass "the renewal in flight ended: $outcome"

wait_for "$T/agent.log" "web: renewed: serial" 15
for ((i = 0; i < 40; i++)); do [ -f "$OUT/web.pem" ] && key_matches "$OUT/web.pem" && break; sleep 0.05; done
key_matches "$OUT/web.pem" || fail "web.pem does not hold a matching key and certificate"
pass "the new configuration applies: web issued and deployed"

[ "$(mails)" = $((m0 + 1)) ] || { cat "$CA/index.txt" >&2; log_tail 30; fail "$(($(mails) - m0)) certificates issued for mail's one renewal"; }
kill -0 "$agent" || fail "the agent died"
ctl status
[ "$rc" = 0 ] || { cat "$T/stdout" "$T/stderr" >&2; fail "status exited $rc"; }
key_matches "$OUT/mail.pem" || fail "mail.pem does not hold a matching key and certificate"
d=$(deployed)
[ "$d" = "$inflight" ] || [ "$d" = "$good" ] || fail "mail.pem holds $d, neither the old $good nor the new $inflight"
[ "$(state 'j["generations"][0]["serial"]')" = "$d" ] || fail "the state's first generation is not the deployed $d"
pass "one issuance for mail's renewal; agent answers status; outputs consistent (mail: $d)"
stop_agent
