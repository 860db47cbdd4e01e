#!/usr/bin/env bash
# Who may do what on the status socket (SO_PEERCRED and the peer's groups):
# the socket is made with the configured mode and group; a uid in no
# configured group is refused even for reading; socket_group members read
# but may not renew; admin_group members (and root) may renew. The client is
# run as nobody with setpriv, with the groups each case needs. A SIGHUP that
# changes socket_mode applies it to the socket file.
. "$(dirname "$0")/ctlsock_lib.bash"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to switch users"; exit 77; }
command -v setpriv >/dev/null || { echo "SKIP: setpriv is needed"; exit 77; }
getent group adm >/dev/null && getent group staff >/dev/null ||
	{ echo "SKIP: groups adm and staff are needed"; exit 77; }
ADM=$(getent group adm | cut -d: -f3)
STAFF=$(getent group staff | cut -d: -f3)
chmod 0711 "$T" # nobody must reach the socket; the mode of the socket decides

write_conf "socket_mode = 0666
socket_group = adm
admin_group = staff"
start_agent
[ "$(stat -c '%a %G %F' "$SOCK")" = "666 adm socket" ] ||
	fail "socket is $(stat -c '%a %G %F' "$SOCK"), not 666 adm socket"
pass "socket created with mode 0666 and group adm"

# as GROUPS ARGS...: certsyncctl as nobody with the supplementary GROUPS ("" for none).
as() {
	local groups=$1
	shift
	local g=(--clear-groups)
	[ -n "$groups" ] && g=(--groups="$groups")
	set +e
	setpriv --reuid=65534 --regid=65534 "${g[@]}" "$CERTSYNCCTL" -s "$SOCK" "$@" \
		>"$T/stdout" 2>"$T/stderr"
	rc=$?
	set -e
}
# raw_as GROUPS LINE: one raw request line as nobody; the answer in $T/raw.
raw_as() {
	local g=(--clear-groups)
	[ -n "$1" ] && g=(--groups="$1")
	setpriv --reuid=65534 --regid=65534 "${g[@]}" "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(65536)
    if not d: break
    buf += d
sys.stdout.write(buf.decode())' "$SOCK" "$2" >"$T/raw"
}

as "" show mail
[ $rc = 1 ] || fail "nobody without groups: show exited $rc"
in_err "permission denied: uid 65534 may not read the status"
raw_as "" '{"cmd":"list"}'
[ "$(json "$T/raw" 'j["ok"], j["code"]')" = "False refused" ] || fail "raw list as nobody: $(cat "$T/raw")"
as "" renew mail --force
[ $rc = 1 ] || fail "nobody without groups: renew exited $rc"
in_err "may not change anything"
pass "a uid in neither group is refused, for reading and for renewing (exit 1, code refused)"

as "$ADM" show mail
[ $rc = 0 ] || { cat "$T/stderr"; fail "socket_group member: show exited $rc"; }
in_out "state  *valid"
as "$ADM" metrics
[ $rc = 0 ] || fail "socket_group member: metrics exited $rc"
s1=$(openssl x509 -in "$T/out/mail.pem" -noout -serial)
for cmd in "renew mail --force" "renew all" "rehash" "reload mail"; do
	# shellcheck disable=SC2086
	as "$ADM" $cmd
	[ $rc = 1 ] || fail "socket_group member: $cmd exited $rc"
	in_err "permission denied"
done
raw_as "$ADM" '{"cmd":"renew","name":"mail","force":true}'
[ "$(json "$T/raw" 'j["code"]')" = refused ] || fail "raw renew as reader: $(cat "$T/raw")"
sleep 0.3
[ "$(openssl x509 -in "$T/out/mail.pem" -noout -serial)" = "$s1" ] || fail "a reader's renew renewed"
pass "a socket_group member reads (show, metrics) but every change is refused"

as "$STAFF" renew mail --force --wait
[ $rc = 0 ] || { cat "$T/stderr"; fail "admin_group member: renew exited $rc"; }
[ "$(openssl x509 -in "$T/out/mail.pem" -noout -serial)" != "$s1" ] || fail "admin renew did nothing"
as "$ADM,$STAFF" show mail
[ $rc = 0 ] || fail "member of both: show exited $rc"
grep -q 'refused "renew" from uid 65534' "$T/agent.log" || fail "refusals are not logged"
pass "an admin_group member renews (the certificate changes); refusals are logged"

# SIGHUP with a new mode: applied to the socket; others can no longer connect.
write_conf "socket_mode = 0600
socket_group = adm
admin_group = staff"
kill -HUP "$agent"
wait_for "$T/agent.log" "configuration reloaded" 10
for _ in $(seq 50); do [ "$(stat -c %a "$SOCK")" = 600 ] && break; sleep 0.1; done
[ "$(stat -c %a "$SOCK")" = 600 ] || fail "socket mode after SIGHUP: $(stat -c %a "$SOCK")"
as "$ADM,$STAFF" status
[ $rc = 3 ] || fail "nobody with mode 0600: exit $rc, not 3"
in_err "Permission denied"
expect 1 status # root still reads (exit 1: web is failed)
in_out "certs: 2"
stop_agent
pass "SIGHUP applies a new socket_mode; without access to the file the client exits 3"
