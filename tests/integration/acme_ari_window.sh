#!/usr/bin/env bash
# ARI (RFC 9773) kept across restarts and followed when the CA moves the
# window: Pebble behind acme_ari_fixture.py, whose answer the test changes
# while the agent runs ($T/window.json), and which writes every renewalInfo
# request and every newOrder in order to $T/seq.log. [agent] ari_interval =
# 1s: the agent asks again 1 s after an answer without Retry-After (or with
# a short one). Checked:
# - --once asks for the window: a window in the future renews nothing, a CA
#   that cannot be reached delays nothing, a window that has begun renews
#   (with replaces, and a line saying the CA asked);
# - the answer is kept in the state (window, explanation, next question)
#   and a restart takes it without asking again: the renewal when the window
#   opens comes with no renewalInfo request between the restart and its order;
# - a window moved into the past makes the running agent renew within one
#   poll interval (plus the order's own time), with replaces.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

export PEBBLE_VA_ALWAYS_VALID=1 # not a test of challenges
# The orders are counted: a badNonce rejection (Pebble refuses 5% of good
# nonces by default) would make one order two newOrder requests.
export PEBBLE_WFE_NONCEREJECT=0
start_pebble
FIX_PORT=$(free_port)
python3 "$(dirname "$0")/acme_ari_fixture.py" "$FIX_PORT" "$T/pebble.pem" "$T/pebble.key" \
	"$PEBBLE_PORT" "$T/pebble-ca.pem" 2031-01-02T04:00:00Z 2031-01-03T04:00:00Z "$T" \
	>"$T/fixture.out" 2>&1 &
CS_PIDS+=($!)
wait_for "$T/fixture.out" listening 10
ACME_DIR=https://127.0.0.1:$FIX_PORT/dir
write_conf "http_listen = 127.0.0.1:$HTTP_PORT"
sed -i 's/^retry_max = 4s$/&\nari_interval = 1s/' "$T/certsync.conf"

iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
# set_window START END RETRY_AFTER|null: what the fixture answers from now on.
set_window() {
	printf '{"start": "%s", "end": "%s", "retry_after": %s}\n' "$(iso "$1")" "$(iso "$2")" "$3" \
		>"$T/window.json.tmp"
	mv "$T/window.json.tmp" "$T/window.json"
}
n_ari() { grep -c '^ari ' "$T/seq.log" || true; }
n_orders() { grep -c '^order ' "$T/seq.log" || true; }
b64url() { xxd -r -p | base64 -w0 | tr '+/' '-_' | tr -d '='; }
# certid_of PEM: the RFC 9773 certID of the leaf, from openssl's view of it.
certid_of() {
	local aki serial
	aki=$(openssl x509 -in "$1" -noout -ext authorityKeyIdentifier |
		sed -n 's/^ *\(keyid:\)\{0,1\}\([0-9A-F:]\{20,\}\).*/\2/p' | tr -d ':')
	serial=$(openssl x509 -in "$1" -noout -serial | cut -d= -f2)
	[ $((${#serial} % 2)) = 0 ] || serial=0$serial
	case $serial in [89A-F]*) serial=00$serial ;; esac
	echo "$(printf %s "$aki" | b64url).$(printf %s "$serial" | b64url)"
}
# last_order_replaces PEM: the last newOrder replaces that leaf.
last_order_replaces() {
	local id order
	id=$(certid_of "$1")
	order=$(grep '^order ' "$T/seq.log" | tail -1)
	grep -q "\"replaces\": *\"$id\"" <<<"$order" || fail "the order does not replace $id: $order"
}
once() {
	"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/$1.log" ||
		{ cat "$T/$1.log" >&2; fail "certsyncd --once ($1) failed"; }
}

# 1. The first certificate; the ARI answer after the deploy is kept in the state.
set_window "$(date -d 2031-01-02T04:00:00Z +%s)" "$(date -d 2031-01-03T04:00:00Z +%s)" 1
once once1
check_deployed
[ "$(n_orders)" = 1 ] || fail "$(n_orders) orders for the first certificate"
[ "$(n_ari)" -ge 1 ] || fail "no renewalInfo request after the deploy"
python3 - "$T/state/certs/web.json" "$(date -d 2031-01-02T04:00:00Z +%s)" "$(date -d 2031-01-03T04:00:00Z +%s)" <<'PY' || fail "the state keeps no ARI answer: $(cat "$T/state/certs/web.json")"
import json, sys
a = json.load(open(sys.argv[1]))["ari"]
assert a["explanation"] == "https://ca.example/ari", a
assert a["start"] == int(sys.argv[2]) and a["end"] == int(sys.argv[3]), a
assert a["next"] > 0 and a["asked"] > 0 and a["sha256"], a
PY
pass "the ARI answer (window, explanation, next question) is kept in the state"

# 2. --once asks again (the kept answer said 1 s) and renews nothing for a window in 2031.
sleep 2
a0=$(n_ari)
once once2
[ "$(n_ari)" -gt "$a0" ] || fail "--once did not ask for the renewal window"
[ "$(n_orders)" = 1 ] || fail "--once renewed for a window in the future"
pass "--once asks for the window, and a window in the future renews nothing"

# 2b. A CA that cannot be reached: --once warns, decides without the window, quickly.
sleep 2
cp "$T/certsync.conf" "$T/certsync.conf.good"
sed -i "s|^directory = .*|directory = https://127.0.0.1:$(free_port)/dir|" "$T/certsync.conf"
s0=$(date +%s)
timeout 60 "$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/once2b.log" ||
	{ cat "$T/once2b.log" >&2; fail "certsyncd --once failed (or hung) when the CA could not be reached for ARI"; }
s1=$(date +%s)
mv "$T/certsync.conf.good" "$T/certsync.conf"
grep -q "web: cannot get the renewal window from issuer pebble" "$T/once2b.log" ||
	{ cat "$T/once2b.log" >&2; fail "no warning about the renewal window"; }
[ $((s1 - s0)) -le 10 ] || fail "--once took $((s1 - s0)) s with the CA unreachable"
[ "$(n_orders)" = 1 ] || fail "--once renewed when the CA could not be reached"
pass "--once with the CA unreachable warns and ends in $((s1 - s0)) s, renewing nothing"

# 3. A window that has begun: --once renews, with replaces, and says the CA asked.
cp "$T/out/leaf.pem" "$T/leaf1.pem"
sleep 2 # the answer of once2 said: ask again in 1 s
now=$(date +%s)
set_window $((now - 1)) $((now + 3600)) 1
once once3
[ "$(n_orders)" = 2 ] || fail "--once did not renew for a window that has begun ($(n_orders) orders)"
grep -q "web: renewing: the CA asked for it (ARI window since .*; see https://ca.example/ari)" \
	"$T/once3.log" || { cat "$T/once3.log" >&2; fail "no line saying the CA asked for the renewal"; }
last_order_replaces "$T/leaf1.pem"
check_deployed
pass "--once renews a certificate whose ARI window has begun, with replaces"

# 4. A restart between the answer and the window keeps the window.
now=$(date +%s)
W4=$((now + 15))
set_window $W4 $((W4 + 2)) 3600
spawn_agent
wait_for "$T/agent.log" "web: the issuer suggests renewing between $(iso $W4 | sed 's/T/ /;s/Z/ UTC/')" 20
stop_agent
cp "$T/out/web.crt" "$T/web2.crt"
openssl x509 -in "$T/web2.crt" -out "$T/leaf2.pem"
echo "restart" >>"$T/seq.log"
[ "$(date +%s)" -lt "$W4" ] || fail "too slow: the window opened before the restart"
spawn_agent "$T/agent2.log"
wait_for "$T/agent2.log" "web: renewal window .* kept from the issuer's answer" 10
# What the new leaf will be told after the renewal: the same window, no Retry-After.
set_window $W4 $((W4 + 2)) null
wait_for "$T/agent2.log" "web: renewed: serial" 60
[ "$(date +%s)" -ge "$W4" ] || fail "renewed before the window opened"
# Nothing asked between the restart and the renewal's order.
between=$(sed -n '/^restart$/,/^order /p' "$T/seq.log" | grep -c '^ari ' || true)
[ "$between" = 0 ] || { cat "$T/seq.log" >&2; fail "$between renewalInfo request(s) between the restart and the order"; }
sed -n '/^restart$/,$p' "$T/seq.log" | has '^order ' || fail "no order after the restart"
last_order_replaces "$T/leaf2.pem"
pass "a restart keeps the window: renewed when it opened, no renewalInfo request before the order"

# 5. The running agent, asking every second (the answer after the deploy had
# no Retry-After): the CA moves the window into the past.
renewed() { grep -c 'web: renewed: serial' "$T/agent2.log" || true; }
ari_over() { [ "$(n_ari)" -gt "$1" ]; }
renewed_over() { [ "$(renewed)" -gt "$1" ]; }
sleep 3 # the new leaf has been in place for a while (leaf_since)
o0=$(n_orders)
r0=$(renewed)
a0=$(n_ari)
wait_until 10 ari_over $((a0 + 1)) || fail "the running agent does not ask again every second"
[ "$(n_orders)" = "$o0" ] || fail "renewed again without a reason"
cp "$T/out/web.crt" "$T/web3.crt"
openssl x509 -in "$T/web3.crt" -out "$T/leaf3.pem"
now=$(date +%s)
set_window $((now - 1)) $((now + 3600)) null
t0=$(date +%s)
wait_until 10 grep -q "web: renewing: the CA asked for it" "$T/agent2.log" ||
	{ tail -20 "$T/agent2.log" >&2; fail "the running agent did not follow the window moved into the past"; }
t1=$(date +%s)
wait_until 30 renewed_over "$r0" ||
	fail "the running agent did not renew after the window moved into the past"
[ $((t1 - t0)) -le 4 ] || fail "the CA's request was followed after $((t1 - t0)) s (ari_interval 1s)"
[ "$(n_orders)" = $((o0 + 1)) ] || fail "$(($(n_orders) - o0)) orders for one request of the CA"
last_order_replaces "$T/leaf3.pem"
sleep 3
[ "$(n_orders)" = $((o0 + 1)) ] || fail "renewed again: the window given for the old leaf was followed for the new one"
stop_agent
pass "a window moved into the past renews the running agent within a poll interval, once, with replaces"
