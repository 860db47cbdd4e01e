#!/usr/bin/env bash
# Issue 20: a client certificate from an ACME CA is warned about (Let's
# Encrypt no longer puts clientAuth in its certificates) by --check-config,
# at start and in `certsyncctl show` (a warning line, "warning" in --json);
# a must-staple request is refused by --check-config with file, line, key
# and reason.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out" "$T/relay"
conf_head "" >"$T/certsync.conf"
cat >>"$T/certsync.conf" <<CONF

[issuer "le"]
type      = acme
directory = https://127.0.0.1:9/dir
webroot   = $T/www

[clientcerts "relay"]
dir = $T/relay
map = $T/relay.map

[cert "client"]
issuer = le
names  = client.example.test
usage  = client
bundle = $T/out/client.pem

[cert "fed"]
issuer = le
names  = fed.example.test
bundle = $T/relay/fed.pem

[cert "mail"]
issuer = local
names  = mail.example.test
usage  = client
bundle = $T/out/mail.pem
CONF
line_client=$(grep -n '^\[cert "client"\]' "$T/certsync.conf" | cut -d: -f1)
line_fed=$(grep -n '^\[cert "fed"\]' "$T/certsync.conf" | cut -d: -f1)

"$CERTSYNCD" --check-config -c "$T/certsync.conf" >"$T/check.out" 2>"$T/check.err" ||
	{ cat "$T/check.err" >&2; fail "--check-config refused a client certificate from ACME"; }
grep -q "^warning: $T/certsync.conf:$line_client: \[cert \"client\"\]: usage = client, but issuer le is an ACME CA: Let's Encrypt no longer puts the clientAuth extended key usage in its certificates" "$T/check.err" ||
	fail "no warning for usage = client: $(cat "$T/check.err")"
grep -q "^warning: $T/certsync.conf:$line_fed: \[cert \"fed\"\]: its certificate is in the dir of \[clientcerts \"relay\"\], but issuer le is an ACME CA" "$T/check.err" ||
	fail "no warning for a cert feeding [clientcerts]: $(cat "$T/check.err")"
[ "$(grep -c '^warning:' "$T/check.err")" = 2 ] || fail "warnings beyond the two: $(cat "$T/check.err")"
pass "--check-config warns about both client certificates from ACME, not the local CA's"

spawn_agent
# show exits 1 for a cert in a bad state (this one cannot be issued: its CA
# is unreachable), so the answer is waited for, not the exit status.
shown() { "$CERTSYNCCTL" -s "$SOCK" show client >"$T/show.out" 2>&1; grep -q "^  issuer " "$T/show.out"; }
wait_until 10 shown || { cat "$T/agent.log" "$T/show.out" >&2; fail "show client"; }
grep -q "usage = client, but issuer le is an ACME CA" "$T/agent.log" || fail "no warning at start"
grep -qE "^  warning +usage = client, but issuer le is an ACME CA: Let's Encrypt no longer puts the clientAuth" "$T/show.out" ||
	fail "show has no warning line: $(cat "$T/show.out")"
"$CERTSYNCCTL" -s "$SOCK" --json show fed >"$T/fed.json" 2>&1 || true
python3 -c 'import json, sys; w = json.load(open(sys.argv[1]))["cert"]["warning"]
sys.exit(0 if w and "clientAuth" in w else 1)' "$T/fed.json" ||
	fail "show --json has no warning for fed: $(cat "$T/fed.json")"
wait_until 10 "$CERTSYNCCTL" -s "$SOCK" show mail >"$T/mail.out" 2>&1 || true
grep -q "warning" "$T/mail.out" && fail "the local CA's client certificate is warned about: $(cat "$T/mail.out")"
"$CERTSYNCCTL" -s "$SOCK" --json show mail >"$T/mail.json" 2>&1 || true
grep -q '"warning": *null' "$T/mail.json" || fail "show --json: warning is not null for mail: $(cat "$T/mail.json")"
pass "show gives the warning (a line, \"warning\" in --json), and none for the local CA"
kill -TERM "$agent"
wait "$agent" || true

echo "must_staple = yes" >>"$T/certsync.conf"
n=$(wc -l <"$T/certsync.conf")
"$CERTSYNCD" --check-config -c "$T/certsync.conf" >"$T/check.out" 2>"$T/check.err" &&
	fail "--check-config accepted must_staple = yes"
grep -q "^$T/certsync.conf:$n: \[cert \"mail\"\] must_staple: refused: OCSP must-staple is no longer possible: the CAs stopped OCSP" "$T/check.err" ||
	fail "must_staple is not refused with its reason: $(cat "$T/check.err")"
grep -q "unknown key" "$T/check.err" && fail "must_staple is reported as an unknown key"
pass "must_staple = yes refused with file, line, key and reason"
