#!/usr/bin/env bash
# The network process killed (SIGKILL) in the middle of orders, 20 times (as
# soon as an order is pending at the CA, or a few ms later): the
# agent keeps running, starts netproc again each time and sends it the
# requests that were in flight, which go on with the orders the dead one
# created (not new ones); in the end every certificate is issued anew
# (a new serial for each, after the last kill), no output is ever torn (each
# round every fullchain verifies and matches its key), and the restarts are
# counted in the metrics and the status. Every record a dns_hook added is
# deleted again, by netproc or, for a netproc killed before it could, by the
# parent.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

start_pebble
# dns-01 through a hook that takes 0.25 s to add a record, as a DNS provider's
# API would: orders last long enough for a kill to land inside them.
cat >"$T/dns-hook" <<HOOK
#!/bin/sh
case "\$1" in
add) path=set-txt; sleep 0.25 ;;
del) path=clear-txt ;;
*) exit 2 ;;
esac
echo "\$1 \$2 \$3" >>"$T/hook.log"
exec curl -sf -X POST -d "{\"host\":\"\$2.\",\"value\":\"\$3\"}" "http://127.0.0.1:$CTS_MGMT/\$path" >/dev/null
HOOK
chmod 755 "$T/dns-hook"
write_conf "challenge = dns-01" "dns_hook  = $T/dns-hook"
add_certs one two
sed -i "s|^socket .*|&\nmetrics_file = $T/metrics.prom|" "$T/certsync.conf"
SOCK=$T/certsync.sock
spawn_agent
until_count ": renewed: serial" 3 90

idle() { ctl list; [ "$rc" = 0 ] && ! grep -q renewing "$T/stdout"; }
serial() { openssl x509 -in "$T/out/$1.crt" -noout -serial; }
# intact [match]: every fullchain is whole and verifies, every key parses; with
# "match" (only when nothing renews: key and fullchain are two files, replaced
# one after the other) each key also matches its certificate.
intact() {
	local n leaf chain
	for n in web one two; do
		openssl pkey -in "$T/out/$n.key" -noout 2>/dev/null || fail "$n.key is not a whole key"
		leaf=$T/out/$n.leaf; chain=$T/out/$n.chain
		openssl x509 -in "$T/out/$n.crt" -out "$leaf" 2>/dev/null || fail "$n.crt is not a certificate"
		awk 'n>0 {print} /END CERTIFICATE/ {n++}' "$T/out/$n.crt" >"$chain"
		openssl verify -CAfile "$T/pebble-root.pem" -untrusted "$chain" "$leaf" >/dev/null 2>&1 ||
			fail "$n.crt does not verify"
		[ "${1:-}" != match ] ||
			[ "$(openssl x509 -in "$leaf" -noout -pubkey | openssl sha256)" = \
				"$(openssl pkey -in "$T/out/$n.key" -pubout 2>/dev/null | openssl sha256)" ] ||
			fail "$n.key does not match $n.crt"
	done
}
wait_until 30 idle || fail "the first renewals do not end"
intact match
kills=0
more_pending() { [ "$(count "is pending")" -gt "$pending" ]; }
for round in $(seq 1 20); do
	# Each round on idle certs, so that the forced renewal starts three orders
	# (a slow round's renewals, resumed by the new netproc, may still run).
	wait_until 60 idle || { log_tail 40; fail "round $round: renewals still running after 60 s"; }
	issued=$(count "certificate issued")
	pending=$(count "is pending")
	ctl renew all --force # a cert still renewing from the round before answers "busy"
	# Into the orders: as soon as one is pending at the CA, or up to 0.2 s later.
	wait_until 10 more_pending || { log_tail; fail "no order started"; }
	sleep "0.$((RANDOM % 3))"
	np=$(sed -n 's/.*netproc: started (pid \([0-9]*\)).*/\1/p' "$T/agent.log" | tail -n 1)
	kill -9 "$np" 2>/dev/null && kills=$((kills + 1))
	until_count "netproc: ready" $((round + 1)) 60
	kill -0 "$agent" || fail "the agent died"
	# The new netproc goes on with the orders (and so proves itself).
	until_count "certificate issued" $((issued + 1)) 60
	intact
done
[ "$kills" = 20 ] || fail "only $kills kills hit a running netproc"
hit=$(grep -c "killed by signal 9; starting it again ([1-9][0-9]* requests in flight" "$T/agent.log" || true)
[ "$hit" -ge 15 ] || fail "only $hit of the 20 kills came with requests in flight"
resumed=$(count "resuming order")
[ "$resumed" -ge 5 ] || fail "only $resumed orders were resumed by the next netproc (not ordered anew)"
pass "20 SIGKILLs of netproc ($hit with orders in flight, $resumed orders resumed): the agent runs on, no output torn"

# Once nothing renews any more (a renewal failed by the kills backs off and is tried again):
wait_until 120 idle || { log_tail 40; fail "renewals still running 120 s after the last kill: $(cat "$T/stdout")"; }
before="$(serial web) $(serial one) $(serial two)"
ctl renew all --force --wait --timeout 120
[ "$rc" = 0 ] || { log_tail 40; fail "the last renewal did not complete: $(cat "$T/stdout" "$T/stderr")"; }
after="$(serial web) $(serial one) $(serial two)"
for i in 1 2 3; do
	[ "$(echo "$before" | cut -d' ' -f$i)" != "$(echo "$after" | cut -d' ' -f$i)" ] ||
		fail "certificate $i was not issued anew after the kills"
done
intact match
pass "every certificate is issued anew after the kills"

wait_until 10 grep -q "^certsync_netproc_restarts_total 20" "$T/metrics.prom" ||
	fail "metrics: $(grep netproc "$T/metrics.prom")"
ctl status
grep -q "netproc: running, restarted 20 times, 0 protocol violations" "$T/stdout" ||
	fail "status: $(cat "$T/stdout")"
stop_agent
pass "the 20 restarts are counted in metrics and status"

left=$(comm -23 <(sed -n 's/^add //p' "$T/hook.log" | sort -u) <(sed -n 's/^del //p' "$T/hook.log" | sort -u))
[ -z "$left" ] || fail "records added and never deleted: $left"
pass "every record added ($(grep -c '^add' "$T/hook.log")) was deleted again"
