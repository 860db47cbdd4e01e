#!/usr/bin/env bash
# Privilege separation seen from outside, during a real order (Pebble,
# dns-01; the hook, run by the parent, holds the order open until the test
# has looked): the network process that talks to the CA runs as another user
# than root, with no capability (effective, permitted or bounding), no
# supplementary group, NoNewPrivs 1 and a seccomp filter (Seccomp 2); its
# root is STATE_DIR/netproc; it has no descriptor of a file under the state
# directory or an output directory; and asked (in a test build, through
# CERTSYNC_TEST_NETPROC) to open the account key, a deployed key and
# /etc/shadow, it cannot. The certificate is issued and deployed all the same,
# and the metrics say netproc is up and was never restarted.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

start_pebble
cat >"$T/dns-hook" <<HOOK
#!/bin/sh
case "\$1" in
add) curl -sf -X POST -d "{\"host\":\"\$2.\",\"value\":\"\$3\"}" "http://127.0.0.1:$CTS_MGMT/set-txt" >/dev/null || exit 1
     touch "$T/in-order"
     i=0; while [ ! -e "$T/go" ] && [ \$i -lt 600 ]; do sleep 0.05; i=\$((i+1)); done ;;
del) curl -sf -X POST -d "{\"host\":\"\$2.\"}" "http://127.0.0.1:$CTS_MGMT/clear-txt" >/dev/null ;;
esac
HOOK
chmod 755 "$T/dns-hook"
write_conf "challenge = dns-01" "dns_hook  = $T/dns-hook"
sed -i "s|^socket .*|&\nmetrics_file = $T/metrics.prom|" "$T/certsync.conf"
# An account key and a service key that exist before netproc starts.
mkdir -p "$T/state/acme/pebble" "$T/out"
chmod 700 "$T/state"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/state/acme/pebble/account.key" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/out/old.key" 2>/dev/null
chmod 600 "$T/state/acme/pebble/account.key" "$T/out/old.key"

export CERTSYNC_TEST_NETPROC="open:$T/state/acme/pebble/account.key,open:$T/out/old.key,open:/etc/shadow"
spawn_agent
wait_until 30 test -e "$T/in-order" || { log_tail; fail "the order never reached the dns hook"; }
np=$(sed -n 's/.*netproc: started (pid \([0-9]*\)).*/\1/p' "$T/agent.log" | tail -n 1)
[ -n "$np" ] && [ -d "/proc/$np" ] || { log_tail; fail "no running netproc named in the log"; }
cp "/proc/$np/status" "$T/np.status"
ls -l "/proc/$np/fd/" >"$T/np.fds" 2>&1
root=$(readlink "/proc/$np/root")
touch "$T/go"

field() { awk -v k="$1:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$T/np.status"; }
for u in $(field Uid) $(field Gid); do
	[ "$u" != 0 ] || fail "netproc runs with uid or gid 0: $(field Uid) / $(field Gid)"
done
[ -z "$(field Groups)" ] || fail "netproc has supplementary groups: $(field Groups)"
for c in CapEff CapPrm CapInh CapBnd CapAmb; do
	[ "$(field $c)" = 0000000000000000 ] || fail "netproc's $c is $(field $c), not 0"
done
[ "$(field NoNewPrivs)" = 1 ] || fail "netproc's NoNewPrivs is $(field NoNewPrivs)"
[ "$(field Seccomp)" = 2 ] || fail "netproc's Seccomp is $(field Seccomp), not 2 (filter)"
pass "netproc (pid $np) runs as uid $(field Uid | cut -f1), no capability, NoNewPrivs, seccomp filter"

[ "$root" = "$T/state/netproc" ] || fail "netproc's root is $root, not $T/state/netproc"
if grep -E -- "-> ($T/state|$T/out)" "$T/np.fds" >/dev/null; then
	fail "netproc holds a file under the state or output directory: $(cat "$T/np.fds")"
fi
pass "netproc's root is the state directory's netproc/, and it holds no file of the state or outputs"

until_count "certificate issued" 1 60
until_count "web: renewed: serial" 1 30
check_deployed
for f in "$T/state/acme/pebble/account.key" "$T/out/old.key" /etc/shadow; do
	line=$(grep "netproc test: open:$f: " "$T/agent.log") || { log_tail; fail "netproc did not try $f"; }
	case "$line" in
	*": opened") fail "netproc could open $f" ;;
	esac
done
pass "netproc cannot open the account key, a deployed key or /etc/shadow; the certificate is deployed"

wait_until 10 grep -q "^certsync_netproc_up 1" "$T/metrics.prom" || fail "metrics do not say netproc is up"
grep -q "^certsync_netproc_restarts_total 0" "$T/metrics.prom" || fail "metrics count restarts: $(grep netproc "$T/metrics.prom")"
stop_agent
pass "metrics: netproc up, never restarted"
