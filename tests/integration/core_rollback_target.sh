#!/usr/bin/env bash
# Whatever the number of failed attempts, a rollback restores the last good
# certificate: after four renewals refused by the service (the reload fails)
# the deployed bundle is still the first, good certificate with its own key,
# the state's newest generation is that serial and its generation file
# (state_dir/generations/mail/N.pem) still exists: the rollback target is
# never pruned, and a refused certificate never becomes the target. Once the
# service accepts again, the next attempt succeeds and "failures" is 0.
. "$(dirname "$0")/core_lib.bash"

core_conf "retry_min = 1s
retry_max = 4s" "renew_before = 3590s" "validity = 1h"
start_agent
first_cert
pass "first certificate $good issued, deployed and reloaded"

touch "$T/reload.fail"
from=$(($(count "mail: renewing with issuer") + 1))
force_renew
wait_until 40 failed_at_least "$from" 4 || { log_tail 30; fail "not four failed attempts within 40 s"; }
pass "four renewals refused by the reloader: $(grep -c "^end .* fail" "$T/reloads.log") failed reloads"

# A failure line may come just before the restored files are in place.
for ((i = 0; i < 40; i++)); do
	[ "$(deployed)" = "$good" ] && break
	sleep 0.05
done
now=$(deployed)
[ "$now" = "$good" ] || {
	grep "generation" "$T/agent.log" | tail -n 8 >&2
	fail "after 4 failed attempts the deployed serial is $now, not the good $good"
}
key_matches "$OUT/mail.pem" || fail "the deployed key does not match the deployed certificate"
"$CERTSYNCCTL" inspect "$OUT/mail.pem" >/dev/null || fail "certsyncctl inspect rejects the deployed bundle"
pass "the deployed bundle is the good certificate $good, key matching"

s0=$(state 'j["generations"][0]["serial"]')
n0=$(state 'j["generations"][0]["n"]')
[ "$s0" = "$good" ] || fail "the state's first generation is serial $s0 (n $n0), not the deployed $good: $(cat "$ST/certs/mail.json")"
gf=$ST/generations/mail/$n0.pem
[ -f "$gf" ] || { ls -l "$ST/generations/mail" >&2; fail "generation file $gf of the deployed certificate was pruned"; }
[ "$(serial_of "$gf")" = "$good" ] || fail "$gf holds serial $(serial_of "$gf"), not $good"
key_matches "$gf" || fail "$gf does not hold a matching key"
pass "state: first generation $n0 is $good and $gf holds it"

rm "$T/reload.fail"
ok0=$(grep -c "^end .* ok" "$T/reloads.log")
for ((i = 0; i < 20 * 20; i++)); do
	if [ "$(grep -c "^end .* ok" "$T/reloads.log")" -gt "$ok0" ] &&
		[ "$(state 'j["failures"]')" = 0 ] && [ "$(deployed)" != "$good" ]; then
		break
	fi
	sleep 0.05
done
[ "$(grep -c "^end .* ok" "$T/reloads.log")" -gt "$ok0" ] || { log_tail; fail "no successful reload within 20 s of the fix"; }
[ "$(state 'j["failures"]')" = 0 ] || { log_tail; fail "failures not reset after a successful renewal: $(cat "$ST/certs/mail.json")"; }
new=$(deployed)
[ "$new" != "$good" ] || { log_tail; fail "the good certificate is still deployed after a successful attempt"; }
key_matches "$OUT/mail.pem" || fail "the renewed bundle's key does not match"
grep -q '"last_error": null' "$ST/certs/mail.json" || fail "last_error not cleared: $(cat "$ST/certs/mail.json")"
show_json
[ "$(json "$T/show.json" 'j["state"]')" = valid ] || [ "$(json "$T/show.json" 'j["state"]')" = due ] ||
	fail "show says state $(json "$T/show.json" 'j["state"]') after the success"
pass "reloader fixed: the next attempt deployed $new, reloaded fine, failures 0"
stop_agent
