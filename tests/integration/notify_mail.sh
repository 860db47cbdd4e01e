#!/usr/bin/env bash
# Failure notifications without Prometheus (issue 22): a renewal that fails
# (its output directory is missing) is told once by mail through a real
# Postfix (the local sendmail, MAIL_CONFIG pointing at a private instance
# that delivers to a Maildir the test reads), within a minute, however often
# it is retried; when it succeeds again a recovery mail follows, once. A
# command notifier gets the event in CERTSYNC_* variables; a notifier that
# fails is logged and the renewals go on. Needs root and Postfix.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/servers.bash"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to run Postfix"; exit 77; }
command -v postfix >/dev/null || { echo "SKIP: postfix is not installed"; exit 77; }
started=$SECONDS

# The mail system: a private Postfix delivering example.test to Maildirs.
postfix_conf "$T/mta" mta.example.test
mkdir -p "$T/mail"
chown nobody "$T/mail"
echo "postmaster@example.test postmaster/" >"$T/mta/vmailbox"
cat >>"$T/mta/main.cf" <<CF
inet_interfaces = 127.0.0.1
mydestination =
virtual_mailbox_domains = example.test
virtual_mailbox_base = $T/mail
virtual_mailbox_maps = texthash:$T/mta/vmailbox
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(id -g nobody)
CF
postfix_run "$T/mta"
export MAIL_CONFIG=$T/mta

cat >"$T/notify.sh" <<'SH'
#!/bin/sh
echo "$CERTSYNC_EVENT cert=$CERTSYNC_CERT notify=$CERTSYNC_NOTIFY state=$CERTSYNC_STATE failures=$CERTSYNC_FAILURES error=$CERTSYNC_ERROR" >>"$NOTIFY_LOG"
SH
chmod 755 "$T/notify.sh"
export NOTIFY_LOG=$T/notify.log

{ conf_head "retry_min = 1s
retry_max = 2s" "validity = 1h"; cat <<CONF

[cert "mail"]
issuer = local
names  = mail.example.test
bundle = $T/out/mail.pem

[notify "postmaster"]
on      = failure, recovery
mail_to = postmaster@example.test

[notify "script"]
on      = failure, recovery, renewal
command = $T/notify.sh

[notify "broken"]
command = /bin/false
CONF
} >"$T/certsync.conf"
"$CERTSYNCD" --check-config -c "$T/certsync.conf" || fail "the configuration is refused"

mails() { find "$T/mail/postmaster/new" -type f 2>/dev/null | sort; }
n_mails() { mails | grep -c . || true; }
spawn_agent
wait_until 60 eval '[ "$(n_mails)" -ge 1 ]' || { log_tail; tail "$T/mta/maillog" >&2; fail "no failure mail within a minute"; }
m1=$(mails | head -n 1)
grep -q "^Subject: certsync on .*: renewal of mail FAILED$" "$m1" || { cat "$m1" >&2; fail "the failure mail's subject"; }
grep -q "^  error  *.*cannot open directory $T/out" "$m1" || { cat "$m1" >&2; fail "the failure mail does not give the error"; }
# (no certificate is deployed yet: the cert is missing)
grep -q "^certsyncctl show mail:" "$m1" && grep -q "^  state  *missing$" "$m1" &&
	grep -q "^  failures  *1$" "$m1" ||
	{ cat "$m1" >&2; fail "the failure mail does not hold the cert's status"; }
pass "a failure mail arrived through Postfix ($((SECONDS - started)) s)"

# More failed attempts: still one mail.
more() { [ "$(count 'mail: renewal failed')" -ge 4 ]; }
wait_until 30 more || { log_tail; fail "the renewal was not tried again"; }
sleep 2
[ "$(n_mails)" = 1 ] || { mails >&2; fail "$(n_mails) mails for one failing streak"; }
pass "$(count 'mail: renewal failed') failed attempts, one mail"

# The notifier that fails is logged, and renewals go on.
grep -q "notify broken: failure of mail by /bin/false: not told: /bin/false exited with status 1 (renewals go on)" "$T/agent.log" ||
	{ log_tail; fail "the failing notifier is not logged"; }

mkdir "$T/out"
wait_until 60 eval '[ "$(n_mails)" -ge 2 ]' || { log_tail; fail "no recovery mail"; }
m2=$(mails | tail -n 1)
grep -q "^Subject: certsync on .*: mail renewed again$" "$m2" || { cat "$m2" >&2; fail "the recovery mail's subject"; }
[ -s "$T/out/mail.pem" ] || fail "the certificate was not deployed"
sleep 2
[ "$(n_mails)" = 2 ] || fail "$(n_mails) mails, not 2"
pass "a recovery mail after the renewal succeeded, once ($((SECONDS - started)) s)"

# The command notifier: the events in CERTSYNC_* variables (it runs beside
# the mail notifier, which may finish first).
told() { grep -q "^$1 cert=mail" "$NOTIFY_LOG"; }
wait_until 10 told recovery && wait_until 10 told renewal || { cat "$NOTIFY_LOG" >&2; fail "the command was not run for the recovery"; }
grep -q "^failure cert=mail notify=script state=missing failures=1 error=.*cannot open directory" "$NOTIFY_LOG" ||
	{ cat "$NOTIFY_LOG" >&2; fail "the command did not get the failure"; }
grep -q "^recovery cert=mail notify=script state=valid" "$NOTIFY_LOG" || { cat "$NOTIFY_LOG" >&2; fail "the command did not get the recovery"; }
grep -q "^renewal cert=mail notify=script state=valid" "$NOTIFY_LOG" || { cat "$NOTIFY_LOG" >&2; fail "the command did not get the renewal"; }
[ "$(grep -c '^failure' "$NOTIFY_LOG")" = 1 ] || { cat "$NOTIFY_LOG" >&2; fail "the command was told of more than one failure"; }
pass "the command got failure, recovery and renewal in CERTSYNC_* variables"
stop_agent
