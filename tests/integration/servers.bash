# Private Postfix and Dovecot instances for the integration tests (sourced
# after lib.bash). Each listens on 127.0.0.1 on a free port (the DANE
# receiver on its own loopback address, port 25), keeps all its state under
# $T, and is stopped by the EXIT trap. For the DANE tests (dns.bash sourced
# too): start_receiver, start_sender (a DANE-validating Postfix), send_mail
# and sender_stats. Needs root, as a real mail server does. Facts in
# ../shared/TESTING.md.

# conf_reloaders postfix|dovecot...: for each, a blank line and its [reload]
# section: "postfix" for the Postfix in $T/postfix, "dovecot" for the
# Dovecot configured in $T/dovecot/dovecot.conf.
conf_reloaders() {
	local s
	for s in "$@"; do
		echo
		case $s in
		postfix) printf '[reload "postfix"]\ntype       = postfix\nconfig_dir = %s\n' "$T/postfix" ;;
		dovecot) printf '[reload "dovecot"]\ntype   = dovecot\nconfig = %s\n' "$T/dovecot/dovecot.conf" ;;
		*) fail "conf_reloaders: no server $s" ;;
		esac
	done
}

CS_STOPS=()
stop_servers() {
	local s
	for s in "${CS_STOPS[@]}"; do eval "$s" >/dev/null 2>&1 || true; done
}
trap 'stop_servers; cleanup' EXIT

# postfix_stop DIR: stops the instance and waits (10 s at most) until its
# master is gone, so that nothing writes into DIR while the test removes it.
postfix_stop() {
	local i
	postfix -c "$1" stop >/dev/null 2>&1 || return 0
	for ((i = 0; i < 100; i++)); do
		postfix -c "$1" status >/dev/null 2>&1 || return 0
		sleep 0.1
	done
}

# postfix_conf DIR MYHOSTNAME: the main.cf and master.cf of a private
# Postfix in DIR (queue, data and log maillog in DIR), without its smtpd
# service and without any inet_interfaces: its callers add theirs.
postfix_conf() {
	local d=$1
	mkdir -p "$d/queue" "$d/data"
	# The postfix user must reach its data directory; keys stay in 0700 dirs.
	chmod 755 "$T" "$d"
	chown postfix "$d/data"
	cat >"$d/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
inet_protocols = ipv4
myhostname = $2
maillog_file = $d/maillog
maillog_file_prefixes = /var, $d
CF
	sed -e 's/^smtp \{1,\}inet.*/#&/' /etc/postfix/master.cf >"$d/master.cf"
}

# postfix_run DIR [WRAPPER...]: checks the Postfix configured in DIR and
# starts it (the command "postfix -c DIR start" run through WRAPPER when
# given); it is stopped at the end of the test.
postfix_run() {
	local d=$1
	shift
	postfix -c "$d" check || fail "postfix check: $(cat "$d/maillog" 2>/dev/null)"
	"$@" postfix -c "$d" start >/dev/null 2>&1 || fail "postfix start: $(cat "$d/maillog" 2>/dev/null)"
	CS_STOPS+=("postfix_stop '$d'")
}

# tcp_accepts ADDR PORT: whether something accepts on ADDR:PORT now.
tcp_accepts() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# postfix_start DIR BUNDLE [ADDR:]PORT: a private Postfix with smtpd on
# ADDR:PORT (127.0.0.1 unless given) serving BUNDLE (smtpd_tls_chain_files)
# over STARTTLS. It takes mail for example.test (any recipient) and drops it.
# Lines in $POSTFIX_EXTRA are added to main.cf.
postfix_start() {
	local d=$1 bundle=$2 addr=127.0.0.1 port=$3 ifaces=127.0.0.1
	# Another loopback address is not an interface address: "all" takes it.
	case $port in *:*) addr=${port%:*} port=${port##*:} ifaces=all ;; esac
	postfix_conf "$d" mail.example.test
	cat >>"$d/main.cf" <<CF
inet_interfaces = $ifaces
mydestination = example.test
local_recipient_maps =
local_transport = discard:
smtpd_tls_chain_files = $bundle
smtpd_tls_security_level = may
${POSTFIX_EXTRA:-}
CF
	echo "$addr:$port inet n - n - - smtpd" >>"$d/master.cf"
	postfix_run "$d"
	wait_until 10 tcp_accepts "$addr" "$port" || fail "nothing listens on $addr:$port"
}

# start_receiver BUNDLE [DIR]: the receiving Postfix of the DANE tests:
# postfix_start in DIR ($T/postfix, the one conf_reloaders names, unless
# given) on $RECV_ADDR:25 (mail.example.test in dns.bash's zone), serving
# BUNDLE. Its log: DIR/maillog.
start_receiver() {
	postfix_start "${2:-$T/postfix}" "$1" "${RECV_ADDR:?source dns.bash first}:25"
}

# start_sender [DIR]: a sending Postfix in DIR ($T/sender unless given)
# that delivers with DANE (smtp_tls_security_level = dane,
# smtp_dns_support_level = dnssec) and resolves through start_unbound's
# resolver: it runs in a mount namespace of its own where DIR/resolv.conf
# (nameserver $RESOLVER, options trust-ad) is bound over /etc/resolv.conf,
# its smtp client not chrooted. It tries deferred mail again after 1 s to
# 2 s and caches no connection; each of its smtp processes keeps a TLSA
# RRset it fetched for the TTL the resolver gave plus 1 s (Postfix's own
# cache; its clock counts whole seconds). Sets SENDER_DIR; its log is
# $SENDER_DIR/maillog.
start_sender() {
	local d=${1:-$T/sender}
	: "${RESOLVER:?start_unbound first}"
	postfix_conf "$d" sender.example.test
	cat >>"$d/main.cf" <<CF
inet_interfaces = 127.0.0.1
mydestination =
smtp_tls_security_level = dane
smtp_dns_support_level = dnssec
smtp_tls_loglevel = 1
smtp_connection_cache_on_demand = no
smtp_connect_timeout = 5s
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
CF
	# The smtp client must read the namespace's /etc/resolv.conf, not one in
	# its chroot (glibc would ask 127.0.0.1:53 when that is missing).
	awk '($1 == "smtp" || $1 == "relay") && $2 == "unix" { $5 = "n" } 1' \
		"$d/master.cf" >"$d/master.cf.new"
	mv "$d/master.cf.new" "$d/master.cf"
	# glibc clears the AD bit of answers unless told to trust the server.
	printf 'nameserver %s\noptions trust-ad\n' "$RESOLVER" >"$d/resolv.conf"
	postfix_run "$d" unshare --mount --propagation private -- \
		sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$d/resolv.conf"
	SENDER_DIR=$d
	wait_until 10 postfix -c "$d" status 2>/dev/null || fail "the sending Postfix did not start"
}

# send_mail ID: queues one message from sender@sender.example.test to
# someone@example.test at the sending Postfix, ID in its subject and body.
send_mail() {
	printf 'Subject: certsync DANE test %s\n\nmessage %s\n' "$1" "$1" |
		sendmail -C "$SENDER_DIR" -f sender@sender.example.test someone@example.test
}

# sender_stats: "SENT VERIFIED DEFERRED" from the sending Postfix's log:
# deliveries with status=sent, "Verified TLS connection established" lines,
# and delivery attempts with status=deferred or status=bounced.
sender_stats() {
	local pat n out=""
	for pat in 'status=sent' 'Verified TLS connection established' 'status=(deferred|bounced)'; do
		n=$(grep -cE -- "$pat" "$SENDER_DIR/maillog" 2>/dev/null) || true
		out="$out${out:+ }${n:-0}"
	done
	echo "$out"
}

# sender_queued: how many messages wait in the sending Postfix's queue
# (not yet delivered: new, active or deferred).
sender_queued() {
	postqueue -c "$SENDER_DIR" -j | grep -c . || true
}

# dovecot_start DIR CERT KEY IMAP_PORT POP3_PORT IMAPS_PORT [SIEVE_PORT]: a
# private Dovecot with IMAP (STARTTLS), POP3 (STLS) and IMAPS on 127.0.0.1,
# and ManageSieve (STARTTLS) when SIEVE_PORT is given. Lines in
# $DOVECOT_EXTRA are added to dovecot.conf.
dovecot_start() {
	local d=$1 cert=$2 key=$3 imap=$4 pop3=$5 imaps=$6 sieve=${7:-}
	local protocols="imap pop3" sieve_service=""
	if [ -n "$sieve" ]; then
		protocols="imap pop3 sieve"
		sieve_service="service managesieve-login {
  inet_listener sieve {
    port = $sieve
  }
}"
	fi
	mkdir -p "$d/run" "$d/state" "$d/mail"
	cat >"$d/dovecot.conf" <<CF
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
listen = 127.0.0.1
protocols = $protocols
ssl = yes
ssl_cert = <$cert
ssl_key = <$key
mail_location = maildir:$d/mail/%u
passdb {
  driver = static
  args = password=test
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$d/mail/%u
}
service imap-login {
  inet_listener imap {
    port = $imap
  }
  inet_listener imaps {
    port = $imaps
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = $pop3
  }
  inet_listener pop3s {
    port = 0
  }
}
$sieve_service
${DOVECOT_EXTRA:-}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
CF
	dovecot -c "$d/dovecot.conf" || fail "dovecot start: $(cat "$d/dovecot.log" 2>/dev/null)"
	CS_STOPS+=("doveadm -c '$d/dovecot.conf' stop")
	wait_port "$imap"
	wait_port "$pop3"
	wait_port "$imaps"
	[ -z "$sieve" ] || wait_port "$sieve"
}
