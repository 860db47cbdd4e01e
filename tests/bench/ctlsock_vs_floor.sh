#!/usr/bin/env bash
# Status socket beside its floor (issue 16): an agent with N certificates
# (default 1000) from a local CA, and floor_srv, a trivial single-threaded
# epoll server that answers every request line with a fixed JSON of the same
# size as the agent's answer to {"cmd":"status"}. In one run, each for S
# seconds (default 10), bench_ctlsock sends {"cmd":"status"}:
#   - 50 clients to the agent, then to the floor (requests/s and the ratio);
#   - 200 clients to the agent, then to the floor (p50/p99/max);
#   - 200 clients to the agent while `certsyncctl renew all --force` runs
#     every 2 s (ratio to the idle 200-client run).
# floor_srv.c is built from the project's shared notes, the directory
# shared/floors next to the repository. Run by hand (never by ctest):
#   tests/bench/ctlsock_vs_floor.sh BUILD [N [S]]
set -euo pipefail
B=$(cd "${1:?usage: ctlsock_vs_floor.sh BUILD [N [S]]}" && pwd)
N=${2:-1000}
S=${3:-10}
repo=$(cd "$(dirname "$0")/../.." && pwd)
floors="$(dirname "$repo")/shared/floors"
[ -f "$floors/floor_srv.c" ] || {
	echo "ctlsock_vs_floor.sh: no $floors/floor_srv.c (the shared floors are next to the repository)" >&2
	exit 1
}
T=$(mktemp -d /tmp/cs-bench.XXXXXX)
agent=
floor=
renewer=
cleanup() {
	[ -n "$renewer" ] && kill "$renewer" 2>/dev/null || true
	[ -n "$floor" ] && kill "$floor" 2>/dev/null && wait "$floor" 2>/dev/null || true
	[ -n "$agent" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
ulimit -n 4096 2>/dev/null || true

cc -O2 "$floors/floor_srv.c" -o "$T/floor_srv"

{
	cat <<CONF
[agent]
state_dir = $T/state
socket    = $T/certsync.sock
log_level = notice

[issuer "local"]
type     = local-ca
dir      = $T/ca
validity = 30d
CONF
	for i in $(seq "$N"); do
		printf '\n[cert "c%d"]\nissuer = local\nnames = c%d.example.test\nbundle = %s/out/c%d.pem\n' \
			"$i" "$i" "$T" "$i"
	done
} >"$T/certsync.conf"
mkdir -p "$T/out"

"$B/agent/certsyncd" -f -c "$T/certsync.conf" 2>"$T/agent.log" &
agent=$!
ctl() { "$B/agent/certsyncctl" -s "$T/certsync.sock" "$@"; }
echo "issuing $N certificates..."
start=$(date +%s)
v=0
for _ in $(seq 600); do
	v=$(ctl --json status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["states"]["valid"])' 2>/dev/null || echo 0)
	[ "$v" = "$N" ] && break
	sleep 1
done
[ "$v" = "$N" ] || { tail "$T/agent.log"; echo "only $v of $N valid after 600 s"; exit 1; }
echo "$N certificates valid after $(($(date +%s) - start)) s"

# The size of the status answer, newline included, as the socket sends it.
size=$(python3 - "$T/certsync.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"cmd":"status"}\n')
b = b""
while not b.endswith(b"\n"):
    b += s.recv(65536)
print(len(b))
PY
)
echo "status answer: $size bytes"
"$T/floor_srv" "$T/floor.sock" "$size" &
floor=$!
for _ in $(seq 50); do [ -S "$T/floor.sock" ] && break; sleep 0.1; done

# run NAME SOCKET CLIENTS: one bench_ctlsock run; its figures go to $T/NAME.
run() {
	local out
	out=$("$B/tests/bench/bench_ctlsock" -s "$2" -c "$3" -d "$S" -r '{"cmd":"status"}') || {
		echo "$out"
		echo "bench_ctlsock against $1 failed" >&2
		exit 1
	}
	echo "--- $1: $3 clients"
	echo "$out"
	echo "$out" | sed -n 's/^\([0-9]*\) requests\/s.*p50 \([0-9.]*\) ms.*p99 \([0-9.]*\) ms, max \([0-9.]*\) ms.*/\1 \2 \3 \4/p' \
		>"$T/$1"
}
run certsync50 "$T/certsync.sock" 50
run floor50 "$T/floor.sock" 50
run certsync200 "$T/certsync.sock" 200
run floor200 "$T/floor.sock" 200

before=$(grep -c "renewed: serial" "$T/agent.log" || true)
(while :; do ctl renew all --force >/dev/null 2>&1 || true; sleep 2; done) &
renewer=$!
sleep 1
run renewing200 "$T/certsync.sock" 200
kill "$renewer"
renewer=
after=$(grep -c "renewed: serial" "$T/agent.log" || true)
echo "renewals completed during the last run: $((after - before))"

fig() { awk -v k="$2" '{ print $k }' "$T/$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
echo "status socket, {\"cmd\":\"status\"} ($size bytes), $N certs, $S s per run"
printf '%-32s %10s %9s %9s %9s\n' run "req/s" "p50 ms" "p99 ms" "max ms"
for r in certsync50 floor50 certsync200 floor200 renewing200; do
	printf '%-32s %10s %9s %9s %9s\n' "$r" "$(fig "$r" 1)" "$(fig "$r" 2)" "$(fig "$r" 3)" \
		"$(fig "$r" 4)"
done
echo
echo "certsync/floor req/s at 50 clients:      $(ratio "$(fig certsync50 1)" "$(fig floor50 1)")  (target >= 0.5)"
echo "certsync/floor req/s at 200 clients:     $(ratio "$(fig certsync200 1)" "$(fig floor200 1)")"
echo "certsync p99 at 200 clients:             $(fig certsync200 3) ms  (target < 5 ms; floor $(fig floor200 3) ms)"
echo "idle/renewing req/s at 200 clients:      $(ratio "$(fig certsync200 1)" "$(fig renewing200 1)")  (target <= 2)"
echo "renewing/idle p99 at 200 clients:        $(ratio "$(fig renewing200 3)" "$(fig certsync200 3)")  (target <= 2)"
