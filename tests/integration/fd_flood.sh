#!/usr/bin/env bash
# Descriptor exhaustion (issue 15 item 3): a socket_group member (nobody)
# holding 1,100 connections to an agent whose descriptor limit is 1,024 does
# not stop renewals nor lock root out. The agent keeps a reserve of
# descriptors that clients can never take, caps one reading uid at 64
# connections and keeps the last places for administrators.
. "$(dirname "$0")/ctlsock_lib.bash"
command -v setpriv >/dev/null && command -v prlimit >/dev/null ||
	{ echo "SKIP: setpriv and prlimit are needed"; exit 77; }
getent group adm >/dev/null || { echo "SKIP: group adm is needed"; exit 77; }
chmod 0711 "$T"

write_conf "socket_mode = 0666
socket_group = adm"
spawn_agent
prlimit --pid "$agent" --nofile=1024:1024
wait_for "$T/agent.log" "status socket listening on $SOCK" 10
wait_for "$T/agent.log" "mail: renewed: serial" 10

# nobody, in socket_group, opens 1,100 connections and holds them.
prlimit --nofile=4096:4096 setpriv --reuid=65534 --regid=65534 --groups="$(getent group adm | cut -d: -f3)" \
	"$PY" -c '
import socket, sys, time
held = []
for i in range(1100):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sys.argv[1])
        held.append(s)
    except OSError:
        s.close()
print(len(held), flush=True)
time.sleep(30)' "$SOCK" >"$T/held" &
flood=$!
CS_PIDS+=($flood)
for _ in $(seq 200); do [ -s "$T/held" ] && break; sleep 0.05; done
[ -s "$T/held" ] || fail "the flood did not start"
sleep 1

ctl status
[ $rc = 0 ] || [ $rc = 1 ] || { cat "$T/stderr" >&2; fail "root's status during the flood exited $rc"; }
grep -q "certsyncd" "$T/stdout" || { cat "$T/stdout" "$T/stderr" >&2; fail "root got no status during the flood"; }
ctl renew mail --force --wait
[ $rc = 0 ] || { cat "$T/stdout" "$T/stderr" >&2; tail "$T/agent.log" >&2; fail "a forced renewal during the flood exited $rc"; }
grep -qi "too many open files" "$T/agent.log" && fail "the agent ran out of descriptors: $(grep -i 'too many open files' "$T/agent.log" | head -1)"
grep -q "uid 65534 holds 64 connections (at most 64); refusing one" "$T/agent.log" ||
	{ tail "$T/agent.log" >&2; fail "no per-uid refusal in the log"; }
open_fds=$(ls /proc/$agent/fd | wc -l)
[ "$open_fds" -lt 1024 ] || fail "the agent holds $open_fds descriptors"
pass "1,100 connections of a reader: root still answered, a forced renewal verified, the agent holds $open_fds descriptors"
kill $flood 2>/dev/null || true
