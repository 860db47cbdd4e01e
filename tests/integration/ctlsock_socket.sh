#!/usr/bin/env bash
# The socket file and the metrics file over the agent's life: made with the
# configured mode; metrics_file written at start and again after a renewal
# (valid for promtool); a second agent never takes over a live socket (and
# leaves it in place when it stops); a socket left by a killed agent is
# replaced; SIGHUP moves the socket to a new path and removes the old one;
# --once writes the metrics file and makes no socket.
. "$(dirname "$0")/ctlsock_lib.bash"

mkdir -p "$T/metrics"
M=$T/metrics/certsync.prom
write_conf "metrics_file = $M
socket_mode = 0640"
start_agent
[ "$(stat -c '%a %U %F' "$SOCK")" = "640 root socket" ] || fail "socket: $(stat -c '%a %U %F' "$SOCK")"
pass "socket made with socket_mode 0640"

# certsyncctl -c CONFIG: the socket that [agent] socket names ($SOCK, not the
# default path); -s wins over -c; a file that cannot be read is named (and
# the line that does not parse), exit status 2 as for other bad usage.
ctl_raw() {
	set +e
	"$CERTSYNCCTL" "$@" >"$T/stdout" 2>"$T/stderr"
	rc=$?
	set -e
}
ctl_raw -c "$T/certsync.conf" --json status
[ $rc = 1 ] || fail "-c CONFIG status exited $rc: $(cat "$T/stderr")"
[ "$(json "$T/stdout" 'j["pid"]')" = "$agent" ] || fail "-c CONFIG: status from pid $(json "$T/stdout" 'j["pid"]')"
ctl_raw list --config="$T/certsync.conf"
[ $rc = 1 ] && in_out mail || fail "list --config= after the command exited $rc: $(cat "$T/stderr")"
ctl_raw -c "$T/missing.conf" status
[ $rc = 2 ] || fail "-c with a missing file exited $rc"
in_err "certsyncctl: $T/missing.conf: cannot read: No such file or directory"
ctl_raw -c "$T/missing.conf" -s "$SOCK" --json status
[ $rc = 1 ] || fail "-s did not win over -c: exited $rc: $(cat "$T/stderr")"
printf '[agent]\nsocket = %s\nnot a pair\n' "$SOCK" >"$T/bad.conf"
ctl_raw -c "$T/bad.conf" status
[ $rc = 2 ] || fail "-c with a line that does not parse exited $rc"
in_err "certsyncctl: $T/bad.conf:3: "
pass "certsyncctl -c CONFIG reaches the socket the configuration names; -s wins; an unreadable file is named"

# The file follows the state: it ends up showing mail valid (it may first show
# it renewing, when written between the two state saves of the first issuance).
for _ in $(seq 60); do
	grep -q '^certsync_cert_state{name="mail",state="valid"} 1$' "$M" 2>/dev/null && break
	sleep 0.1
done
[ -s "$M" ] || fail "no metrics file 6 s after start"
[ "$(stat -c %a "$M")" = 644 ] || fail "metrics file mode $(stat -c %a "$M")"
if command -v promtool >/dev/null; then
	promtool check metrics <"$M" || fail "promtool rejects the metrics file"
fi
grep -q '^certsync_cert_state{name="mail",state="valid"} 1$' "$M" || fail "metrics file: $(head -30 "$M")"
success() { sed -n 's/^certsync_renewals_total{result="success"} //p' "$M"; }
before=$(success)
expect 0 renew mail --force --wait
for _ in $(seq 40); do [ "$(success)" -gt "$before" ] && break; sleep 0.05; done
[ "$(success)" -gt "$before" ] || fail "metrics file not rewritten after a renewal (success $before -> $(success))"
leftover=$(find "$T/metrics" -name '.*' -type f | head -3)
[ -z "$leftover" ] || fail "temp files in the textfile directory: $leftover"
pass "metrics_file: written at start (0644, promtool-valid) and again within 2 s of a renewal ($before -> $(success))"

# A second agent on the same socket: it runs without one, the first keeps it.
cat >"$T/second.conf" <<CONF
[agent]
state_dir = $T/state2
socket    = $SOCK
CONF
ino=$(stat -c %i "$SOCK")
"$CERTSYNCD" -f -c "$T/second.conf" 2>"$T/second.log" &
second=$!
CS_PIDS+=($second)
wait_for "$T/second.log" "another process is listening there" 10
kill -0 $second || fail "the second agent exited"
expect 1 --json status
[ "$(json "$T/stdout" 'j["pid"]')" = "$agent" ] || fail "the socket answers for pid $(json "$T/stdout" 'j["pid"]'), not $agent"
kill -TERM $second
wait $second || fail "second agent exit status"
[ "$(stat -c %i "$SOCK")" = "$ino" ] || fail "the socket file changed"
expect 1 status
pass "a live socket is never taken over, and the other agent leaves it alone when it stops"

# A crash leaves the socket file behind; the next agent replaces it.
kill -KILL "$agent"
wait "$agent" 2>/dev/null || true
[ -S "$SOCK" ] || fail "no stale socket to test with"
expect 3 status
start_agent "$T/agent2.log" "mail: valid until"
grep -q "status socket $SOCK is stale (nobody listening); replacing it" "$T/agent2.log" ||
	fail "no stale-socket message"
expect 1 --json status
[ "$(json "$T/stdout" 'j["pid"]')" = "$agent" ] || fail "status from the wrong agent"
pass "a stale socket from a killed agent is replaced"

# SIGHUP to a new path: the new one answers, the old one is gone.
NEW=$T/run2/ctl.sock
sed -i "s#^socket .*#socket = $NEW#" "$T/certsync.conf"
kill -HUP "$agent"
wait_for "$T/agent2.log" "status socket now listening on $NEW" 10
for _ in $(seq 40); do [ ! -e "$SOCK" ] && break; sleep 0.05; done
[ ! -e "$SOCK" ] || fail "the old socket is still there after the move"
ctl -s "$NEW" show mail
[ $rc = 0 ] || fail "the new socket does not answer: $(cat "$T/stderr")"
[ "$(stat -c %a "$NEW")" = 640 ] || fail "new socket mode $(stat -c %a "$NEW")"
stop_agent
[ ! -e "$NEW" ] || fail "socket left after stop"
pass "SIGHUP moves the socket (old one removed, new one with the same mode); stop removes it"

rm -f "$M"
set +e
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/once.log"
rc=$?
set -e
[ $rc = 1 ] || fail "--once with a failing cert exited $rc"
[ -s "$M" ] || fail "--once wrote no metrics file"
grep -q '^certsync_cert_state{name="web",state="failed"} 1$' "$M" || fail "--once metrics: $(cat "$M")"
[ ! -e "$NEW" ] || fail "--once made a socket"
pass "--once writes the metrics file and makes no socket"
