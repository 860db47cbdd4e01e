#!/usr/bin/env bash
# A network process that asks for what no renewal needs is treated as
# compromised: a test build of netproc, told to (CERTSYNC_TEST_NETPROC=
# forbidden), asks the parent to sign an account deactivation in the middle
# of an order. The parent refuses it, logs the violation, kills netproc and
# fails only the request in flight; netproc is started again, the renewal
# is tried again and the certificate is deployed; status and metrics count the
# violation and the restart.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

start_pebble
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
sed -i "s|^socket .*|&\nmetrics_file = $T/metrics.prom|" "$T/certsync.conf"
SOCK=$T/certsync.sock
export CERTSYNC_TEST_NETPROC=forbidden
spawn_agent
until_count "broke the protocol" 1 30
grep -q "netproc (pid [0-9]*) broke the protocol: a signature for a request no renewal makes" "$T/agent.log" ||
	{ log_tail; fail "the violation is not logged with its reason"; }
grep -q "the network process was stopped: it broke the protocol" "$T/agent.log" ||
	{ log_tail; fail "the request in flight was not failed with the reason"; }
pass "a forbidden signature request is refused and logged, and the request in flight fails"

until_count "netproc: started" 2 30
until_count "web: renewed: serial" 1 60
check_deployed
[ "$(count "netproc: started")" = 2 ] || fail "netproc was started $(count "netproc: started") times, not 2"
[ "$(count "netproc (pid [0-9]*) broke the protocol")" = 1 ] || fail "more than one violation: the test order ran again after the restart"
pass "netproc is started again and the certificate is deployed on the next try"

wait_until 10 grep -q "^certsync_netproc_violations_total 1" "$T/metrics.prom" ||
	fail "metrics: $(grep netproc "$T/metrics.prom")"
grep -q "^certsync_netproc_restarts_total 1" "$T/metrics.prom" || fail "metrics: $(grep netproc "$T/metrics.prom")"
ctl status
grep -q "netproc: running, restarted 1 times, 1 protocol violations" "$T/stdout" ||
	fail "status does not show netproc: $(cat "$T/stdout")"
stop_agent
pass "status and metrics count the violation and the restart"
