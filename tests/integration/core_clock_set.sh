#!/usr/bin/env bash
# The running agent notices a step of the wall clock (clock_settime: NTP
# stepping, an administrator's `date -s`, a VM resumed): within 2 s it logs a
# line containing "wall clock was set" and examines every certificate again,
# so that renewals due by the new time are not left to a timer armed for the
# old one. The clock is "set" to what it is (date -s "@$(date +%s.%N)"),
# harmless for everything else on the machine. Needs CAP_SYS_TIME: skipped
# (77) when setting the clock is not permitted.
# "Examined again" is seen as either a log line of that cert after the clock
# line (the agent runs with --log-level debug) or its "stage_since" in
# `certsyncctl --json show` moving on (it went through "checking").
. "$(dirname "$0")/core_lib.bash"

core_conf "" "" "validity = 30d"
for c in web imap; do
	cat >>"$T/certsync.conf" <<CONF

[cert "$c"]
issuer = local
names  = $c.example.test
bundle = $OUT/$c.pem
CONF
done
start_agent
for c in mail web imap; do wait_for "$T/agent.log" "$c: renewed: serial" 10; done
wait_for "$T/reloads.log" "^end .* ok" 10
# Quiet: the reload done, nothing due for weeks; a second for stage_since to move on.
declare -A since
for c in mail web imap; do
	show_json "$c"
	since[$c]=$(json "$T/show.json" 'j.get("stage_since")')
done
sleep 1.1
lines=$(wc -l <"$T/agent.log")
pass "three certs issued, the agent idle"

t0=$(date +%s%N)
if ! date -s "@$(date +%s.%N)" >/dev/null 2>"$T/date.err"; then
	echo "SKIP: cannot set the clock here: $(cat "$T/date.err")"
	exit 77
fi
pass "clock set to the current time"

examined() { # examined CERT: logged about after the clock line, or stage_since moved on
	tail -n +$((lines + 1)) "$T/agent.log" | has "wall clock was set" || return 1
	tail -n +$((lines + 1)) "$T/agent.log" | sed -n '/wall clock was set/,$p' | tail -n +2 |
		has " $1: " && return 0
	show_json "$1"
	local s
	s=$(json "$T/show.json" 'j.get("stage_since")')
	[ "$(json "$T/show.json" 'j.get("stage")')" = idle ] && [ "$s" != None ] && [ "$s" != "${since[$1]}" ]
}
seen=
for ((;;)); do
	if [ -z "$seen" ] && tail -n +$((lines + 1)) "$T/agent.log" | has "wall clock was set"; then
		seen=$((($(date +%s%N) - t0) / 1000000))
	fi
	all=1
	for c in mail web imap; do examined "$c" || { all=; break; }; done
	[ -n "$all" ] && break
	[ $(($(date +%s%N) - t0)) -lt 2000000000 ] || break
	sleep 0.05
done
[ -n "$seen" ] || { log_tail 15; fail "no 'wall clock was set' line within 2 s of setting the clock"; }
pass "'$(grep -m1 "wall clock was set" "$T/agent.log" | sed 's/^.* certsyncd //')' after $seen ms"
for c in mail web imap; do
	examined "$c" || { log_tail 15; cat "$T/show.json" >&2; fail "$c was not examined again within 2 s of the clock set"; }
done
pass "every cert (mail, web, imap) examined again within 2 s"

kill -0 "$agent" || fail "the agent died"
ctl status
[ "$rc" = 0 ] || fail "status exited $rc after the clock set"
[ "$(deployed)" = "$(state 'j["generations"][0]["serial"]')" ] || fail "mail's deployed certificate changed"
pass "the agent answers status; nothing was renewed"
stop_agent
