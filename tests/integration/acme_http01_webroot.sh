#!/usr/bin/env bash
# http-01 with a webroot, as a user runs it: a real Pebble (started here on
# free loopback ports, names resolved to 127.0.0.1 by pebble-challtestsrv)
# validates through a plain web server (python3 http.server) serving the
# webroot on the port Pebble checks. `certsyncd --once` creates the account,
# orders, answers the challenges with token files and deploys the chain; the
# chain verifies against Pebble's root, the token files are gone afterwards,
# and a second --once with the same account key finds the account again.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

start_pebble
mkdir -p "$T/www"
python3 -u -m http.server "$HTTP_PORT" --bind 127.0.0.1 --directory "$T/www" \
	>"$T/www.log" 2>&1 &
CS_PIDS+=($!)
wait_for "$T/www.log" "Serving HTTP" 10

write_conf "challenge = http-01" "webroot   = $T/www"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent.log" ||
	{ cat "$T/agent.log" >&2; fail "certsyncd --once failed"; }
check_deployed
pass "http-01 (webroot): the deployed chain verifies against Pebble's root"

grep -q "GET /.well-known/acme-challenge/" "$T/www.log" ||
	fail "Pebble never fetched a token from the webroot"
[ -z "$(ls -A "$T/www/.well-known/acme-challenge")" ] ||
	fail "token files were left in the webroot: $(ls "$T/www/.well-known/acme-challenge")"
grep -q "account .* (created)" "$T/agent.log" || fail "no account was created"
pass "Pebble fetched the token files; they were removed afterwards"

# Again from scratch but for the account key: it finds the same account.
rm -rf "$T/out/web.crt" "$T/out/web.key" "$T/state/generations" "$T/state/certs"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent2.log" ||
	{ cat "$T/agent2.log" >&2; fail "the second certsyncd --once failed"; }
grep -q "account .* (found)" "$T/agent2.log" || fail "the account was not found again"
check_deployed
pass "a second run finds the account again and issues"
