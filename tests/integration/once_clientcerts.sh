#!/usr/bin/env bash
# certsyncd --once that issues a client certificate into a [clientcerts]
# directory leaves the map with that certificate's fingerprint when it exits
# (the map was built by the pass's full scan, possibly before the deploy:
# issue 15 item 13). The fingerprint is the one `openssl x509 -fingerprint`
# gives, the map is rebuilt with postmap, and a second pass changes nothing.
. "$(dirname "$0")/lib.bash"
command -v postmap >/dev/null || { echo "postmap is not installed"; exit 77; }

mkdir -p "$T/clients" "$T/postfix"
: >"$T/postfix/main.cf" # postmap reads its configuration
conf_head >"$T/certsync.conf"
cat >>"$T/certsync.conf" <<CONF

[cert "relay-a"]
issuer = local
names  = relay-a.example.test
usage  = client
bundle = $T/clients/relay-a.pem

[cert "relay-b"]
issuer = local
names  = relay-b.example.test
usage  = client
bundle = $T/clients/relay-b.pem

[clientcerts "relay"]
dir    = $T/clients
map    = $T/relay_clientcerts
digest = sha256
CONF
# postmap reads a main.cf: this test's own, not the host's.
export MAIL_CONFIG=$T/postfix

"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/once.log" ||
	{ cat "$T/once.log" >&2; fail "--once failed"; }
for c in relay-a relay-b; do
	fp=$(openssl x509 -in "$T/clients/$c.pem" -noout -fingerprint -sha256 | cut -d= -f2)
	grep -q "^$fp " "$T/relay_clientcerts" ||
		{ cat "$T/relay_clientcerts" >&2; fail "the map lacks $c ($fp) after the pass that issued it"; }
	postmap -q "$fp" "hash:$T/relay_clientcerts" >/dev/null ||
		fail "postmap -q does not find $c in the built map"
done
pass "the pass that issued two client certificates left both in the map, built"

cp "$T/relay_clientcerts" "$T/map.before"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/once2.log" ||
	{ cat "$T/once2.log" >&2; fail "second --once failed"; }
cmp -s "$T/relay_clientcerts" "$T/map.before" || fail "a pass with nothing to do changed the map"
pass "a second pass leaves the map as it is"
