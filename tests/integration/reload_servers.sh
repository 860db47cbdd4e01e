#!/usr/bin/env bash
# Reload and verify with the real servers: certsyncd renews a certificate that
# a private Postfix (SMTP STARTTLS) and Dovecot (IMAP STARTTLS, IMAPS) serve,
# reloads both and proves over the wire - with its own probes and with
# `openssl s_client` - that the new serial is served. A reload that fails
# (Postfix's configuration broken by the test) rolls the files back to the
# previous generation, the state names both fingerprints, and the old
# certificate is still served. A reload that "succeeds" without effect (an
# exec reloader that does nothing) is caught by the probes and rolled back.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/servers.bash"

bash "$CS_SOURCE_DIR/tests/mkpki.sh" "$T/pki" ec >/dev/null 2>&1
mkdir -m 700 "$T/tls"
# Something for the servers to start with (names the config does not have).
cat "$T/pki/leaf.key" "$T/pki/leaf.pem" >"$T/tls/mail.pem"
cp "$T/pki/leaf.pem" "$T/tls/imap.crt"
cp "$T/pki/leaf.key" "$T/tls/imap.key"
chmod 600 "$T/tls/"*
smtp=$(free_port) imap=$(free_port) pop3=$(free_port) imaps=$(free_port)
postfix_start "$T/postfix" "$T/tls/mail.pem" "$smtp"
dovecot_start "$T/dovecot" "$T/tls/imap.crt" "$T/tls/imap.key" "$imap" "$pop3" "$imaps"

# Five-minute certificates due after 1% of their life (3 s): each pass a few
# seconds after the last renews, and the previous generation is still valid.
conf() { # conf DOVECOT_RELOADER [VALIDITY]
	cat >"$T/certsync.conf" <<CONF
[agent]
state_dir = $T/state
retry_min = 1s

[issuer "ca"]
type     = local-ca
dir      = $T/ca
subject  = /CN=certsync reload test CA
validity = ${2:-5m}

[cert "mail"]
issuer         = ca
names          = mail.example.test, imap.example.test
renew_before   = 99%
jitter         = 0%
bundle         = $T/tls/mail.pem
fullchain      = $T/tls/imap.crt
keyfile        = $T/tls/imap.key
reload         = postfix, $1
verify         = smtp://127.0.0.1:$smtp?sni=mail.example.test, imap://127.0.0.1:$imap, imaps://127.0.0.1:$imaps
verify_timeout = 8s
CONF
	conf_reloaders postfix dovecot >>"$T/certsync.conf"
	cat >>"$T/certsync.conf" <<CONF

[reload "inert"]
type    = exec
command = /bin/true
CONF
}
# served PROTO PORT: the serial openssl s_client sees ("none": implicit TLS).
served() {
	local st=()
	[ "$1" != none ] && st=(-starttls "$1")
	openssl s_client "${st[@]}" -connect "127.0.0.1:$2" </dev/null 2>/dev/null |
		openssl x509 -noout -serial | cut -d= -f2
}
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
sha_of() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }
once() { # once LOG: one pass; its exit status in $rc
	rc=0
	"$CERTSYNCD" -f --once -c "$T/certsync.conf" 2>"$1" || rc=$?
}

conf dovecot
once "$T/log1"
[ $rc = 0 ] || { cat "$T/log1"; fail "first pass exited $rc"; }
s1=$(serial_of "$T/tls/mail.pem")
for u in "smtp://127.0.0.1:$smtp?sni=mail.example.test" "imap://127.0.0.1:$imap" "imaps://127.0.0.1:$imaps"; do
	grep "mail: verified: " "$T/log1" | has -F "$u: ok" || { cat "$T/log1"; fail "$u not verified"; }
done
[ "$(served smtp "$smtp")" = "$s1" ] || fail "s_client -starttls smtp does not see $s1"
[ "$(served imap "$imap")" = "$s1" ] || fail "s_client -starttls imap does not see $s1"
[ "$(served none "$imaps")" = "$s1" ] || fail "s_client on imaps does not see $s1"
pass "renewed (serial $s1), postfix and dovecot reloaded, the probes and s_client see it served"

sleep 4
once "$T/log2"
[ $rc = 0 ] || { cat "$T/log2"; fail "second pass exited $rc"; }
s2=$(serial_of "$T/tls/mail.pem")
[ "$s2" != "$s1" ] || fail "no new serial on the second pass"
grep -q "mail: verified: " "$T/log2" || fail "second pass not verified"
[ "$(served smtp "$smtp")" = "$s2" ] && [ "$(served imap "$imap")" = "$s2" ] ||
	fail "s_client does not see the second serial $s2"
cp "$T/tls/mail.pem" "$T/gen2-bundle.pem"
cp "$T/tls/imap.crt" "$T/gen2-imap.crt"
pass "renewed again (serial $s2) and verified"

# A broken Postfix configuration: `postfix check` fails, so does the reload.
cp "$T/postfix/main.cf" "$T/main.cf.good"
echo "daemon_directory = /nonexistent/certsync-test" >>"$T/postfix/main.cf"
sleep 4
once "$T/log3"
cp "$T/main.cf.good" "$T/postfix/main.cf"
[ $rc = 1 ] || { cat "$T/log3"; fail "a failed reload exited $rc, not 1"; }
grep -q "mail: renewed: serial" "$T/log3" || fail "no renewal in the third pass"
s3=$(sed -n 's/.*mail: renewed: serial \([0-9A-F]*\),.*/\1/p' "$T/log3")
grep -q "reload postfix failed: postfix check exited with status 1: postfix: fatal: chdir(/nonexistent/certsync-test): No such file or directory" "$T/log3" ||
	{ cat "$T/log3"; fail "the reload failure is not logged"; }
grep -q "rolled back to generation [0-9]* (serial $s2, sha256 $(sha_of "$T/gen2-bundle.pem")); the refused certificate was serial $s3 (sha256 " "$T/log3" ||
	{ cat "$T/log3"; fail "no rollback line with both fingerprints"; }
cmp -s "$T/tls/mail.pem" "$T/gen2-bundle.pem" || fail "the bundle is not the previous generation again"
cmp -s "$T/tls/imap.crt" "$T/gen2-imap.crt" || fail "the dovecot certificate is not the previous generation"
python3 - "$T/state/certs/mail.json" "$s2" "$s3" <<'PY' || fail "state after rollback"
import json, sys
st = json.load(open(sys.argv[1]))
err = st["last_error"]
assert "reload postfix failed" in err and "rolled back" in err, err
assert "serial " + sys.argv[2] in err and "serial " + sys.argv[3] in err, err
assert st["failures"] >= 1, st
PY
[ "$(served smtp "$smtp")" = "$s2" ] || fail "Postfix no longer serves the old serial $s2"
[ "$(served imap "$imap")" = "$s2" ] || fail "Dovecot does not serve the rolled-back serial $s2"
pass "failed Postfix reload: rolled back to $s2 (refused $s3), error with both fingerprints in the state, $s2 still served"

# A reloader that succeeds without effect: the probes see the old certificate.
conf inert
sleep 4
once "$T/log4"
[ $rc = 1 ] || { cat "$T/log4"; fail "a failed verify exited $rc, not 1"; }
s4=$(sed -n 's/.*mail: renewed: serial \([0-9A-F]*\),.*/\1/p' "$T/log4")
grep -q "imap://127.0.0.1:$imap: imap://127.0.0.1:$imap serves sha256 $(sha_of "$T/gen2-bundle.pem"), not the deployed" "$T/log4" ||
	{ cat "$T/log4"; fail "the probe's mismatch is not reported"; }
grep -q "verify failed: .*; rolled back to generation [0-9]* (serial $s2," "$T/log4" ||
	{ cat "$T/log4"; fail "no rollback after the failed verify"; }
cmp -s "$T/tls/mail.pem" "$T/gen2-bundle.pem" || fail "not rolled back after the failed verify"
[ "$(served smtp "$smtp")" = "$s2" ] || fail "postfix does not serve $s2 again after the rollback reload"
pass "reload without effect: probes saw the old certificate within the bound, $s4 rolled back to $s2"

# The running agent: `certsyncctl reload NAME` reloads and verifies again on
# request; status and metrics carry the verify result. The certificate it
# issues at start lasts an hour (due 36 s later): with 5 minutes it would be
# due again 3 s after each renewal, and the reload asked for could find the
# next renewal running ("try again").
conf dovecot 1h
sed -i "s|^retry_min = 1s|retry_min = 1s\nsocket = $T/certsync.sock|" "$T/certsync.conf"
spawn_agent
wait_for "$T/agent.log" "mail: verified: " 30
"$CERTSYNCCTL" -s "$T/certsync.sock" reload mail >"$T/out" 2>&1 || { cat "$T/out"; fail "certsyncctl reload"; }
wait_for "$T/agent.log" "reload of the services of mail requested" 5
for _ in $(seq 100); do [ "$(grep -c "mail: verified: " "$T/agent.log")" -ge 2 ] && break; sleep 0.1; done
[ "$(grep -c "mail: verified: " "$T/agent.log")" -ge 2 ] || { cat "$T/agent.log"; fail "no verify after certsyncctl reload"; }
"$CERTSYNCCTL" -s "$T/certsync.sock" --json show mail >"$T/show.json" || fail "show mail"
python3 - "$T/show.json" "$imap" <<'PY' || { cat "$T/show.json"; fail "show: verify fields"; }
import json, sys
d = json.load(open(sys.argv[1]))
c = d.get("cert", d)
assert c["verify_ok"] is True, c
assert "imap://127.0.0.1:%s: ok" % sys.argv[2] in c["last_verify"], c["last_verify"]
PY
"$CERTSYNCCTL" -s "$T/certsync.sock" metrics >"$T/metrics" || fail "certsyncctl metrics"
grep -qx 'certsync_verify_ok{name="mail"} 1' "$T/metrics" ||
	fail "certsync_verify_ok not 1 in the metrics: $(grep verify "$T/metrics")"
pass "certsyncctl reload mail: reloaded and verified again; show and metrics carry the verify result"
