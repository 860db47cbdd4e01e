#!/usr/bin/env bash
# Short-lived certificates (issue 20). A certificate of a few seconds renews
# at half its lifetime (renew_before exceeds the lifetime: the schedule caps
# it), five times in a row, with exactly one issuance per renewal: no loop,
# no storm.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out"
issued() { ls "$T/ca/newcerts" 2>/dev/null | wc -l; }
stamp() { date -d "$(cut -c1-23 <<<"$1")" +%s%3N; } # log line -> ms since the epoch
# gaps: the milliseconds between consecutive "renewed" lines of the log, one a line.
gaps() {
	local prev= t line
	while read -r line; do
		t=$(stamp "$line")
		[ -z "$prev" ] || echo $((t - prev))
		prev=$t
	done < <(grep "mail: renewed: serial" "$T/agent.log")
}

# --- a 20-second certificate: renewed at about 10 s, four times in a row ----
conf_head "retry_min = 5s
retry_max = 1m" "validity = 20s" >"$T/certsync.conf"
cat >>"$T/certsync.conf" <<CONF

[cert "mail"]
issuer = local
names  = mail.example.test
bundle = $T/out/mail.pem
CONF
spawn_agent
wait_until 60 sh -c "[ \$(grep -c 'mail: renewed: serial' '$T/agent.log') -ge 5 ]" ||
	{ cat "$T/agent.log" >&2; fail "fewer than five issuances of a 20 s certificate in 60 s"; }
stop_agent
grep -q "renewal failed" "$T/agent.log" && fail "a renewal failed: $(grep 'renewal failed' "$T/agent.log")"
n=$(grep -c "mail: renewed: serial" "$T/agent.log")
[ "$(issued)" = "$n" ] || fail "$(issued) certificates issued for $n renewals"
grep "mail: renewed: serial" "$T/agent.log" | has "next renewal .* (in 9s\|next renewal .* (in 10s" ||
	fail "the next renewal is not at half of the 20 s: $(grep 'mail: renewed' "$T/agent.log")"
for gap in $(gaps); do
	# Half of 20 s, less up to 1 s of jitter; slack for a loaded machine.
	[ "$gap" -ge 8500 ] && [ "$gap" -le 14000 ] ||
		fail "renewals $gap ms apart, not about 10 s: $(grep 'mail: renewed' "$T/agent.log")"
done
pass "a 20 s certificate renewed $n times at half its lifetime, one issuance each"
