#!/usr/bin/env bash
# DANE-TA (issue 21): dane = 2 1 1 publishes the key of the issuer (here the
# local CA), through dane_hook (the operator's program, which calls nsupdate
# with the CERTSYNC_DANE_* details). Leaf keys change at every renewal
# without touching DNS; every message of the DANE-validating sender is
# delivered over verified TLS, none deferred; the verify after each reload
# finds the record matching at depth 1 (the issuer). Needs root, BIND,
# Unbound and Postfix.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/servers.bash"
. "$(dirname "$0")/dns.bash"

cat >"$T/hook.sh" <<'SH'
#!/bin/sh
# certsync's dane_hook: ACTION OWNER RECORD; details in CERTSYNC_* variables.
[ "$CERTSYNC_DANE_ACTION" = "$1" ] && [ "$CERTSYNC_DANE_OWNER" = "$2" ] &&
	[ "$CERTSYNC_DANE_RECORD" = "$3" ] || { echo "argv and environment differ" >&2; exit 3; }
echo "$1 $2 $3 cert=$CERTSYNC_CERT ttl=$CERTSYNC_DANE_TTL" >>"$HOOK_LOG"
case $1 in
add) op="update add $2. $CERTSYNC_DANE_TTL IN TLSA $3" ;;
del) op="update delete $2. IN TLSA $3" ;;
*) exit 2 ;;
esac
printf 'server 127.0.0.1 %s\n%s\nsend\n' "$HOOK_DNS_PORT" "$op" | nsupdate -k "$HOOK_TSIG"
SH
chmod 755 "$T/hook.sh"
DANE_CONF="dane          = 2 1 1
dane_hook     = $T/hook.sh"
. "$(dirname "$0")/dane_agent.bash"

started=$SECONDS
export HOOK_LOG=$T/hook.log
# (the agent passes its environment on to the hook)
dane_setup right
export HOOK_DNS_PORT=$DNS_PORT HOOK_TSIG=$DNS_TSIG
ca_key=$(openssl x509 -in "$T/ca/cacert.pem" -noout -pubkey 2>/dev/null | openssl pkey -pubin -outform DER |
	openssl dgst -sha256 -r | cut -d' ' -f1)
[ -n "$ca_key" ] || { ls "$T/ca" >&2; fail "no CA certificate in $T/ca"; }
spawn_agent
wait_until 30 dane_ok || { cat "$T/stdout" "$T/agent.log" >&2; fail "DANE not ok 30 s after the start"; }
grep -q "^add _25._tcp.mail.example.test 2 1 1 $ca_key cert=mail ttl=$DANE_TTL$" "$HOOK_LOG" ||
	{ cat "$HOOK_LOG" >&2; fail "the hook was not run with the CA's record"; }
tlsa_view _25._tcp.mail.example.test | has -x "2 1 1 $ca_key" || fail "the resolver does not show the CA's record"
pass "dane_hook published the local CA's key (2 1 1) ($((SECONDS - started)) s)"

mail_loop_start
three() { [ "$(renewals)" -ge 3 ] && [ "$(sort -u "$T/keys" | wc -l)" -ge 3 ]; }
wait_until 60 three || { log_tail 40; fail "fewer than 3 renewals with new keys in 60 s"; }
mail_loop_stop
all_verified
[ "$(grep -c . "$HOOK_LOG")" = 1 ] || { cat "$HOOK_LOG" >&2; fail "the hook ran again while only leaf keys changed"; }
pass "$(renewals) renewals, $(sort -u "$T/keys" | wc -l) leaf keys, DNS untouched ($((SECONDS - started)) s)"

ctl show mail
grep -q "last verify .*DANE: TLSA 2 1 1 matches at depth 1" "$T/stdout" || { cat "$T/stdout" >&2; fail "the verify does not say the issuer's record matched"; }
pass "the verify after the reload: $(grep 'last verify' "$T/stdout" | sed 's/^ *//')"
stop_agent
