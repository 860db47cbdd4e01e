#!/usr/bin/env bash
# certsyncctl rehash drives the [capath] sync of the running agent: a CAfile
# removed behind the agent's back (it is not in a watched directory) is
# written again by `rehash trust` and by `rehash` (all sections); an unknown
# section is refused (exit 1); a socket_group member may not rehash; a file
# the capath skips shows up as a problem in `status` (exit 1) and in the
# certsync_capath_problems metric.
. "$(dirname "$0")/ctlsock_lib.bash"

mkdir -p "$T/out" "$T/capath"
{ std_conf; conf_capath; } >"$T/certsync.conf"
spawn_agent
wait_for "$T/agent.log" "status socket listening on $SOCK" 10
wait_for "$T/agent.log" "mail: renewed: serial" 10
for _ in $(seq 100); do [ -s "$T/CAfile.pem" ] && break; sleep 0.05; done
[ -s "$T/CAfile.pem" ] || fail "no CAfile to begin with"
expect 0 status
pass "agent with a capath: status 0, CAfile written"

rm "$T/CAfile.pem"
sleep 0.3
[ ! -e "$T/CAfile.pem" ] || fail "the CAfile came back without a rehash: the test proves nothing"
expect 0 rehash trust
in_out "rehash trust: requested"
for _ in $(seq 100); do [ -s "$T/CAfile.pem" ] && break; sleep 0.05; done
[ -s "$T/CAfile.pem" ] || fail "rehash trust did not write the CAfile again"
openssl verify -CAfile "$T/CAfile.pem" "$T/out/mail.pem" >/dev/null || fail "the new CAfile does not verify mail"
rm "$T/CAfile.pem"
expect 0 --json rehash
[ "$(json "$T/stdout" 'j["ok"]')" = True ] || fail "rehash --json: $(cat "$T/stdout")"
for _ in $(seq 100); do [ -s "$T/CAfile.pem" ] && break; sleep 0.05; done
[ -s "$T/CAfile.pem" ] || fail "rehash (all) did not write the CAfile again"
pass "rehash NAME and rehash (all) run a full pass: the removed CAfile is written again"

expect 1 rehash nosuch
in_err 'no \[capath\] or \[clientcerts\] "nosuch"'
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && getent group adm >/dev/null; then
	sed -i "s#^socket .*#&\nsocket_mode = 0666\nsocket_group = adm#" "$T/certsync.conf"
	kill -HUP "$agent"
	wait_for "$T/agent.log" "configuration reloaded" 10
	for _ in $(seq 40); do [ "$(stat -c %a "$SOCK")" = 666 ] && break; sleep 0.05; done
	chmod 0711 "$T"
	set +e
	setpriv --reuid=65534 --regid=65534 --groups="$(getent group adm | cut -d: -f3)" \
		"$CERTSYNCCTL" -s "$SOCK" rehash trust >"$T/stdout" 2>"$T/stderr"
	rc=$?
	set -e
	[ $rc = 1 ] || fail "a reader's rehash exited $rc"
	in_err "permission denied"
fi
pass "unknown section refused (exit 1); a reader may not rehash"

# A file the capath cannot use: a problem in status and in the metrics.
echo "not a certificate" >"$T/capath/junk.pem"
for _ in $(seq 60); do
	ctl status
	grep -q "problem: capath trust" "$T/stdout" && break
	sleep 0.1
done
[ $rc = 1 ] || { cat "$T/stdout"; fail "status with a capath problem exited $rc"; }
in_out "problem: capath trust: junk.pem: "
expect 0 metrics
grep -Eqx 'certsync_capath_problems [1-9][0-9]*' "$T/stdout" || fail "no certsync_capath_problems sample"
stop_agent
pass "a skipped file in the capath: status names it (exit 1), certsync_capath_problems counts it"
