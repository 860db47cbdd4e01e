# The agent's DANE tests (sourced after lib.bash, servers.bash and dns.bash):
# the DNSSEC zone and resolver of dns.bash, the receiving Postfix served by
# the agent (cert "mail", local CA, a lifetime of LIFETIME so that it is
# renewed every half of it), the DANE-validating sender, and a client that
# sends a message every two seconds the whole time.

LIFETIME=${LIFETIME:-16s}
DANE_TTL=4 # of the TLSA records the agent publishes (s)

# dane_setup right|wrong: DNS, resolver, the first certificate (certsyncd
# --once, before Postfix is configured), the receiver serving it and the
# sender; $T/certsync.conf publishes "3 1 1" records with the zone's TSIG
# key (right) or another secret under the same name (wrong: every update is
# refused). $DANE_CONF, when set, replaces those dane* lines.
dane_setup() {
	local key
	dns_need
	command -v postfix >/dev/null || { echo "SKIP: postfix is not installed"; exit 77; }
	start_dns
	start_unbound
	key=$DNS_TSIG
	[ "$1" = wrong ] && key=$DNS_TSIG_WRONG
	{ conf_head "retry_min = 1s
jitter    = 0%" "validity = $LIFETIME"; cat <<CONF

[cert "mail"]
issuer        = local
names         = mail.example.test
bundle        = $T/out/mail.pem
reload        = postfix
verify        = smtp://$RECV_ADDR:25?sni=mail.example.test
${DANE_CONF:-dane          = 3 1 1
dane_update   = rfc2136
dane_server   = 127.0.0.1:$DNS_PORT
dane_tsig_key = $key}
dane_resolver = $RESOLVER:53
dane_ttl      = ${DANE_TTL}s
CONF
	conf_reloaders postfix; } >"$T/certsync.conf"
	grep -v -e "^reload " -e "^verify " "$T/certsync.conf" >"$T/first.conf"
	mkdir -p "$T/out"
	"$CERTSYNCD" -f --once -c "$T/first.conf" 2>"$T/once.log" ||
		{ cat "$T/once.log"; fail "the first --once"; }
	start_receiver "$T/out/mail.pem"
	start_sender
}

# key_of FILE: the "3 1 1" data of the key in the PEM bundle FILE.
key_of() {
	openssl pkey -in "$1" -pubout -outform DER 2>/dev/null | openssl dgst -sha256 -r | cut -d' ' -f1
}

# mail_loop_start: sends a message every 2 s (in the background) and notes
# the deployed key each time in $T/keys, until mail_loop_stop.
mail_loop_start() {
	(
		i=0
		while [ ! -e "$T/stop-mail" ]; do
			i=$((i + 1))
			send_mail "$i"
			echo "$i" >"$T/mails"
			key_of "$T/out/mail.pem" >>"$T/keys"
			sleep 2
		done
	) &
	CS_PIDS+=($!)
}

# mail_loop_stop: stops sending and waits (up to 60 s) until the sender's
# queue is empty; prints nothing, fails when mail stays queued.
mail_loop_stop() {
	touch "$T/stop-mail"
	sleep 2.5
	wait_until 60 queue_empty || { sender_log; fail "$(sender_queued) message(s) still queued"; }
}
queue_empty() { [ "$(sender_queued)" = 0 ]; }
sender_log() { echo "--- sender's log" >&2; tail -n 30 "$SENDER_DIR/maillog" >&2; }

# all_verified: every message sent was delivered over a verified TLS
# connection and none was ever deferred.
all_verified() {
	local sent verified deferred n
	n=$(cat "$T/mails")
	read -r sent verified deferred < <(sender_stats)
	[ "$deferred" = 0 ] || { sender_log; grep -E 'status=(deferred|bounced)' "$SENDER_DIR/maillog" | head -3 >&2; fail "$deferred deferral(s) of $n message(s)"; }
	[ "$sent" = "$n" ] || { sender_log; fail "$sent of $n message(s) delivered"; }
	[ "$verified" -ge "$n" ] || { sender_log; fail "only $verified verified TLS connection(s) for $n message(s)"; }
	pass "$n message(s) sent during the test, every one delivered over verified TLS (DANE), none deferred"
}

# renewals: the renewals the agent deployed so far (log lines).
renewals() { count "mail: renewed" ; }

# dane_ok: certsyncctl dane mail exits 0 (its output in $T/stdout).
dane_ok() { ctl dane mail; [ "$rc" = 0 ]; }
