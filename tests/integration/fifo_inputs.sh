#!/usr/bin/env bash
# FIFOs (and links) where the agent reads files others may put there: a
# conf.d drop-in and a [clientcerts] directory. Nothing blocks: --check-config
# and SIGHUP refuse the drop-in by name, the running agent keeps its old
# configuration and still stops on SIGTERM, and a --once pass leaves the FIFO
# and the link out of the client map, naming them, and maps the real file.
. "$(dirname "$0")/lib.bash"

P=$T/pki
bash "$CS_SOURCE_DIR/tests/mkpki.sh" "$P" ec >/dev/null
mkdir -p "$T/conf.d" "$T/cc" "$T/out"
std_conf "include   = conf.d/*.conf" >"$T/certsync.conf"
cat >>"$T/certsync.conf" <<CONF

[clientcerts "relay"]
dir      = $T/cc
map      = $T/relay_clientcerts
map_type = texthash
CONF
cp "$P/leaf.pem" "$T/cc/good.pem"
mkfifo "$T/cc/fifo.pem"
ln -s "$P/root.pem" "$T/cc/link.pem"

# 1. A --once pass: the FIFO and the link are named and left out.
set +e
timeout 60 "$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/once.log"
rc=$?
set -e
[ $rc -ne 124 ] || fail "--once blocked on the FIFO in the clientcerts directory"
[ $rc -eq 0 ] || fail "--once exited $rc: $(cat "$T/once.log")"
grep -qF "clientcerts relay: left $T/cc/fifo.pem out of $T/relay_clientcerts: unreadable: not a regular file" "$T/once.log" ||
	fail "the FIFO is not named: $(cat "$T/once.log")"
grep -qF "clientcerts relay: left $T/cc/link.pem out of $T/relay_clientcerts: unreadable: is a symbolic link; not followed" "$T/once.log" ||
	fail "the link is not named: $(cat "$T/once.log")"
fp=$(openssl x509 -in "$P/leaf.pem" -noout -fingerprint -sha256 | cut -d= -f2)
[ "$(grep -vc '^#' "$T/relay_clientcerts")" = 1 ] && grep -q "^$fp " "$T/relay_clientcerts" ||
	fail "the map does not hold exactly the regular file: $(cat "$T/relay_clientcerts")"
pass "clientcerts: a FIFO and a link are refused by name, the regular file is mapped"

# 2. --check-config with a FIFO drop-in: refused by name at once.
mkfifo "$T/conf.d/10-fifo.conf"
set +e
timeout 20 "$CERTSYNCD" --check-config -c "$T/certsync.conf" >"$T/check.out" 2>&1
rc=$?
set -e
[ $rc -ne 124 ] || fail "--check-config blocked on a FIFO drop-in"
[ $rc -eq 2 ] || fail "--check-config exited $rc: $(cat "$T/check.out")"
grep -qF "$T/conf.d/10-fifo.conf: not a regular file (a FIFO, device, socket or directory); refused" "$T/check.out" ||
	fail "the FIFO drop-in is not named: $(cat "$T/check.out")"
rm "$T/conf.d/10-fifo.conf"
ln -s "$T/certsync.conf" "$T/conf.d/20-link.conf"
set +e
timeout 20 "$CERTSYNCD" --check-config -c "$T/certsync.conf" >"$T/check.out" 2>&1
rc=$?
set -e
[ $rc -eq 2 ] && grep -qF "$T/conf.d/20-link.conf: is a symbolic link; a drop-in must be a regular file" "$T/check.out" ||
	fail "a symlinked drop-in: exit $rc, $(cat "$T/check.out")"
rm "$T/conf.d/20-link.conf"
pass "--check-config refuses a FIFO drop-in and a symlinked one by name, without blocking"

# 3. The running agent: SIGHUP with a FIFO drop-in keeps the old configuration.
spawn_agent
wait_for "$T/agent.log" "started"
mkfifo "$T/conf.d/10-fifo.conf"
kill -HUP $agent
wait_for "$T/agent.log" "keeping the previous one" 10
grep -qF "$T/conf.d/10-fifo.conf: not a regular file" "$T/agent.log" || fail "SIGHUP: the FIFO is not named"
kill -TERM $agent
for _ in $(seq 100); do kill -0 $agent 2>/dev/null || break; sleep 0.05; done
kill -0 $agent 2>/dev/null && fail "the agent did not stop within 5 s of SIGTERM"
wait $agent || fail "the agent exited non-zero after SIGTERM"
pass "SIGHUP with a FIFO drop-in: refused, previous configuration kept, SIGTERM still stops the agent"
