#!/usr/bin/env bash
# Idle wake-ups of certsyncd: N certificates (default 100) issued by a local
# CA with 90 days of validity, none due; the agent runs in the foreground and
# for SECONDS (default 60) we count its context switches, every thread
# together, from /proc/PID/task/*/status (voluntary_ctxt_switches: each one
# is a sleep that ended, i.e. a wake-up). An agent that polls shows one per
# poll interval; certsyncd should show none: one timer for the earliest due
# moment (weeks away) and inotify for the rest.
#   tests/bench/idle_wakeups.sh BUILD_DIR [N [SECONDS]]
set -euo pipefail
B=${1:?usage: $0 BUILD_DIR [N [SECONDS]]}
N=${2:-100}
SECS=${3:-60}
W=$(mktemp -d /tmp/bench-idle.XXXXXX)
agent=
cleanup() {
	[ -n "$agent" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/out"
{
	printf '[agent]\nstate_dir = %s/state\nsocket = %s/sock\n\n' "$W" "$W"
	printf '[issuer "local"]\ntype = local-ca\ndir = %s/ca\nvalidity = 90d\n' "$W"
	for i in $(seq "$N"); do
		printf '\n[cert "c%d"]\nissuer = local\nnames = c%d.example.test\n' "$i" "$i"
		printf 'bundle = %s/out/c%d.pem\n' "$W" "$i"
	done
} >"$W/certsync.conf"

echo "== issuing $N certificates (certsyncd --once)"
"$B/agent/certsyncd" --once -c "$W/certsync.conf" 2>"$W/once.log" ||
	{ tail "$W/once.log"; exit 1; }
grep -o 'one pass over .*' "$W/once.log"

echo "== starting certsyncd -f"
"$B/agent/certsyncd" -f -c "$W/certsync.conf" 2>"$W/agent.log" &
agent=$!
for _ in $(seq 200); do
	[ "$(grep -c ': valid until' "$W/agent.log" || true)" -ge "$N" ] && break
	sleep 0.05
done
[ "$(grep -c ': valid until' "$W/agent.log")" -ge "$N" ] || { tail "$W/agent.log"; exit 1; }
grep -q renewing "$W/agent.log" && { echo "the agent renewed something"; exit 1; }
sleep 2 # let the start-up settle

switches() { # voluntary+nonvoluntary over all threads
	local v=0 n=0 f
	for f in /proc/"$agent"/task/*/status; do
		v=$((v + $(awk '/^voluntary_ctxt_switches/ {print $2}' "$f")))
		n=$((n + $(awk '/^nonvoluntary_ctxt_switches/ {print $2}' "$f")))
	done
	echo "$v $n"
}
read -r v0 n0 < <(switches)
threads=$(ls /proc/"$agent"/task | wc -l)
echo "== idle for $SECS s ($threads threads)"
sleep "$SECS"
read -r v1 n1 < <(switches)
rss=$(awk '/^VmRSS/ {print $2, $3}' /proc/"$agent"/status)
echo "voluntary context switches in ${SECS} s:    $((v1 - v0))"
echo "nonvoluntary context switches in ${SECS} s: $((n1 - n0))"
echo "resident memory: $rss for $N certificates"
echo "next timer: $(grep -o 'next renewal [^(]*' "$W/agent.log" | sort -k3 | head -1)"
if [ "$((v1 - v0))" -ne 0 ]; then
	echo "FAIL: the idle agent woke up"
	exit 1
fi
