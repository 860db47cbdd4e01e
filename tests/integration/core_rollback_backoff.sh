#!/usr/bin/env bash
# A renewal whose reload keeps failing is rolled back each time and retried
# with a growing delay, as an issuer failure is: the log line
# "mail: renewal failed (K in a row): ...; next attempt in D (S s, at T)"
# counts K = 1, 2, 3, 4 (a new certificate deployed and then rolled back does
# not reset the count), S doubles from retry_min (each at least 1.5 times the
# previous, jitter allowed), each attempt issues exactly one certificate, the
# state's "failures" is the last K, and the good certificate stays deployed.
# The cert is due 10 s after issuance, so that the retries are not only the
# agent's own follow-up of a forced renewal.
. "$(dirname "$0")/core_lib.bash"

core_conf "retry_min = 2s
retry_max = 60s" "renew_before = 3590s" "validity = 1h"
start_agent
first_cert
key_matches "$OUT/mail.pem" || fail "the first bundle's key does not match its certificate"
pass "first certificate $good issued, deployed and reloaded"

touch "$T/reload.fail"
base_issued=$(issued)
base_renewing=$(count "mail: renewing with issuer")
force_renew
pass "reloader made to fail; renew mail --force: $(cat "$T/stdout")"

# Until the fourth failure (2 + 4 + 8 s of delays, and a reload each time):
# checked as they come, so that a count stuck at 1 fails early.
for ((i = 0; i < 35 * 20; i++)); do
	mapfile -t ks < <(failure_ks)
	for ((n = 0; n < ${#ks[@]}; n++)); do
		[ "${ks[$n]}" = $((n + 1)) ] || {
			failure_lines >&2
			fail "failure $((n + 1)) is logged as '${ks[$n]} in a row', not $((n + 1)): K is $(echo "${ks[@]}")"
		}
	done
	[ "${#ks[@]}" -ge 4 ] && break
	# Every attempt but the one in flight has ended in a failure by now.
	a=$(($(count "mail: renewing with issuer") - base_renewing))
	[ "${#ks[@]}" -ge $((a - 1)) ] || {
		log_tail 30
		fail "$a renewal attempts, but only ${#ks[@]} 'mail: renewal failed (K in a row)' line(s): a rolled-back renewal is not reported as a failure"
	}
	sleep 0.05
done
[ "${#ks[@]}" -ge 4 ] || { log_tail 30; fail "not four failures within 35 s (K: ${ks[*]})"; }
pass "K counts the failures in a row: ${ks[*]}"

mapfile -t ss < <(failure_ss)
[ "${#ss[@]}" -ge 4 ] || { failure_lines >&2; fail "failure lines without 'next attempt in D (S s, at T)'"; }
[ "${ss[0]}" -ge 1 ] && [ "${ss[0]}" -le 2 ] || fail "first delay ${ss[0]} s, not retry_min (2 s, jitter: >= 1.6): ${ss[*]}"
for n in 1 2 3; do
	[ $((ss[n] * 2)) -ge $((ss[n - 1] * 3)) ] ||
		{ failure_lines >&2; fail "delay $((n + 1)) (${ss[$n]} s) is not 1.5 times delay $n (${ss[$((n - 1))]} s): ${ss[*]}"; }
	[ "${ss[$n]}" -le 60 ] || fail "delay ${ss[$n]} over retry_max: ${ss[*]}"
done
pass "the delays grow: ${ss[*]} s (retry_min 2s, retry_max 60s)"

# Exactly one issuance per attempt: the CA, the attempts in the log, the failures.
# (The fifth attempt is over 12 s away: nothing moves meanwhile.)
attempts=$(($(count "mail: renewing with issuer") - base_renewing))
new=$(($(issued) - base_issued))
[ "$attempts" = 4 ] || { log_tail 40; fail "$attempts renewal attempts for 4 failures"; }
[ "$new" = 4 ] || { cat "$CA/index.txt" >&2; fail "the CA issued $new certificates for 4 attempts"; }
[ "$(count "rolled back to generation 1")" -ge 4 ] || { log_tail 40; fail "not each attempt was rolled back to generation 1"; }
pass "4 attempts, 4 certificates issued, each rolled back to generation 1"

for ((i = 0; i < 40; i++)); do [ "$(state 'j["failures"]')" = "${ks[3]}" ] && break; sleep 0.05; done
f=$(state 'j["failures"]')
[ "$f" = "${ks[3]}" ] || fail "the state counts $f failures, the log ${ks[3]}: $(cat "$ST/certs/mail.json")"
show_json
[ "$(json "$T/show.json" 'j["failures"]')" = "${ks[3]}" ] || fail "show counts $(json "$T/show.json" 'j["failures"]') failures"
[ "$(deployed)" = "$good" ] || fail "deployed serial $(deployed), not the good $good"
key_matches "$OUT/mail.pem" || fail "the deployed key does not match the deployed certificate"
pass "state and show say failures ${ks[3]}; the good certificate $good is deployed"
stop_agent
