#!/usr/bin/env bash
# `certsyncctl renew NAME --force --wait` waits for the END of the renewal
# and its exit status tells how it ended, as a script needs it:
#  - the service refuses the new certificate (reload fails): exit 1 and a line
#    "mail: rolled back: ...", the old certificate back in place;
#  - all goes well: exit 0, and by then the output holds the new serial and
#    the service was reloaded with it (no verify URLs: reloaded = verified);
#  - another renewal of mail is still in flight (its reload is held): exit 4
#    and "mail: busy", no second issuance; busy is never exit 0.
. "$(dirname "$0")/core_lib.bash"

# retry_min = 10m: the agent's own retry of the rolled-back renewal stays out
# of the way of the commands below.
core_conf "retry_min = 10m
retry_max = 1h"
start_agent
first_cert
pass "first certificate $good deployed and reloaded"

# wait_renew OUTFILE: renew mail --force --wait, bounded; its status in $rc.
wait_renew() {
	set +e
	timeout 60 "$CERTSYNCCTL" -s "$SOCK" renew mail --force --wait >"$1" 2>&1
	rc=$?
	set -e
	[ "$rc" != 124 ] || { cat "$1" >&2; log_tail; fail "renew --force --wait still running after 60 s"; }
}

touch "$T/reload.fail"
n0=$(issued)
wait_renew "$T/a.out"
[ "$rc" = 1 ] || { cat "$T/a.out" >&2; log_tail; fail "renew --force --wait exited $rc, not 1, for a renewal whose reload failed"; }
grep -q "^mail: rolled back: " "$T/a.out" || { cat "$T/a.out" >&2; fail "no 'mail: rolled back: ...' line"; }
grep -q "^end .* fail" "$T/reloads.log" || fail "it returned before the reload had failed"
[ "$(deployed)" = "$good" ] || fail "after 'rolled back' the deployed serial is $(deployed), not $good"
[ $(($(issued) - n0)) = 1 ] || fail "$(($(issued) - n0)) certificates issued for one forced renewal"
pass "reload fails: exit 1, '$(grep -m1 "^mail: rolled back" "$T/a.out" | cut -c1-100)...', $good back in place"

rm "$T/reload.fail"
n0=$(issued)
wait_renew "$T/b.out"
[ "$rc" = 0 ] || { cat "$T/b.out" >&2; log_tail; fail "renew --force --wait exited $rc, not 0, when all went well"; }
new=$(deployed)
[ "$new" != "$good" ] || fail "exit 0 but the old serial is still deployed"
key_matches "$OUT/mail.pem" || fail "exit 0 but the deployed key does not match"
[ $(($(issued) - n0)) = 1 ] || fail "$(($(issued) - n0)) certificates issued for one forced renewal"
[ "$(tail -n 1 "$CA/index.txt" | cut -f4)" = "$new" ] || fail "deployed $new is not the certificate just issued"
grep -q "^start .*serial=$new " "$T/reloads.log" && tail -n 1 "$T/reloads.log" | has "^end .* ok" ||
	{ cat "$T/reloads.log" >&2; fail "exit 0 before the service was reloaded with $new"; }
show_json
[ "$(json "$T/show.json" 'j["failures"]')" = 0 ] || fail "exit 0 but show counts failures: $(cat "$T/show.json")"
pass "all well: exit 0 once $new was deployed and reloaded ($(tr '\n' ' ' <"$T/b.out"))"

# A renewal held in its reload; a second forced renewal meanwhile.
touch "$T/reload.hold"
n0=$(issued)
starts=$(grep -c "^start" "$T/reloads.log")
timeout 60 "$CERTSYNCCTL" -s "$SOCK" renew mail --force --wait >"$T/c.out" 2>&1 &
first=$!
for ((i = 0; i < 15 * 20; i++)); do
	[ "$(grep -c "^start" "$T/reloads.log")" -gt "$starts" ] && break
	sleep 0.05
done
[ "$(grep -c "^start" "$T/reloads.log")" -gt "$starts" ] || { log_tail; fail "the first renewal did not reach its reload within 15 s"; }
held=$(deployed)
[ "$held" != "$new" ] || fail "the first renewal is reloading, but nothing new is deployed"
wait_renew "$T/d.out"
[ "$rc" = 4 ] || { cat "$T/d.out" >&2; log_tail; fail "a forced renewal while another is reloading exited $rc, not 4 (busy)"; }
grep -q "^mail: busy" "$T/d.out" || { cat "$T/d.out" >&2; fail "no 'mail: busy' line"; }
[ $(($(issued) - n0)) = 1 ] || fail "the busy request issued a certificate too ($(($(issued) - n0)) issued)"
kill -0 "$first" 2>/dev/null || { cat "$T/c.out" >&2; fail "the first renew --wait returned while its reload was still held"; }
pass "while a renewal is held in its reload: exit 4, '$(head -n 1 "$T/d.out")', nothing issued"

rm "$T/reload.hold"
set +e
wait "$first"
rc=$?
set -e
[ "$rc" = 0 ] || { cat "$T/c.out" >&2; log_tail; fail "the held renewal's renew --wait exited $rc, not 0, after the reload went through"; }
[ "$(deployed)" = "$held" ] || fail "the held renewal's certificate $held is no longer deployed"
pass "the held renewal ended well once released: exit 0, $held deployed"
stop_agent
