#!/usr/bin/env bash
# `certsyncctl revoke mail` while a forced renewal of mail is reloading (its
# reload held by the test): the answer is either "busy" (nothing revoked) or
# the revocation happens; either way, once all has settled, the deployed
# certificate is not one the CA's index.txt marks revoked ("R"), its key
# matches, and the state (newest generation, `show`) names the deployed
# serial with no failure counted.
. "$(dirname "$0")/core_lib.bash"

core_conf "retry_min = 2s
retry_max = 60s"
start_agent
first_cert
pass "first certificate $good deployed and reloaded"

touch "$T/reload.hold"
renew_in_reload
pass "renewal in flight: $inflight deployed, its reload held"

set +e
timeout 30 "$CERTSYNCCTL" -s "$SOCK" revoke mail >"$T/revoke.out" 2>&1
rc=$?
set -e
[ "$rc" != 124 ] || { log_tail; fail "revoke did not answer within 30 s"; }
if [ "$rc" = 0 ]; then
	grep -q "^revoked [0-9A-F]*" "$T/revoke.out" || { cat "$T/revoke.out" >&2; fail "revoke exited 0 without 'revoked SERIAL'"; }
	revoked=$(sed -n 's/^revoked \([0-9A-F]*\).*/\1/p' "$T/revoke.out")
	answer="revoked $revoked"
elif grep -qi "busy" "$T/revoke.out"; then
	answer="busy (exit $rc)"
	grep -q "^R" "$CA/index.txt" && fail "revoke answered busy but index.txt has an R line: $(grep "^R" "$CA/index.txt")"
else
	cat "$T/revoke.out" >&2
	log_tail
	fail "revoke during a reload exited $rc, neither revoked nor busy"
fi
pass "revoke during the reload: $answer"
rm "$T/reload.hold"

# Settled: the deployed certificate is valid in index.txt, reloaded, in the
# state, and stays so for a second.
is_revoked() { awk -F'\t' -v s="$1" '$1 == "R" && $4 == s {f = 1} END {exit !f}' "$CA/index.txt"; }
settled() {
	local d
	d=$(deployed)
	[ -n "$d" ] && ! is_revoked "$d" || return 1
	[ "$(grep -c "^start" "$T/reloads.log")" = "$(grep -c "^end" "$T/reloads.log")" ] || return 1
	tail -n 1 "$T/reloads.log" | has "^end .* ok" || return 1
	[ "$(state 'j["generations"][0]["serial"]')" = "$d" ] || return 1
	show_json
	[ "$(json "$T/show.json" 'j["serial"]')" = "$d" ] && [ "$(json "$T/show.json" 'j["state"]')" = valid ]
}
steady=yes
until_steady 30 20 settled || steady=no
d=$(deployed)
if [ "$steady" = no ]; then
	grep "^R" "$CA/index.txt" >&2 || true
	cat "$T/reloads.log" >&2
	log_tail 30
	is_revoked "$d" && fail "the deployed certificate $d is revoked in index.txt"
	fail "no settled state within 30 s (deployed $d, state: $(state 'j["generations"][0]["serial"]'))"
fi
key_matches "$OUT/mail.pem" || fail "the deployed key does not match"
[ "$(state 'j["failures"]')" = 0 ] || fail "the state counts $(state 'j["failures"]') failures: $(state 'j["last_error"]')"
if [ -n "${revoked:-}" ]; then
	is_revoked "$revoked" || fail "revoke said $revoked, index.txt has no R line for it"
	[ "$d" != "$revoked" ] || fail "the revoked $revoked is deployed"
fi
pass "settled: $d deployed (not revoked), reloaded, key matching, state and show name it, failures 0"
kill -0 "$agent" || fail "the agent died"
stop_agent
