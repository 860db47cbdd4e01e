#!/usr/bin/env bash
# A forced renewal of a certificate that is not due, rolled back because the
# reload failed, is retried by the agent by itself at the next attempt time
# (retry_min after the first failure), without any new command; and once the
# service accepts again, such a retry deploys the new certificate for good.
# (Before the state machine, a rolled-back forced renewal of a 30-day
# certificate was not tried again until the certificate was due, weeks later.)
. "$(dirname "$0")/core_lib.bash"

core_conf "retry_min = 2s
retry_max = 60s"
start_agent
first_cert
show_json
[ "$(json "$T/show.json" 'j["state"]')" = valid ] || fail "a new 30-day certificate is $(json "$T/show.json" 'j["state"]'), not valid"
pass "30-day certificate $good deployed, not due"

touch "$T/reload.fail"
from=$(($(count "mail: renewing with issuer") + 1))
cmds=$(count "status socket: renew")
force_renew
wait_until 10 failed_at_least "$from" 1 || { log_tail; fail "the forced renewal did not fail within 10 s"; }
wait_for "$T/agent.log" "rolled back to generation" 5
for ((i = 0; i < 40; i++)); do [ "$(deployed)" = "$good" ] && break; sleep 0.05; done
[ "$(deployed)" = "$good" ] || fail "not rolled back to $good"
t_fail=$(date +%s.%N)
pass "the forced renewal was refused by the reloader and rolled back to $good"

# retry_min (2 s, up to 20% less), one second of reload debounce, and slack.
for ((i = 0; i < 8 * 20; i++)); do
	[ "$(count "mail: renewing with issuer")" -gt "$from" ] && break
	sleep 0.05
done
[ "$(count "mail: renewing with issuer")" -gt "$from" ] || {
	log_tail
	fail "no second attempt within 8 s of the rolled-back forced renewal (retry_min 2s): it is not retried"
}
after=$(awk -v a="$t_fail" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
[ "$(count "status socket: renew")" = $((cmds + 1)) ] || fail "another renew command came in"
pass "a second attempt started by itself ${after} s after the rollback, no new command"

rm "$T/reload.fail"
for ((i = 0; i < 20 * 20; i++)); do
	[ "$(deployed)" != "$good" ] && [ "$(state 'j["failures"]')" = 0 ] &&
		[ "$(grep -c "^end .* ok" "$T/reloads.log")" -ge 2 ] && break
	sleep 0.05
done
new=$(deployed)
[ "$new" != "$good" ] && [ "$(state 'j["failures"]')" = 0 ] || {
	log_tail
	fail "no successful retry within 20 s of fixing the reloader (deployed $new, failures $(state 'j["failures"]'))"
}
key_matches "$OUT/mail.pem" || fail "the deployed key does not match"
[ "$(count "status socket: renew")" = $((cmds + 1)) ] || fail "another renew command came in"
pass "reloader fixed: a later automatic retry deployed $new, failures 0"
stop_agent
