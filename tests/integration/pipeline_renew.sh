#!/usr/bin/env bash
# The running agent renews on its own: the local CA issues certificates with
# two minutes of validity; the agent issues the first one at start and renews
# it before it expires, with no outside trigger, while a reader checks the
# whole time that the bundle on disk is always a matching key and leaf. Then
# a restart resumes the schedule without issuing again, and --once exits 0
# with nothing to do.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out"
conf_head "" "validity = 2m" >"$T/certsync.conf"
cat >>"$T/certsync.conf" <<CONF

[cert "mail"]
issuer       = local
names        = mail.example.test, smtp.example.test
bundle       = $T/out/mail.pem
# Renew when 85% of the two minutes are left: about 18 s after issuance,
# so that the test stays short.
renew_before = 85%
CONF

serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
enddate_of() { date -d "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)" +%s; }

spawn_agent
wait_for "$T/agent.log" "mail: renewed: serial" 10
[ -f "$T/out/mail.pem" ] || fail "no bundle after the first issuance"
s1=$(serial_of "$T/out/mail.pem")
end1=$(enddate_of "$T/out/mail.pem")
[ $((end1 - $(date +%s))) -le 121 ] || fail "the first certificate is not short-lived"
pass "the agent issued the first certificate (serial $s1) at start"

# A reader that checks the bundle as often as it can until told to stop.
reader() {
	local n=0 bad=0
	while [ ! -e "$T/stop-reader" ]; do
		if out=$("$CERTSYNCCTL" inspect "$T/out/mail.pem" 2>&1) &&
			grep -q "key matches leaf: yes" <<<"$out"; then
			n=$((n + 1))
		else
			bad=$((bad + 1))
			printf '%s\n' "$out" >>"$T/reader-bad.log"
		fi
	done
	echo "$n $bad" >"$T/reader.result"
}
reader &
reader_pid=$!
CS_PIDS+=($reader_pid)

# The renewal comes from the agent's timer alone.
for _ in $(seq 600); do
	[ "$(grep -c "mail: renewed: serial" "$T/agent.log")" -ge 2 ] && break
	sleep 0.1
done
[ "$(grep -c "mail: renewed: serial" "$T/agent.log")" -ge 2 ] ||
	{ cat "$T/agent.log" >&2; fail "no renewal within 60 s"; }
renewed_at=$(date +%s)
s2=$(serial_of "$T/out/mail.pem")
[ "$s2" != "$s1" ] || fail "the serial did not change"
[ "$renewed_at" -lt "$end1" ] || fail "renewed at $renewed_at, after the expiry $end1"
pass "renewed by the timer before expiry (serial $s2, $((end1 - renewed_at)) s before the old one expired)"

# Let the reader watch a little longer, over the swap and after.
sleep 1
touch "$T/stop-reader"
wait $reader_pid
read -r good bad <"$T/reader.result"
[ "$bad" -eq 0 ] || { cat "$T/reader-bad.log" >&2; fail "the reader saw $bad bad bundle(s)"; }
[ "$good" -ge 10 ] || fail "the reader only managed $good reads"
pass "a reader saw a matching key and leaf in all $good reads during the renewal"

# State: two generations, no failures, the next due time in the future.
st=$T/state/certs/mail.json
# json KEY: the value of a top-level number or string (the file is indented JSON).
json() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$st"; }
[ "$(json failures)" = 0 ] || fail "failures in the state: $(cat "$st")"
[ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["generations"]))' "$st")" = 2 ] ||
	fail "not two generations: $(cat "$st")"
grep -A5 '"generations"' "$st" | has "\"serial\": \"$s2\"" ||
	fail "newest generation is not $s2: $(cat "$st")"
[ "$(json next_due)" -gt "$(date +%s)" ] || fail "next_due is not in the future: $(cat "$st")"
[ -f "$T/state/generations/mail/1.pem" ] && [ -f "$T/state/generations/mail/2.pem" ] ||
	fail "the generations are not kept under state_dir"
[ "$(stat -c %a "$T/state/generations/mail/1.pem")" = 600 ] || fail "generation file not 0600"
[ "$(stat -c %a "$T/out/mail.pem")" = 600 ] || fail "bundle not 0600"
pass "state: two generations kept (0600), no failures, next due time in the future"

stop_agent

# A restart picks up the schedule: the valid certificate is not issued again.
spawn_agent "$T/agent2.log"
wait_for "$T/agent2.log" "mail: valid until" 10
sleep 0.5
grep -q "renewing" "$T/agent2.log" && fail "the restarted agent renewed a valid certificate"
[ "$(serial_of "$T/out/mail.pem")" = "$s2" ] || fail "the bundle changed on restart"
stop_agent
pass "a restart resumes the schedule without issuing again"

set +e
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/once.log"
rc=$?
set -e
[ $rc -eq 0 ] || { cat "$T/once.log" >&2; fail "--once with nothing due exited $rc"; }
grep -q "one pass over 1 cert(s): 0 renewed, 0 repaired, 1 valid, 0 failed" "$T/once.log" ||
	fail "no summary line: $(cat "$T/once.log")"
pass "--once with nothing due: summary line, exit 0"
leftover=$(find "$T" -name '.*.??????*' -type f | head -5)
[ -z "$leftover" ] || fail "temp files left behind: $leftover"
