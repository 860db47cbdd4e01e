#!/usr/bin/env bash
# The postfix reloader as a new host meets it: a Postfix that is installed and
# configured but not running is reported as not running, not probed, and the
# first `certsyncd --once` exits 0; with Postfix running and its configuration
# broken, what `postfix check` prints (its fatal message, which Postfix writes
# to the terminal or syslog only) is in the log and in the state's last_error.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/servers.bash"

bash "$CS_SOURCE_DIR/tests/mkpki.sh" "$T/pki" ec >/dev/null 2>&1
mkdir -m 700 "$T/tls"
cat "$T/pki/leaf.key" "$T/pki/leaf.pem" >"$T/tls/mail.pem"
chmod 600 "$T/tls/mail.pem"
smtp=$(free_port)
postfix_start "$T/postfix" "$T/tls/mail.pem" "$smtp"
postfix_stop "$T/postfix"
postfix -c "$T/postfix" status >/dev/null 2>&1 && fail "postfix still runs"

cat >"$T/certsync.conf" <<CONF
[agent]
state_dir = $T/state
retry_min = 1s

[issuer "ca"]
type     = local-ca
dir      = $T/ca
subject  = /CN=certsync postfix test CA
validity = 5m

[cert "mail"]
issuer       = ca
names        = mail.example.test
renew_before = 99%
jitter       = 0%
bundle       = $T/tls/mail.pem
reload       = postfix
verify       = smtp://127.0.0.1:$smtp?sni=mail.example.test
CONF
conf_reloaders postfix >>"$T/certsync.conf"

rc=0
"$CERTSYNCD" -f --once -c "$T/certsync.conf" 2>"$T/log1" || rc=$?
[ "$rc" = 0 ] || { cat "$T/log1"; fail "the first --once with Postfix stopped exited $rc"; }
grep -q "reload postfix: the service is not running (for mail)" "$T/log1" &&
	grep -q "mail: postfix is not running: postfix/postfix-script: the Postfix mail system is not running" "$T/log1" ||
	{ cat "$T/log1"; fail "Postfix is not reported as not running"; }
grep -q "smtp://127.0.0.1:$smtp" "$T/log1" &&
	{ cat "$T/log1"; fail "a Postfix that is not running was probed"; }
grep -q "mail: renewed: serial" "$T/log1" || fail "no renewal in the first pass"
pass "Postfix not running: reported as such, not probed, --once exits 0"

# Running, with a configuration `postfix check` refuses.
postfix -c "$T/postfix" start >/dev/null 2>&1 || fail "postfix start"
CS_STOPS+=("postfix_stop '$T/postfix'")
wait_port "$smtp"
echo "daemon_directory = /nonexistent/certsync-test" >>"$T/postfix/main.cf"
sleep 4 # the 5-minute certificate is due again after 3 s
rc=0
"$CERTSYNCD" -f --once -c "$T/certsync.conf" 2>"$T/log2" || rc=$?
sed -i '/^daemon_directory = \/nonexistent/d' "$T/postfix/main.cf"
[ "$rc" = 1 ] || { cat "$T/log2"; fail "a failed Postfix check exited $rc, not 1"; }
want="postfix check exited with status 1: postfix: fatal: chdir(/nonexistent/certsync-test): No such file or directory"
grep -qF "reload postfix failed: $want" "$T/log2" ||
	{ cat "$T/log2"; fail "Postfix's own message is not in the log"; }
python3 - "$T/state/certs/mail.json" "$want" <<'PY' || fail "last_error lacks Postfix's message"
import json, sys
err = json.load(open(sys.argv[1]))["last_error"]
assert sys.argv[2] in err, err
PY
pass "postfix check's fatal message is in the log and in last_error"
