#!/usr/bin/env bash
# The work queue's threads (key generation, signing, examinations, writes)
# run 10 below the loop's priority, so that the status socket and the timers
# keep the CPU while renewals fill both cores (issue 16: status answers not
# more than 2x slower while renewals run; tests/bench/ctlsock_vs_floor.sh).
# With UV_THREADPOOL_SIZE=3 the three threads of the pool are lowered, the
# loop thread is not.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out"
std_conf >"$T/certsync.conf"
UV_THREADPOOL_SIZE=3 spawn_agent
wait_for "$T/agent.log" "mail: renewed: serial" 15
base=$(awk '{print $19}' "/proc/$agent/stat")
lowered=0 others=0
for t in /proc/$agent/task/*; do
	n=$(awk '{print $19}' "$t/stat")
	if [ "$(basename "$t")" = "$agent" ]; then
		[ "$n" = "$base" ] || fail "the loop thread runs at nice $n, not the process's $base"
	elif [ "$n" = $((base + 10 > 19 ? 19 : base + 10)) ]; then
		lowered=$((lowered + 1))
	else
		others=$((others + 1))
	fi
done
[ "$lowered" = 3 ] || fail "$lowered worker thread(s) lowered, not 3 (threads at another nice: $others)"
pass "the loop thread at nice $base, the three threads of the work queue at nice $((base + 10))"
