#!/usr/bin/env bash
# http-01 with the built-in responder (http_listen): no web server at all;
# certsyncd --once listens on the port Pebble validates and answers the
# tokens; a running agent stops listening once the order is done. The chain verifies against
# Pebble's root. A port that is taken makes the issuance fail with a message
# naming http_listen, and --once exit non-zero.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

start_pebble
write_conf "challenge   = http-01" "http_listen = 127.0.0.1:$HTTP_PORT"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent.log" ||
	{ cat "$T/agent.log" >&2; fail "certsyncd --once failed"; }
check_deployed
grep -q "http-01 challenge for a.example.test" "$T/agent.log" || fail "no http-01 challenge in the log"
pass "http-01 (built-in responder): the deployed chain verifies against Pebble's root"

# The running agent (-f) listens only while an order is in progress.
rm -rf "$T/out" "$T/state/generations" "$T/state/certs"
mkdir -p "$T/out"
"$CERTSYNCD" -f -c "$T/certsync.conf" 2>"$T/agent-f.log" &
agent=$!
CS_PIDS+=($agent)
wait_for "$T/agent-f.log" "web: renewed: serial" 20
sleep 0.2
kill -0 "$agent" || fail "the agent exited"
if (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null; then
	fail "the responder still listens on $HTTP_PORT after the order"
fi
kill "$agent"
wait "$agent" 2>/dev/null || true
check_deployed
pass "the running agent stops listening on http_listen once the order is done"

# The port is taken by someone else: a clear error, no certificate.
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $HTTP_PORT)); s.listen(); print('bound', flush=True); time.sleep(60)" \
	>"$T/squat.log" 2>&1 &
CS_PIDS+=($!)
wait_for "$T/squat.log" bound 10
rm -rf "$T/out" "$T/state/generations" "$T/state/certs"
mkdir -p "$T/out"
if "$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent2.log"; then
	fail "--once succeeded although the responder could not listen"
fi
grep -q "http_listen 127.0.0.1:$HTTP_PORT: cannot listen: address already in use" "$T/agent2.log" ||
	{ cat "$T/agent2.log" >&2; fail "the error does not say why the responder could not listen"; }
[ ! -e "$T/out/web.crt" ] || fail "a certificate was deployed anyway"
pass "a taken http_listen port fails the issuance with the reason"
