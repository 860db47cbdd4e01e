#!/usr/bin/env bash
# An output file deleted while a renewal is in flight (its reload held by the
# test) is repaired through inotify without disturbing the renewal: at the
# end all outputs (bundle, fullchain, key file) exist and hold the same
# certificate with a matching key, the CA issued exactly one certificate for
# that renewal (a repair is never a new issuance), the state names the
# deployed serial, and there is no repair loop: "repaired from generation"
# is logged at most twice.
. "$(dirname "$0")/core_lib.bash"

core_conf "retry_min = 2s
retry_max = 60s" "fullchain = $OUT/mail.crt
keyfile   = $OUT/mail.key"
start_agent
first_cert
mails() { grep -c "/CN=mail.example.test$" "$CA/index.txt" || true; }
m0=$(mails)
pass "first certificate $good deployed and reloaded"

touch "$T/reload.hold"
renew_in_reload
pass "renewal in flight: $inflight deployed, its reload held"

# The repair may come at once or once the renewal has ended: the reload is
# released after 3 s at most either way.
rm "$OUT/mail.key"
for ((i = 0; i < 3 * 20; i++)); do [ -f "$OUT/mail.key" ] && break; sleep 0.05; done
if [ -f "$OUT/mail.key" ]; then
	pass "mail.key deleted during the reload: repaired within $((i * 50)) ms, reload still held"
else
	pass "mail.key deleted during the reload: not repaired while the reload is held (3 s)"
fi
rm "$T/reload.hold"

consistent() {
	[ -f "$OUT/mail.pem" ] && [ -f "$OUT/mail.crt" ] && [ -f "$OUT/mail.key" ] || return 1
	key_matches "$OUT/mail.pem" || return 1
	[ "$(serial_of "$OUT/mail.crt")" = "$(deployed)" ] || return 1
	[ "$(openssl x509 -in "$OUT/mail.pem" -noout -pubkey | openssl sha256)" = \
		"$(openssl pkey -in "$OUT/mail.key" -pubout 2>/dev/null | openssl sha256)" ] || return 1
	[ "$(grep -c "^start" "$T/reloads.log")" = "$(grep -c "^end" "$T/reloads.log")" ] || return 1
	[ "$(state 'j["generations"][0]["serial"]')" = "$(deployed)" ]
}
until_steady 30 20 consistent || {
	ls -l "$OUT" >&2
	log_tail 30
	fail "the outputs are not whole and consistent, with the state, within 30 s"
}
d=$(deployed)
[ "$d" = "$inflight" ] || [ "$d" = "$good" ] || fail "mail.pem holds $d, neither $good nor $inflight"
pass "all outputs exist and hold $d with its key; the state names it"

[ "$(mails)" = $((m0 + 1)) ] || { cat "$CA/index.txt" >&2; log_tail 30; fail "$(($(mails) - m0)) certificates issued for one renewal and a repair"; }
r=$(count "repaired from generation")
[ "$r" -le 2 ] || { grep "repaired from generation" "$T/agent.log" >&2; fail "repaired $r times: a repair loop"; }
kill -0 "$agent" || fail "the agent died"
pass "one issuance for the renewal; 'repaired from generation' logged $r time(s)"
stop_agent
