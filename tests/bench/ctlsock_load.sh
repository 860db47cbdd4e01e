#!/usr/bin/env bash
# Status socket under load: an agent with N certificates (default 1000) from
# a local CA; C clients (default 200) each send {"cmd":"list"} in a loop for
# S seconds (default 10), first while nothing else happens, then while
# `certsyncctl renew all --force` keeps renewals running. Prints requests per
# second and latency percentiles from bench_ctlsock, and the renewals done in
# the window. Run by hand (never by ctest):
#   tests/bench/ctlsock_load.sh BUILD [N [C [S]]]
set -euo pipefail
B=$(cd "${1:?usage: ctlsock_load.sh BUILD [N [C [S]]]}" && pwd)
N=${2:-1000}
C=${3:-200}
S=${4:-10}
T=$(mktemp -d /tmp/cs-bench.XXXXXX)
agent=
renewer=
cleanup() {
	[ -n "$renewer" ] && kill "$renewer" 2>/dev/null || true
	[ -n "$agent" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
ulimit -n 4096 2>/dev/null || true

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
for _ in $(seq 600); do
	v=$(ctl --json status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["states"]["valid"])' 2>/dev/null || echo 0)
	[ "$v" = "$N" ] && break
	sleep 1
done
[ "$v" = "$N" ] || { tail "$T/agent.log"; echo "only $v of $N valid after 600 s"; exit 1; }
echo "$N certificates valid after $(($(date +%s) - start)) s"

echo "--- $C clients sending list, no renewals running"
"$B/tests/bench/bench_ctlsock" -s "$T/certsync.sock" -c "$C" -d "$S"

echo "--- $C clients sending list while renewals run"
before=$(grep -c "renewed: serial" "$T/agent.log" || true)
(while :; do ctl renew all --force >/dev/null 2>&1 || true; sleep 2; done) &
renewer=$!
sleep 1
"$B/tests/bench/bench_ctlsock" -s "$T/certsync.sock" -c "$C" -d "$S"
kill "$renewer"
renewer=
after=$(grep -c "renewed: serial" "$T/agent.log" || true)
echo "renewals completed during the run: $((after - before)) (agent RSS $(awk '/^VmRSS/ {print $2}' /proc/$agent/status) kB)"
