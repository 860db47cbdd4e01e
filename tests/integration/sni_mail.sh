#!/usr/bin/env bash
# One mail host, three domains (issue 19): three certs from the local CA, a
# Postfix SNI map ([sni] type = postfix, built with postmap -F) and a Dovecot
# include of local_name blocks ([sni] type = dovecot), both written by the
# agent. Before and after forced renewals of each cert, openssl s_client
# with -servername gets that name's certificate over SMTP STARTTLS, IMAP
# STARTTLS and IMAPS; each renewal is verified by the agent through SNI on
# all three (a map rebuilt after the reload would fail it). A reader loop
# runs `postmap -q` for the three names the whole time: every query must be
# answered. Cert a has only a bundle, b and c a live directory: both
# choices of files are exercised. Needs root (Postfix and Dovecot).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/servers.bash"

EACH=${SNI_MAIL_RENEWALS:-3}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to run Postfix and Dovecot"; exit 77; }
command -v postfix >/dev/null || { echo "SKIP: postfix is not installed"; exit 77; }
command -v dovecot >/dev/null || { echo "SKIP: dovecot is not installed"; exit 77; }
smtp=$(free_port)
imap=$(free_port)
pop3=$(free_port)
imaps=$(free_port)
mkdir -p "$T/out" "$T/dovecot"
chmod 700 "$T/out"

cert_section() { # NAME EXTRA...
	local n=$1
	shift
	cat <<CONF
[cert "$n"]
issuer       = local
names        = $n.example.test
renew_before = 10%
reload       = postfix, dovecot
verify       = smtp://127.0.0.1:$smtp?sni=$n.example.test, imap://127.0.0.1:$imap?sni=$n.example.test, imaps://127.0.0.1:$imaps?sni=$n.example.test
$(printf '%s\n' "$@")

CONF
}
{
	conf_head "live_dir  = $T/live
retry_min = 1s" "validity = 1h"
	echo
	cert_section a "bundle = $T/out/a.pem" "live_dir = none"
	cert_section b
	cert_section c
	cat <<CONF
[sni "smtp"]
type   = postfix
certs  = a, b, c
map    = $T/postfix/sni
reload = postfix

[sni "imap"]
type   = dovecot
certs  = a, b, c
conf   = $T/dovecot/sni.conf
reload = dovecot
CONF
	conf_reloaders postfix dovecot
} >"$T/certsync.conf"
"$CERTSYNCD" --check-config -c "$T/certsync.conf" >"$T/check.out" 2>&1 ||
	{ cat "$T/check.out"; fail "check-config"; }
grep -q "2 sni" "$T/check.out" || { cat "$T/check.out"; fail "check-config does not count the [sni] sections"; }

# The first material, before the servers are configured: no [sni], no reloads.
awk '/^\[sni /{skip=1} /^\[reload /{skip=0} !skip' "$T/certsync.conf" |
	grep -v -e "^reload " -e "^verify " >"$T/first.conf"
"$CERTSYNCD" -f --once -c "$T/first.conf" 2>"$T/once.log" || { cat "$T/once.log"; fail "the first --once"; }
postfix_start "$T/postfix" "$T/out/a.pem" "$smtp"
DOVECOT_EXTRA="!include_try $T/dovecot/sni.conf" \
	dovecot_start "$T/dovecot" "$T/out/a.pem" "$T/out/a.pem" "$imap" "$pop3" "$imaps"

spawn_agent
wait_for "$T/agent.log" "sni smtp: wrote $T/postfix/sni (3 names)" 20
wait_for "$T/agent.log" "sni imap: wrote $T/dovecot/sni.conf (3 names)" 20
[ "$(stat -c %a "$T/postfix/sni.db")" = 600 ] || fail "the map database is not 0600"
# The operator's one step: Postfix reads the map.
postconf -c "$T/postfix" -e "tls_server_sni_maps = hash:$T/postfix/sni"
postfix -c "$T/postfix" reload >/dev/null 2>&1 || fail "postfix reload"

deployed() { # NAME: the sha256 of the leaf deployed for NAME
	local f=$T/live/$1/cert.pem
	[ "$1" = a ] && f=$T/out/a.pem
	openssl x509 -in "$f" -noout -fingerprint -sha256 | cut -d= -f2
}
served() { # PROTO NAME
	local args
	case $1 in
	smtp) args=(-starttls smtp -connect "127.0.0.1:$smtp") ;;
	imap) args=(-starttls imap -connect "127.0.0.1:$imap") ;;
	imaps) args=(-connect "127.0.0.1:$imaps") ;;
	esac
	openssl s_client "${args[@]}" -servername "$2.example.test" </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}
check_all() { # WHEN
	local n p want got i
	for n in a b c; do
		want=$(deployed $n)
		for p in smtp imap imaps; do
			for ((i = 0; i < 50; i++)); do
				got=$(served $p $n)
				[ "$got" = "$want" ] && break
				sleep 0.1
			done
			[ "$got" = "$want" ] ||
				{ tail -20 "$T/agent.log"; fail "$1: $p with SNI $n.example.test serves ${got:-nothing}, not $want"; }
		done
	done
}
check_all "before the renewals"
# b and c differ from the default certificate: SNI, not the default, answers.
[ "$(deployed b)" != "$(deployed a)" ] || fail "b and a have one certificate"
pass "SMTP, IMAP and IMAPS serve each of the three names' certificates through SNI"

# postmap -q for each name, all through the renewals.
(
	q=0 miss=0
	while [ ! -e "$T/stop" ]; do
		for n in a b c; do
			q=$((q + 1))
			out=$(postmap -c "$T/postfix" -q "$n.example.test" "hash:$T/postfix/sni" 2>&1) ||
				{ miss=$((miss + 1)); echo "$n: ${out:-no answer}" >>"$T/reader.miss"; }
		done
	done
	echo "$q $miss" >"$T/reader.result"
) &
CS_PIDS+=($!)

for ((r = 1; r <= EACH; r++)); do
	for n in a b c; do
		before=$(deployed $n)
		"$CERTSYNCCTL" -s "$T/certsync.sock" renew $n --force --wait >>"$T/renew.log" 2>&1 ||
			{ tail -5 "$T/renew.log"; tail -30 "$T/agent.log"; fail "renewal $r of $n failed"; }
		[ "$(deployed $n)" != "$before" ] || fail "renewal $r of $n deployed nothing new"
		check_all "after renewal $r of $n"
	done
done
touch "$T/stop"
for ((i = 0; i < 200; i++)); do [ -s "$T/reader.result" ] && break; sleep 0.05; done
read -r queries misses <"$T/reader.result" || fail "the reader loop did not report"
echo "# $((EACH * 3)) renewals: $queries postmap -q lookups, $misses unanswered"
[ "$misses" = 0 ] || { head "$T/reader.miss"; fail "$misses postmap -q lookups were not answered"; }
[ "$queries" -ge 30 ] || fail "only $queries lookups during the renewals"
verified=$(grep " [abc]: verified: " "$T/agent.log" | grep "smtp://" | grep "imap://" | grep -c "imaps://")
[ "$verified" -ge $((EACH * 3)) ] || fail "only $verified renewals verified through SNI"
ls -a "$T/postfix" | has '^\.certsync-sni-' && fail "a temp directory is left beside the map"
grep -q "warning: .*\(sni\|key\|certificate\)" "$T/postfix/maillog" &&
	{ grep warning "$T/postfix/maillog" | tail -5; fail "Postfix warned about the map or a certificate"; }
pass "$((EACH * 3)) renewals, each verified through SNI on SMTP, IMAP and IMAPS; $queries map lookups, none unanswered"

# The status socket lists the [sni] sections' problems: a file gone is one.
"$CERTSYNCCTL" -s "$T/certsync.sock" status >"$T/status.out" 2>&1 || { cat "$T/status.out"; fail "status"; }
grep -q "sni" "$T/status.out" && { cat "$T/status.out"; fail "status reports an [sni] problem while all is well"; }
pass "status shows no [sni] problem"
