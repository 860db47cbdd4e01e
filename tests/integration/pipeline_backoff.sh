#!/usr/bin/env bash
# A failing issuer: the running agent backs off with growing delays (shown in
# the log, kept in the state with the failure count and the last error), and
# recovers by itself once the issuer works again. Then the exit status of
# --once as scripts use it: 1 when something failed (with the summary line),
# 0 when all was renewed, 2 for a configuration error.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out"
# The cert is due about 6 s after issuance (renew_before = 95%).
std_conf "retry_min = 2s
retry_max = 8s" "validity = 2m" "renew_before = 95%" >"$T/certsync.conf"

st=$T/state/certs/mail.json
json() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$st"; }
# The CA cannot store what it issues while newcerts/ is a file.
break_ca() { mv "$T/ca/newcerts" "$T/ca/newcerts.off" && : >"$T/ca/newcerts"; }
fix_ca() { rm "$T/ca/newcerts" && mv "$T/ca/newcerts.off" "$T/ca/newcerts"; }

spawn_agent
wait_for "$T/agent.log" "mail: renewed: serial" 10
serial1=$(openssl x509 -in "$T/out/mail.pem" -noout -serial | cut -d= -f2)
break_ca
pass "first certificate issued; the CA is now broken"

for _ in $(seq 400); do
	[ "$(grep -c "mail: renewal failed" "$T/agent.log")" -ge 4 ] && break
	sleep 0.1
done
grep "mail: renewal failed" "$T/agent.log" >"$T/failures.log" || true
[ "$(wc -l <"$T/failures.log")" -ge 4 ] || { cat "$T/agent.log" >&2; fail "not four failures in 40 s"; }
grep -q "(1 in a row)" "$T/failures.log" && grep -q "(4 in a row)" "$T/failures.log" ||
	fail "failures are not counted: $(cat "$T/failures.log")"
grep -q "newcerts" "$T/failures.log" || fail "the log does not say what failed"
# The delays, in seconds, as logged: "next attempt in 2s (2 s, at ...)".
mapfile -t delays < <(sed -n 's/.*next attempt in [^(]*(\([0-9]*\) s, at.*/\1/p' "$T/failures.log")
[ "${#delays[@]}" -ge 4 ] || fail "no delays in the log: $(cat "$T/failures.log")"
# Doubling from 2 s, each up to 20% shorter (jitter), capped at 8 s: 2, 3-4, 6-8, 6-8.
[ "${delays[0]}" -ge 2 ] || fail "first delay ${delays[0]} is under retry_min"
[ "${delays[1]}" -gt "${delays[0]}" ] && [ "${delays[2]}" -gt "${delays[1]}" ] ||
	fail "delays do not grow: ${delays[*]}"
[ "${delays[3]}" -ge 6 ] || fail "the fourth delay is not near the cap: ${delays[*]}"
for d in "${delays[@]}"; do [ "$d" -le 8 ] || fail "delay $d over retry_max: ${delays[*]}"; done
pass "the agent backs off: delays ${delays[*]} s (retry_min 2s, retry_max 8s)"

[ "$(json failures)" -ge 3 ] || fail "the state does not count the failures: $(cat "$st")"
grep -q '"last_error": ".*newcerts' "$st" || fail "the state has no last_error: $(cat "$st")"
[ "$(json next_attempt)" -gt 0 ] || fail "no next_attempt in the state"
openssl x509 -in "$T/out/mail.pem" -noout -checkend 0 >/dev/null ||
	fail "the valid certificate was removed while failing"
[ "$(openssl x509 -in "$T/out/mail.pem" -noout -serial | cut -d= -f2)" = "$serial1" ] ||
	fail "the deployed certificate changed while the issuer failed"
pass "the state keeps the failure count, last_error and next attempt; the deployed certificate is untouched"

fix_ca
n=$(grep -c "mail: renewed: serial" "$T/agent.log")
for _ in $(seq 150); do
	[ "$(grep -c "mail: renewed: serial" "$T/agent.log")" -gt "$n" ] && break
	sleep 0.1
done
[ "$(grep -c "mail: renewed: serial" "$T/agent.log")" -gt "$n" ] ||
	{ tail -5 "$T/agent.log" >&2; fail "no recovery within 15 s of the fix"; }
sleep 0.3
[ "$(json failures)" = 0 ] || fail "failures not reset after the recovery: $(cat "$st")"
grep -q '"last_error": null' "$st" || fail "last_error not cleared: $(cat "$st")"
[ "$(openssl x509 -in "$T/out/mail.pem" -noout -serial | cut -d= -f2)" != "$serial1" ] ||
	fail "not renewed"
pass "the agent recovers by itself when the issuer works again"
stop_agent

# --once: exit 1 with a summary when an issuance fails.
cat >"$T/once.conf" <<CONF
[agent]
state_dir = $T/state2

[issuer "local"]
type = local-ca
dir  = $T/ca

[cert "a"]
issuer = local
names  = a.example.test
bundle = $T/out/a.pem

[cert "b"]
issuer = local
names  = b.example.test
bundle = $T/out/b.pem
CONF
break_ca
set +e
"$CERTSYNCD" --once -c "$T/once.conf" 2>"$T/once1.log"
rc=$?
set -e
[ $rc -eq 1 ] || { cat "$T/once1.log" >&2; fail "--once with a failing issuer exited $rc, not 1"; }
grep -q "one pass over 2 cert(s): 0 renewed, 0 repaired, 0 valid, 2 failed" "$T/once1.log" ||
	fail "no summary: $(cat "$T/once1.log")"
grep -q "a: renewal failed: issuer local" "$T/once1.log" || fail "the failure is not named"
pass "--once with a failing issuer: exit 1, summary, each failure named"

fix_ca
set +e
"$CERTSYNCD" --once -c "$T/once.conf" 2>"$T/once2.log"
rc=$?
set -e
[ $rc -eq 0 ] || { cat "$T/once2.log" >&2; fail "--once after the fix exited $rc, not 0"; }
grep -q "one pass over 2 cert(s): 2 renewed, 0 repaired, 0 valid, 0 failed" "$T/once2.log" ||
	fail "no summary: $(cat "$T/once2.log")"
for f in a b; do "$CERTSYNCCTL" inspect "$T/out/$f.pem" >/dev/null || fail "$f.pem not usable"; done
pass "--once when all renewals succeed: exit 0"

echo "[cert \"c\"]" >>"$T/once.conf"
set +e
"$CERTSYNCD" --once -c "$T/once.conf" 2>"$T/once3.log"
rc=$?
set -e
[ $rc -eq 2 ] || fail "--once with a configuration error exited $rc, not 2"
pass "--once with a configuration error: exit 2"
