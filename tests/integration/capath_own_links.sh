#!/usr/bin/env bash
# Issue 16: the agent's first pass over a watched [capath] of 300
# certificates makes 300 hash links, and the inotify events of those links
# start no further job (the debug log has one "job ... ended" line for the
# capath); a certificate renamed in afterwards is linked by one job, whose
# own link starts none; a hash link an operator removes is put back, by one
# job. The links equal openssl rehash's on a copy.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/capath" "$T/state"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/k.pem" 2>/dev/null
for i in $(seq 0 299); do
	if ((i % 10 == 0)); then cn="shared $((i / 100))"; else cn="host $i"; fi
	openssl req -x509 -key "$T/k.pem" -subj "/CN=$cn" -days 30 -set_serial $((i + 1)) \
		-out "$T/capath/c-$(printf %03d "$i").pem" 2>/dev/null
done
cat >"$T/certsync.conf" <<CONF
[agent]
state_dir = $T/state
socket    = $T/certsync.sock

[capath "trust"]
dir = $T/capath
CONF

jobs_ended() { grep -c 'capath trust: job [0-9]* ended' "$T/agent.log" || true; }

"$CERTSYNCD" -f --log-level debug -c "$T/certsync.conf" 2>"$T/agent.log" &
agent=$!
CS_PIDS+=($agent)
wait_for "$T/agent.log" "capath trust: job 1 ended: full pass" 30
sleep 1.5
n=$(find "$T/capath" -maxdepth 1 -type l -name '????????.*' | wc -l)
[ "$n" = 300 ] || fail "$n hash links after the first pass, not 300"
[ "$(jobs_ended)" = 1 ] || { grep 'job [0-9]* ended' "$T/agent.log" >&2; fail "the pass's own links started more jobs"; }
pass "the first pass made 300 links; their events started no job"

openssl req -x509 -key "$T/k.pem" -subj "/CN=dropped in" -days 30 -out "$T/new.pem" 2>/dev/null
h=$(openssl x509 -in "$T/new.pem" -noout -hash)
# Written aside and renamed in, as a careful writer does: one event.
cp "$T/new.pem" "$T/capath/.new.tmp"
mv "$T/capath/.new.tmp" "$T/capath/new.pem"
for _ in $(seq 40); do [ -L "$T/capath/$h.0" ] && break; sleep 0.05; done
[ -L "$T/capath/$h.0" ] || fail "the dropped-in certificate was not linked within 2 s"
sleep 1
[ "$(jobs_ended)" = 2 ] || { grep 'job [0-9]* ended' "$T/agent.log" >&2; fail "not one job for the dropped-in file"; }
pass "a dropped-in certificate is linked by one job; its link starts none"

h1=$(openssl x509 -in "$T/capath/c-001.pem" -noout -hash)
rm "$T/capath/$h1.0"
for _ in $(seq 40); do [ -L "$T/capath/$h1.0" ] && break; sleep 0.05; done
[ "$(readlink "$T/capath/$h1.0")" = c-001.pem ] || fail "a link removed by hand was not put back"
sleep 1
[ "$(jobs_ended)" = 3 ] || { grep 'job [0-9]* ended' "$T/agent.log" >&2; fail "not one job for the removed link"; }
pass "a link removed by hand is put back by one job"

mkdir "$T/ref"
cp "$T"/capath/*.pem "$T/ref/"
openssl rehash "$T/ref" >/dev/null 2>&1 || true
a=$(cd "$T/capath" && find . -maxdepth 1 -type l -printf '%f %l\n' | LC_ALL=C sort)
b=$(cd "$T/ref" && find . -maxdepth 1 -type l -printf '%f %l\n' | LC_ALL=C sort)
[ "$a" = "$b" ] || { diff <(echo "$a") <(echo "$b") >&2 || true; fail "links differ from openssl rehash"; }
pass "the links are openssl rehash's"
kill "$agent"
wait "$agent" 2>/dev/null || true
