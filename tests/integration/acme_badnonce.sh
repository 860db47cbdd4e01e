#!/usr/bin/env bash
# badNonce retries: Pebble rejects half of all good nonces
# (PEBBLE_WFE_NONCEREJECT=50). Each rejected request is signed again with a
# fresh nonce; three issuances in a row all succeed, and the log shows that
# retries really happened.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

export PEBBLE_WFE_NONCEREJECT=50
start_pebble
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
sed -i 's/^\[agent\]$/[agent]\nlog_level = debug/' "$T/certsync.conf"
for i in 1 2 3; do
	rm -rf "$T/out" "$T/state/generations" "$T/state/certs"
	mkdir -p "$T/out"
	"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent$i.log" ||
		{ cat "$T/agent$i.log" >&2; fail "issuance $i failed"; }
	check_deployed
done
n=$(cat "$T"/agent*.log | grep -c "badNonce from" || true)
[ "$n" -ge 3 ] || fail "only $n badNonce retries in three issuances at 50% rejection"
pass "three issuances succeed while Pebble rejects 50% of nonces ($n badNonce retries)"
