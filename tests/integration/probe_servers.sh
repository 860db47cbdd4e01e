#!/usr/bin/env bash
# `certsyncctl probe` against a real Postfix (SMTP STARTTLS) and a real
# Dovecot (IMAP STARTTLS, POP3 STLS, IMAPS), each on a free loopback port:
# what it reports served is what `openssl s_client` sees; after a new bundle
# and a reload, --expect/--wait sees the new certificate, and an old or
# wrong expectation exits 1; --tlsa checks the served chain with DANE.
# Needs root (the servers run as root).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/servers.bash"

P=$T/pki
mkpki2 "$P"
cat "$P/leaf.key" "$P/leaf.pem" "$P/int.pem" >"$T/gen1.pem"
cat "$P/leaf2.key" "$P/leaf2.pem" "$P/int.pem" >"$T/gen2.pem"
mkdir -m 700 "$T/tls"
cp "$T/gen1.pem" "$T/tls/bundle.pem"

# served_serial PROTO PORT: the leaf serial openssl s_client sees.
served_serial() {
	local st=()
	[ "$1" != none ] && st=(-starttls "$1")
	openssl s_client "${st[@]}" -connect "127.0.0.1:$2" -servername leaf.example.test \
		</dev/null 2>/dev/null | openssl x509 -noout -serial | cut -d= -f2
}
probe() { "$CERTSYNCCTL" probe "$@" >"$T/stdout" 2>"$T/stderr"; }
sha_of() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }

# --- Postfix, SMTP with STARTTLS.
smtp=$(free_port)
postfix_start "$T/postfix" "$T/tls/bundle.pem" "$smtp"
probe "smtp://127.0.0.1:$smtp?sni=leaf.example.test" --expect "$T/gen1.pem" ||
	{ cat "$T/stdout" "$T/stderr"; fail "probe smtp gen1"; }
grep -q "^smtp://127.0.0.1:$smtp?sni=leaf.example.test: STARTTLS, SNI leaf.example.test, TLSv1" "$T/stdout" ||
	fail "probe header: $(head -1 "$T/stdout")"
grep -q "serial:     $(served_serial smtp "$smtp")" "$T/stdout" || fail "serial differs from s_client's"
grep -q "sha256:     $(sha_of "$P/leaf.pem")" "$T/stdout" || fail "leaf sha256 not shown"
grep -q "certificate 2: intermediate" "$T/stdout" || fail "chain not shown: $(cat "$T/stdout")"
grep -q "matches $T/gen1.pem: yes" "$T/stdout" || fail "no match line"
pass "smtp STARTTLS: probe shows the served chain, serial equal to openssl s_client's"

cp "$T/gen2.pem" "$T/tls/bundle.pem"
postfix -c "$T/postfix" reload >/dev/null 2>&1 || fail "postfix reload"
probe "smtp://127.0.0.1:$smtp" --expect "$T/gen2.pem" --wait 15 ||
	{ cat "$T/stdout" "$T/stderr"; fail "new certificate not served after reload"; }
[ "$(served_serial smtp "$smtp")" = 2222 ] || fail "s_client does not see serial 2222"
rc=0
probe "smtp://127.0.0.1:$smtp" --expect "$T/gen1.pem" || rc=$?
[ $rc = 1 ] || fail "a stale expectation exited $rc"
grep -q "matches $T/gen1.pem: NO (it holds sha256 $(sha_of "$P/leaf.pem"))" "$T/stdout" ||
	fail "mismatch line: $(tail -1 "$T/stdout")"
pass "smtp: after reload --expect/--wait sees the new serial; the old expectation exits 1"

probe --json "smtp://127.0.0.1:$smtp" --expect "$T/gen2.pem" || fail "probe --json"
python3 - "$T/stdout" "$(sha_of "$P/leaf2.pem")" <<'PY' || fail "probe --json document"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["matches"] is True and d["expect_sha256"] == sys.argv[2]
assert d["certificates"][0]["sha256"] == sys.argv[2] and d["certificates"][0]["serial"] == "2222"
assert len(d["certificates"]) == 2
PY
pass "probe --json"

# DANE as a validating SMTP client sees it: the records certsyncctl tlsa
# prints (3 1 1 of the served leaf, 2 1 1 of the intermediate the chain
# carries) authenticate it; the first leaf's record, which Postfix no longer
# serves, does not, and exits 1 with the reason.
tlsa() { "$CERTSYNCCTL" tlsa "$@" | awk '{print $4, $5, $6, $7}'; }
cat "$P/leaf2.pem" "$P/int.pem" >"$T/chain2.pem"
probe "smtp://127.0.0.1:$smtp?sni=leaf.example.test" --tlsa "$(tlsa "$P/leaf.pem")" \
	--tlsa "$(tlsa "$P/leaf2.pem")" || { cat "$T/stdout" "$T/stderr"; fail "probe --tlsa 3 1 1"; }
grep -q "^  DANE: yes, TLSA 3 1 1 matches at depth 0$" "$T/stdout" || fail "DANE line: $(tail -1 "$T/stdout")"
probe "smtp://127.0.0.1:$smtp?sni=leaf.example.test" --tlsa "$(tlsa --usage 2 "$T/chain2.pem")" ||
	{ cat "$T/stdout" "$T/stderr"; fail "probe --tlsa 2 1 1"; }
grep -q "^  DANE: yes, TLSA 2 1 1 matches at depth 1$" "$T/stdout" || fail "DANE line: $(tail -1 "$T/stdout")"
rc=0
probe "smtp://127.0.0.1:$smtp?sni=leaf.example.test" --tlsa "$(tlsa "$P/leaf.pem")" || rc=$?
[ $rc = 1 ] || fail "a TLSA record of another key exited $rc"
grep -q "^  DANE: NO, no TLSA record matches the served chain" "$T/stdout" ||
	fail "DANE mismatch line: $(tail -1 "$T/stdout")"
pass "smtp: probe --tlsa authenticates the served chain with DANE (3 1 1, 2 1 1) or says why not"

# --- Dovecot: IMAP STARTTLS, POP3 STLS, IMAPS implicit TLS, ManageSieve STARTTLS.
imap=$(free_port) pop3=$(free_port) imaps=$(free_port) sieve=$(free_port)
cp "$T/gen1.pem" "$T/tls/dovecot.pem"
dovecot_start "$T/dovecot" "$T/tls/dovecot.pem" "$T/tls/dovecot.pem" "$imap" "$pop3" "$imaps" "$sieve"
for u in "imap://127.0.0.1:$imap" "pop3://127.0.0.1:$pop3" "imaps://127.0.0.1:$imaps" "sieve://127.0.0.1:$sieve"; do
	probe "$u" --expect "$T/gen1.pem" || { cat "$T/stdout" "$T/stderr"; fail "probe $u"; }
done
[ "$(served_serial imap "$imap")" = "$(openssl x509 -in "$P/leaf.pem" -noout -serial | cut -d= -f2)" ] ||
	fail "s_client -starttls imap disagrees"
pass "dovecot: imap STARTTLS, pop3 STLS, imaps and sieve STARTTLS serve what --expect names"

cp "$T/gen2.pem" "$T/tls/dovecot.pem"
doveadm -c "$T/dovecot/dovecot.conf" reload || fail "doveadm reload"
for u in "imap://127.0.0.1:$imap" "pop3://127.0.0.1:$pop3" "imaps://127.0.0.1:$imaps" "sieve://127.0.0.1:$sieve"; do
	probe "$u" --expect "$T/gen2.pem" --wait 15 || { cat "$T/stdout" "$T/stderr"; fail "after reload: $u"; }
done
[ "$(served_serial imap "$imap")" = 2222 ] || fail "s_client -starttls imap does not see serial 2222"
[ "$(served_serial none "$imaps")" = 2222 ] || fail "s_client on imaps does not see serial 2222"
[ "$(served_serial sieve "$sieve")" = 2222 ] || fail "s_client -starttls sieve does not see serial 2222"
pass "dovecot: after doveadm reload all four see the new serial, as s_client does"

# --- Failures a person can act on.
rc=0
probe "smtp://127.0.0.1:$(free_port)" || rc=$?
[ $rc = 1 ] && grep -q "cannot connect to 127.0.0.1 port [0-9]*: Connection refused" "$T/stderr" ||
	fail "closed port: rc $rc, $(cat "$T/stderr")"
rc=0
probe "pop3://127.0.0.1:$smtp" --timeout 3 || rc=$?
[ $rc = 1 ] && grep -q "the server refused: \"220 " "$T/stderr" ||
	fail "wrong protocol: rc $rc, $(cat "$T/stderr")"
rc=0
probe "ftp://127.0.0.1" || rc=$?
[ $rc = 2 ] || fail "bad URL exited $rc"
pass "closed port, wrong protocol and bad URL: clear messages, exit 1/1/2"
