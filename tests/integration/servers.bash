# Private Postfix and Dovecot instances for the integration tests (sourced
# after lib.bash). Each listens on 127.0.0.1 on a free port, keeps all its
# state under $T, and is stopped by the EXIT trap. Needs root, as a real
# mail server does. Facts in ../shared/TESTING.md.

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

# postfix_run DIR: checks the Postfix configured in DIR and starts it; it is
# stopped at the end of the test.
postfix_run() {
	local d=$1
	postfix -c "$d" check || fail "postfix check: $(cat "$d/maillog" 2>/dev/null)"
	postfix -c "$d" start >/dev/null 2>&1 || fail "postfix start: $(cat "$d/maillog" 2>/dev/null)"
	CS_STOPS+=("postfix_stop '$d'")
}

# postfix_start DIR BUNDLE PORT: a private Postfix with smtpd on 127.0.0.1:PORT
# serving BUNDLE (smtpd_tls_chain_files) over STARTTLS. Lines in
# $POSTFIX_EXTRA are added to main.cf.
postfix_start() {
	local d=$1 bundle=$2 port=$3
	postfix_conf "$d" mail.example.test
	cat >>"$d/main.cf" <<CF
inet_interfaces = 127.0.0.1
mydestination =
smtpd_tls_chain_files = $bundle
smtpd_tls_security_level = may
${POSTFIX_EXTRA:-}
CF
	echo "127.0.0.1:$port inet n - n - - smtpd" >>"$d/master.cf"
	postfix_run "$d"
	wait_port "$port"
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
