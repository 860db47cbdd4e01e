#!/usr/bin/env bash
# A certificate put in place by hand over a multi-file output - key file,
# fullchain and bundle copied one second apart - is accepted as a whole once
# the files have been quiet for `settle` (3 s by default), never reverted
# half-way (issue 15 item 9): the agent logs that it accepts it, keeps it as a
# generation, and the outputs hold the administrator's certificate and key.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out"
std_conf "" "" "fullchain = $T/out/mail.crt
keyfile   = $T/out/mail.key" >"$T/certsync.conf"

spawn_agent
wait_for "$T/agent.log" "mail: renewed: serial" 10
sleep 0.5

# The administrator's own certificate from the same CA, made with openssl.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=mail.example.test" \
	-keyout "$T/own.key" -out "$T/own.csr" 2>/dev/null
printf 'subjectAltName = DNS:mail.example.test\nextendedKeyUsage = serverAuth\n' >"$T/ext"
openssl x509 -req -in "$T/own.csr" -CA "$T/ca/cacert.pem" -CAkey "$T/ca/private/cakey.pem" \
	-CAcreateserial -days 20 -extfile "$T/ext" -out "$T/own.crt" 2>/dev/null
cat "$T/own.crt" "$T/ca/cacert.pem" >"$T/own.full"
cat "$T/own.key" "$T/own.full" >"$T/own.bundle"
own=$(openssl x509 -in "$T/own.crt" -noout -serial | cut -d= -f2)

cp "$T/own.key" "$T/out/mail.key"
sleep 1
cp "$T/own.full" "$T/out/mail.crt"
sleep 1
cp "$T/own.bundle" "$T/out/mail.pem"
wait_for "$T/agent.log" "accepting it" 10
sleep 0.5
grep -q "mail: repaired from generation" "$T/agent.log" &&
	{ cat "$T/agent.log" >&2; fail "the half-copied set was reverted"; }
for f in mail.key mail.crt mail.pem; do
	cmp -s "$T/out/$f" "$T/own.${f#mail.}" 2>/dev/null || cmp -s "$T/out/$f" "$T/own.$([ "$f" = mail.crt ] && echo full || echo bundle)" ||
		fail "$f is not the administrator's any more"
done
grep -q "serial $own" "$T/agent.log" || fail "the log does not name the accepted serial $own"
pass "key, fullchain and bundle copied 1 s apart: accepted as one certificate ($own), nothing reverted"
