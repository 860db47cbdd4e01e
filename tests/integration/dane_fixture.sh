#!/usr/bin/env bash
# The DANE fixture itself (dns.bash, start_receiver and start_sender of
# servers.bash), before any test of the agent relies on it: a receiving
# Postfix serves a static self-signed certificate for mail.example.test; its
# "3 1 1" TLSA record, published by a TSIG-signed dynamic update in the
# DNSSEC-signed zone, makes the DANE-validating sender deliver with
# "Verified TLS connection established"; a wrong record in its place makes
# the next message deferred ("Server certificate not verified"), and the
# right one again lets the deferred message go; an update signed with the
# wrong TSIG key is refused and changes nothing. Needs root, BIND, Unbound
# and Postfix.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/servers.bash"
. "$(dirname "$0")/dns.bash"

dns_need
command -v postfix >/dev/null || { echo "SKIP: postfix is not installed"; exit 77; }
started=$SECONDS
OWNER=_25._tcp.mail.example.test
TTL=2 # of the TLSA records

mkdir -m 700 "$T/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=mail.example.test -addext subjectAltName=DNS:mail.example.test \
	-keyout "$T/tls/key.pem" -out "$T/tls/cert.pem" 2>/dev/null
cat "$T/tls/key.pem" "$T/tls/cert.pem" >"$T/tls/bundle.pem"
run 0 "$CERTSYNCCTL" tlsa "$T/tls/cert.pem"
RIGHT=$(awk '$3 == "TLSA" { print $4, $5, $6, $7 }' "$T/stdout")
# The same digest by openssl: SHA-256 of the certificate's public key (DER).
spki=$(openssl x509 -in "$T/tls/cert.pem" -noout -pubkey | openssl pkey -pubin -outform DER |
	openssl dgst -sha256 -r | cut -d' ' -f1)
[ "$RIGHT" = "3 1 1 $spki" ] || fail "certsyncctl tlsa printed '$RIGHT', openssl's digest is $spki"
WRONG="3 1 1 $(printf 'not the key' | openssl dgst -sha256 -r | cut -d' ' -f1)"

start_dns
start_unbound
start_receiver "$T/tls/bundle.pem"
start_sender
pass "named on 127.0.0.1:$DNS_PORT, Unbound on $RESOLVER:53, receiver on $RECV_ADDR:25, sender up ($((SECONDS - started)) s)"

# view_is RECORD: whether the resolver answers exactly RECORD at $OWNER,
# validated.
view_is() {
	local v
	v=$(tlsa_view "$OWNER") || return 1
	[ "$(sed 1d <<<"$v")" = "$1" ]
}
# stats_reach SENT VERIFIED DEFERRED: whether sender_stats reached them.
stats_reach() {
	local s v d
	read -r s v d < <(sender_stats)
	[ "$s" -ge "$1" ] && [ "$v" -ge "$2" ] && [ "$d" -ge "$3" ]
}
sender_log() { echo "--- sender's log" >&2; tail -n 20 "$SENDER_DIR/maillog" >&2; }

# The right record: delivered over verified TLS.
dns_update add "$OWNER" "$TTL" "$RIGHT" || fail "the TSIG-signed update was refused"
wait_until 10 view_is "$RIGHT" || { tlsa_view "$OWNER" >&2; fail "the resolver does not show the published record validated"; }
send_mail 1
wait_until 20 stats_reach 1 0 0 || { sender_log; fail "message 1 not delivered: $(sender_stats)"; }
[ "$(sender_stats)" = "1 1 0" ] || { sender_log; fail "message 1: sent verified deferred = $(sender_stats), expected 1 1 0"; }
grep -q "Verified TLS connection established to mail.example.test\[$RECV_ADDR\]:25" "$SENDER_DIR/maillog" ||
	{ sender_log; fail "no verified TLS connection to mail.example.test[$RECV_ADDR]:25"; }
pass "TLSA $RIGHT published: message 1 delivered over verified TLS ($((SECONDS - started)) s)"

# A wrong record in its place: the next message is deferred.
dns_update set "$OWNER" "$TTL" "$WRONG" || fail "the update to a wrong record was refused"
wait_until 10 view_is "$WRONG" || { tlsa_view "$OWNER" >&2; fail "the resolver does not show the wrong record"; }
# Each smtp process of the sender keeps the RRset it fetched for TTL + 1 s
# (Postfix's own TLSA cache; its clock counts whole seconds).
sleep $((TTL + 2))
send_mail 2
wait_until 20 stats_reach 1 1 1 || { sender_log; fail "message 2 not deferred: $(sender_stats)"; }
# (the sender tries it again every second or two: more deferrals follow)
read -r sent verified deferred < <(sender_stats)
[ "$sent $verified" = "1 1" ] || { sender_log; fail "message 2: sent verified deferred = $(sender_stats), expected 1 1 and deferrals"; }
grep -q "status=deferred (Server certificate not verified)" "$SENDER_DIR/maillog" ||
	{ sender_log; fail "message 2 deferred for another reason"; }
pass "a wrong TLSA record: message 2 deferred, server certificate not verified ($((SECONDS - started)) s)"

# An update signed with the wrong key: refused, nothing changes.
if dns_update set "$OWNER" "$TTL" "$RIGHT" "$DNS_TSIG_WRONG" 2>"$T/nsupdate.err"; then
	fail "an update signed with the wrong TSIG key was accepted"
fi
served=$(dig @127.0.0.1 -p "$DNS_PORT" +short +nosplit "$OWNER" TLSA | tr 'A-F' 'a-f')
[ "$served" = "$WRONG" ] || fail "after the refused update named serves '$served'"
pass "an update signed with the wrong TSIG key is refused: $(head -n 1 "$T/nsupdate.err")"

# The right record again: the deferred message goes when the queue is flushed.
dns_update set "$OWNER" "$TTL" "$RIGHT" || fail "the update back to the right record was refused"
wait_until 10 view_is "$RIGHT" || { tlsa_view "$OWNER" >&2; fail "the resolver does not show the right record again"; }
postqueue -c "$SENDER_DIR" -f
wait_until 20 stats_reach 2 2 1 || { sender_log; fail "message 2 not delivered after the fix: $(sender_stats)"; }
read -r sent verified deferred < <(sender_stats)
[ "$sent $verified" = "2 2" ] || { sender_log; fail "at the end: sent verified deferred = $(sender_stats), expected 2 2 and deferrals"; }
[ "$(sender_queued)" = 0 ] || { postqueue -c "$SENDER_DIR" -p >&2; fail "mail left in the sender's queue"; }
pass "the right record again: message 2 delivered over verified TLS after $deferred deferral(s); fixture test took $((SECONDS - started)) s"
