#!/usr/bin/env bash
# SIGTERM while a renewal is in flight: the agent exits with status 0 within
# 10 s, the outputs are whole (each holds a key matching its certificate: the
# old generation or the new one, never a mix of the two), no temporary files
# are left, and a restarted agent finds them valid without errors and without
# issuing anything. Twice: SIGTERM during the reload (a reloader that takes
# 3 s), and at once after `renew --force` (key generation, issuance or
# deploy, whichever it is in).
. "$(dirname "$0")/core_lib.bash"

core_conf "retry_min = 2s
retry_max = 60s" "fullchain = $OUT/mail.crt
keyfile   = $OUT/mail.key"

# whole: bundle, fullchain and key file hold the same certificate and key.
whole() {
	local s b f k
	key_matches "$OUT/mail.pem" || fail "$1: mail.pem does not hold a matching key and certificate"
	s=$(deployed)
	[ "$(serial_of "$OUT/mail.crt")" = "$s" ] || fail "$1: mail.crt holds $(serial_of "$OUT/mail.crt"), mail.pem $s"
	b=$(openssl x509 -in "$OUT/mail.pem" -noout -pubkey | openssl sha256)
	k=$(openssl pkey -in "$OUT/mail.key" -pubout | openssl sha256)
	[ "$b" = "$k" ] || fail "$1: mail.key does not belong to the certificate in mail.pem"
	f=$(find "$OUT" -name '.*' -type f | head -n 3)
	[ -z "$f" ] || fail "$1: temporary files left: $f"
}

# term WHAT: SIGTERM now; exit 0 within 10 s.
term() {
	local t0=$(date +%s%N) i
	kill -TERM "$agent"
	for ((i = 0; i < 10 * 20; i++)); do kill -0 "$agent" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$agent" 2>/dev/null && { log_tail; fail "$1: the agent still runs 10 s after SIGTERM"; }
	set +e
	wait "$agent"
	local st=$?
	set -e
	[ "$st" = 0 ] || { log_tail; fail "$1: the agent exited $st after SIGTERM, not 0"; }
	pass "$1: stopped with status 0 in $((($(date +%s%N) - t0) / 1000000)) ms"
}

# restart WHAT: a new agent finds the outputs valid, logs no error, issues nothing.
restart() {
	local n0 l0 st
	n0=$(issued)
	l0=$(wc -l <"$T/agent.log")
	start_agent
	for ((i = 0; i < 10 * 20; i++)); do
		show_json
		st=$(json "$T/show.json" 'j["state"]')
		[ "$st" = valid ] && [ "$(json "$T/show.json" 'j.get("deployed")')" = ok ] && break
		sleep 0.05
	done
	[ "$st" = valid ] || { cat "$T/show.json" >&2; log_tail; fail "$2: after the restart mail is '$st', not valid"; }
	sleep 0.5 # anything the restart would do wrongly shows by now
	! tail -n +$((l0 + 1)) "$T/agent.log" | grep " error: " ||
		fail "$2: the restarted agent logged errors"
	[ "$(issued)" = "$n0" ] || { log_tail; fail "$2: the restarted agent issued a certificate"; }
	[ "$(deployed)" = "$1" ] || fail "$2: the restarted agent changed the outputs"
	pass "$2: restarted, mail valid ($1), no error, nothing issued"
}

start_agent
first_cert
whole "first certificate"
pass "first certificate $good deployed"

# 1: during the reload.
echo 3 >"$T/reload.sleep"
renew_in_reload
new=$inflight
term "SIGTERM during the reload"
whole "after SIGTERM during the reload"
d=$(deployed)
[ "$d" = "$good" ] || [ "$d" = "$new" ] || fail "mail.pem holds $d, neither $good nor $new"
pass "outputs whole: $([ "$d" = "$new" ] && echo "the new $new" || echo "the old $good")"
rm "$T/reload.sleep"
restart "$d" "after SIGTERM during the reload"

# 2: at once after renew --force.
prev=$(deployed)
n0=$(issued)
force_renew
term "SIGTERM at once after renew --force"
whole "after SIGTERM at once after renew --force"
d=$(deployed)
if [ "$(issued)" = "$n0" ]; then
	[ "$d" = "$prev" ] || fail "nothing issued, but mail.pem holds $d, not $prev"
else
	[ "$d" = "$prev" ] || [ "$d" = "$(tail -n 1 "$CA/index.txt" | cut -f4)" ] ||
		fail "mail.pem holds $d, neither $prev nor the one just issued"
fi
pass "outputs whole ($d; $(($(issued) - n0)) issued before the stop)"
restart "$d" "after SIGTERM at once after renew --force"
stop_agent
