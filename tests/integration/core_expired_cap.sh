#!/usr/bin/env bash
# When nothing valid is deployed (here: an expired certificate) the retry
# delay after a failure is capped at 5 minutes whatever retry_max says: with
# retry_max = 6h, retry_min = 1s and a state that already counts 12 failures
# in a row, the next failure of a broken issuer is logged as
# "renewal failed (13 in a row): ...; next attempt in D (S s, at T)" with
# 1 <= S <= 300 (uncapped it would be about 2^12 s, over an hour), and the
# state's next_attempt is at most 300 s away. A host whose certificate has
# expired must not wait hours for the next try. The cap never goes under
# retry_min: restarted with retry_min = 400s, the next delay is 400 s.
. "$(dirname "$0")/core_lib.bash"

# An expired certificate for mail.example.test from a throwaway CA.
old=$T/oldca
mkdir -p "$old/newcerts" "$OUT"
: >"$old/index.txt"
echo 01 >"$old/serial"
cat >"$old.cnf" <<EOC
[ ca ]
default_ca = d
[ d ]
dir = $old
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
certificate = \$dir/cacert.pem
serial = \$dir/serial
private_key = \$dir/key.pem
default_md = sha256
policy = p
copy_extensions = copy
[ p ]
commonName = supplied
EOC
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$old/key.pem" \
	-out "$old/cacert.pem" -subj "/CN=Old test CA" -days 3650 2>"$T/ossl.err" || fail "CA: $(cat "$T/ossl.err")"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/leaf.key" \
	-out "$T/leaf.csr" -subj /CN=mail.example.test -addext subjectAltName=DNS:mail.example.test \
	2>"$T/ossl.err" || fail "CSR: $(cat "$T/ossl.err")"
openssl ca -config "$old.cnf" -batch -startdate 20200101000000Z -enddate 20200201000000Z \
	-in "$T/leaf.csr" -out "$T/leaf.pem" 2>"$T/ossl.err" || fail "openssl ca: $(cat "$T/ossl.err")"
cat "$T/leaf.key" "$T/leaf.pem" "$old/cacert.pem" >"$OUT/mail.pem"
chmod 0600 "$OUT/mail.pem"
openssl x509 -in "$OUT/mail.pem" -noout -checkend 0 >/dev/null && fail "the made-up certificate is not expired"

# The issuer's directory is a regular file: every request fails.
: >"$CA"
# write_state N: the state of mail after N failures in a row, due now.
write_state() {
	mkdir -p "$ST/certs"
	cat >"$ST/certs/mail.json" <<JSON
{
  "failures": $1,
  "generations": [],
  "last_attempt": $(($(date +%s) - 100)),
  "last_error": "issuer local: earlier failure",
  "last_success": 0,
  "next_attempt": 0,
  "next_due": 0,
  "next_generation": 1,
  "retry_after": 0
}
JSON
}
write_state 12
core_conf "retry_min = 1s
retry_max = 6h"
pass "an expired certificate in $OUT/mail.pem, $CA is a file, the state counts 12 failures"

start_agent
until_count "mail: renewal failed ([0-9]* in a row)" 1 15
line=$(failure_lines | head -n 1)
pass "logged: ${line#* certsyncd }"
k=$(failure_ks | head -n 1)
s=$(failure_ss | head -n 1)
[ "$k" = 13 ] || fail "the failure is counted as $k in a row, not 13 (12 from the state + 1)"
[ -n "$s" ] || fail "no 'next attempt in D (S s, at T)' in: $line"
[ "$s" -le 300 ] || fail "with an expired certificate the next attempt is $s s away, over the 300 s cap: $line"
[ "$s" -ge 1 ] || fail "the next attempt ($s s) is under retry_min (1 s)"
pass "13 in a row, next attempt in $s s (<= 300 although retry_max is 6h)"

for ((i = 0; i < 40; i++)); do
	[ "$(state 'j["failures"]')" = 13 ] && break
	sleep 0.05
done
[ "$(state 'j["failures"]')" = 13 ] || fail "the state counts $(state 'j["failures"]') failures, not 13"
na=$(state 'j["next_attempt"]')
[ "$na" -le $(($(date +%s) + 300)) ] || fail "the state's next_attempt is $((na - $(date +%s))) s away, over 300"
show_json
st=$(json "$T/show.json" 'j["state"]')
[ "$st" = expired ] || fail "show says state '$st' for an expired certificate"
pass "state: failures 13, next_attempt $((na - $(date +%s))) s away; show: expired"
stop_agent

core_conf "retry_min = 400s
retry_max = 6h"
write_state 13
: >"$T/agent.log"
start_agent
until_count "mail: renewal failed ([0-9]* in a row)" 1 15
line=$(failure_lines | head -n 1)
s=$(failure_ss | head -n 1)
[ "$(failure_ks | head -n 1)" = 14 ] || fail "not counted as 14 in a row after the restart: $line"
[ "$s" = 400 ] || fail "with retry_min = 400s the capped delay is $s s, not 400: $line"
pass "retry_min 400s above the cap: next attempt in $s s"
stop_agent
