#!/usr/bin/env bash
# A real Postfix reading its key and certificate from two files of the live
# directory (smtpd_tls_key_file = LIVE/mail/privkey.pem, smtpd_tls_cert_file
# = LIVE/mail/fullchain.pem; issue 19), reloaded by the agent after each of
# LIVE_POSTFIX_RENEWALS (default 50) forced renewals, each verified over the
# wire; a client loop runs STARTTLS handshakes the whole time and counts the
# failures: there must be none. Needs root (Postfix runs as root).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/servers.bash"

RENEWALS=${LIVE_POSTFIX_RENEWALS:-50}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to run Postfix"; exit 77; }
command -v postfix >/dev/null || { echo "SKIP: postfix is not installed"; exit 77; }
smtp=$(free_port)
{ conf_head "live_dir  = $T/live
retry_min = 1s" "validity = 1h"; cat <<CONF

[cert "mail"]
issuer       = local
names        = mail.example.test
renew_before = 10%
reload       = postfix
verify       = smtp://127.0.0.1:$smtp?sni=mail.example.test
CONF
conf_reloaders postfix; } >"$T/certsync.conf"

# The first material, while Postfix is not configured yet.
grep -v -e "^reload " -e "^verify " "$T/certsync.conf" >"$T/first.conf"
"$CERTSYNCD" -f --once -c "$T/first.conf" 2>"$T/once.log" || { cat "$T/once.log"; fail "the first --once"; }
[ -f "$T/live/mail/privkey.pem" ] || { cat "$T/once.log"; fail "no live/mail after --once"; }
postfix_start "$T/postfix" "$T/live/mail/bundle.pem" "$smtp"
postconf -c "$T/postfix" -X smtpd_tls_chain_files
postconf -c "$T/postfix" -e "smtpd_tls_cert_file = $T/live/mail/fullchain.pem" \
	"smtpd_tls_key_file = $T/live/mail/privkey.pem"
postfix -c "$T/postfix" reload >/dev/null 2>&1 || fail "postfix reload"

served() {
	openssl s_client -starttls smtp -connect "127.0.0.1:$smtp" -servername mail.example.test \
		</dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2
}
live_sha() { openssl x509 -in "$T/live/mail/cert.pem" -noout -fingerprint -sha256 | cut -d= -f2; }
for ((i = 0; i < 100; i++)); do [ "$(served)" = "$(live_sha)" ] && break; sleep 0.1; done
[ "$(served)" = "$(live_sha)" ] || fail "Postfix does not serve live/mail/fullchain.pem"
pass "Postfix serves smtpd_tls_cert_file/smtpd_tls_key_file from live/mail"

spawn_agent
wait_for "$T/agent.log" "mail: valid" 10

cat >"$T/client.py" <<'PY'
import smtplib, ssl, sys, os, time
port, stop, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ok = bad = 0
leaves = set()
while not os.path.exists(stop):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=15) as s:
            s.ehlo("client.example.test")
            s.starttls(context=ctx)
            leaves.add(s.sock.getpeercert(binary_form=True))
            s.ehlo("client.example.test")
            s.quit()
        ok += 1
    except Exception as e:
        bad += 1
        with open(out + ".bad", "a") as f:
            f.write(f"{time.time():.3f} {type(e).__name__}: {e}\n")
with open(out, "w") as f:
    f.write(f"{ok} {bad} {len(leaves)}\n")
PY
python3 "$T/client.py" "$smtp" "$T/stop" "$T/client.result" &
CS_PIDS+=($!)

start=$(date +%s)
for ((i = 0; i < RENEWALS; i++)); do
	"$CERTSYNCCTL" -s "$T/certsync.sock" renew mail --force --wait >>"$T/renew.log" 2>&1 ||
		{ tail -5 "$T/renew.log"; tail -20 "$T/agent.log"; fail "forced renewal $i failed"; }
done
secs=$(($(date +%s) - start))
touch "$T/stop"
for ((i = 0; i < 400; i++)); do [ -s "$T/client.result" ] && break; sleep 0.05; done
read -r ok bad leaves <"$T/client.result" || fail "the client loop did not report"
verified=$(grep -c "mail: renewed: serial" "$T/agent.log")
echo "# $RENEWALS forced renewals (each reloaded and verified) in $secs s: $ok STARTTLS handshakes, $bad failed, $leaves distinct leaves served"
[ "$bad" = 0 ] || { cat "$T/client.result.bad"; grep -E "warning|fatal|error" "$T/postfix/maillog" | tail; fail "$bad STARTTLS handshakes failed"; }
[ "$ok" -ge "$RENEWALS" ] || fail "only $ok handshakes during $RENEWALS renewals"
[ "$leaves" -ge $((RENEWALS / 2)) ] || fail "the client saw only $leaves leaves"
[ "$verified" -ge "$RENEWALS" ] || fail "only $verified renewals logged"
[ "$(served)" = "$(live_sha)" ] || fail "Postfix does not serve the live generation at the end"
grep -q "warning: .*\(key\|certificate\)" "$T/postfix/maillog" &&
	{ grep "warning" "$T/postfix/maillog" | tail -5; fail "Postfix warned about its key or certificate"; }
pass "$RENEWALS renewals with Postfix on the live paths: $ok STARTTLS handshakes, 0 failed"
