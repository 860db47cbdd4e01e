#!/usr/bin/env bash
# Issue 16, "examine only what changed": a start that finds every output as
# the state last saw it valid (the same bytes, the same configuration and
# trust anchors, inside the validity) takes the details from the state and
# decodes nothing; anything else is examined as before. Each case below would
# be a wrong verdict if the shortcut were taken where it must not be.
. "$(dirname "$0")/lib.bash"
command -v faketime >/dev/null || { echo "SKIP: faketime is needed"; exit 77; }

mkdir -p "$T/out"
conf() {
	cat >"$T/certsync.conf" <<CONF
[agent]
state_dir = $T/state
socket    = $T/sock

[issuer "ca"]
type     = local-ca
dir      = $T/ca
validity = 30d

[cert "mail"]
issuer    = ca
names     = ${1:-mail.example.test}
bundle    = $T/out/mail.pem
keyfile   = $T/out/mail.key
fullchain = $T/out/mail.crt
reuse_key = yes
CONF
}
once() { # once LOG [faketime offset]: certsyncd --once, its exit status checked
	local log=$1
	shift
	if [ $# -gt 0 ]; then
		# faketime is an LD_PRELOAD: under AddressSanitizer it comes before the runtime.
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
			FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "$1" "$CERTSYNCD" -f --once -c "$T/certsync.conf" 2>"$T/$log"
	else
		"$CERTSYNCD" -f --once -c "$T/certsync.conf" 2>"$T/$log"
	fi || { rc=$?; cat "$T/$log" >&2; fail "--once ($log) exited $rc"; }
}
known() { grep -q "mail: deployed certificate .* is valid (as last examined)" "$T/$1"; }
serial() { openssl x509 -in "$T/out/mail.crt" -noout -serial | sed 's/.*=//'; }
pubkey() { openssl pkey -in "$T/out/mail.key" -pubout | sha256sum; }

conf
once issue.log
grep -q "mail: renewed: serial" "$T/issue.log" || { cat "$T/issue.log" >&2; fail "not issued"; }
s1=$(serial) k1=$(pubkey)
python3 - "$T/state/certs/mail.json" "$s1" <<'PY' || fail "the state does not record what was found valid"
import json, sys
st = json.load(open(sys.argv[1]))
seen = st["seen"]
assert len(seen["fp"]) == 64 and seen["serial"] == sys.argv[2], seen
assert seen["sha256"] == st["generations"][0]["sha256"], seen
PY
once known.log
known known.log || { cat "$T/known.log" >&2; fail "an unchanged set was decoded again"; }
grep -q "1 valid, 0 failed" "$T/known.log" || { cat "$T/known.log" >&2; fail "not counted valid"; }
pass "nothing changed: the outputs are taken as the state saw them, nothing decoded"

# The same bytes again (a touch, a copy over itself) are still known.
touch "$T/out/mail.pem"
cp -p "$T/out/mail.crt" "$T/out/mail.crt.tmp" && mv "$T/out/mail.crt.tmp" "$T/out/mail.crt"
once touched.log
known touched.log || { cat "$T/touched.log" >&2; fail "a touched but unchanged file was decoded again"; }
pass "the same bytes with a new inode and mtime are still known"

# Another key in the key file: mismatched with the certificate, and repaired.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/other.key" 2>/dev/null
cat "$T/other.key" >"$T/out/mail.key"
once mismatch.log
known mismatch.log && { cat "$T/mismatch.log" >&2; fail "a changed key file was taken as known"; }
grep -q "mail: repaired from generation 1" "$T/mismatch.log" ||
	{ cat "$T/mismatch.log" >&2; fail "the mismatched key file was not repaired"; }
[ "$(pubkey)" = "$k1" ] || fail "the key file was not put back"
pass "another key in the key file is examined and repaired"
once after_repair.log
known after_repair.log || { cat "$T/after_repair.log" >&2; fail "not known after the repair"; }
pass "the repaired set is known at the next start"

# Another name in the configuration: the same files do not cover it.
conf "mail.example.test, smtp.example.test"
once names.log
known names.log && { cat "$T/names.log" >&2; fail "a changed configuration was taken as known"; }
grep -q "mail: renewed: serial" "$T/names.log" || { cat "$T/names.log" >&2; fail "not renewed for the new name"; }
openssl x509 -in "$T/out/mail.crt" -noout -ext subjectAltName | has smtp.example.test ||
	fail "the new certificate does not cover the new name"
s2=$(serial) k2=$(pubkey)
pass "a new name in the configuration is examined and renewed"

# A renewal of a set taken from the state reads the deployed material from
# its generation: reuse_key keeps the key.
spawn_agent
wait_for "$T/agent.log" "mail: deployed certificate .* is valid (as last examined)" 10
"$CERTSYNCCTL" -s "$T/sock" renew mail --force --wait >"$T/renew.out" 2>&1 ||
	{ cat "$T/renew.out" "$T/agent.log" >&2; fail "renew --force --wait failed"; }
[ "$(serial)" != "$s2" ] || fail "not renewed"
[ "$(pubkey)" = "$k2" ] || fail "reuse_key: the key of a set taken from the state was not reused"
grep -q "cannot read the deployed material" "$T/agent.log" && fail "the deployed material was not found"
kill -TERM $agent
wait $agent || true
s2=$(serial)
pass "a forced renewal after such a start reuses the key read from the generation"

# The issuer's trust anchor replaced: examined again (the chain no longer
# verifies to it; the deployed generation stays the agent's own, as before).
once before_ca.log
known before_ca.log || { cat "$T/before_ca.log" >&2; fail "not known before the CA change"; }
cp -a "$T/ca" "$T/ca.saved"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=Another CA" \
	-keyout "$T/ca/private/cakey.pem" -out "$T/ca/cacert.pem" -days 30 2>/dev/null
once ca.log
known ca.log && { cat "$T/ca.log" >&2; fail "a changed trust anchor was taken as known"; }
grep -q "1 valid, 0 failed" "$T/ca.log" || { cat "$T/ca.log" >&2; fail "not valid after examination"; }
rm -rf "$T/ca" && mv "$T/ca.saved" "$T/ca"
once restored.log
known restored.log && { cat "$T/restored.log" >&2; fail "the CA put back was taken as known"; }
pass "another CA certificate: examined again"

# The generation kept for the deployed set is gone: examined again.
once before_gen.log
known before_gen.log || { cat "$T/before_gen.log" >&2; fail "not known before removing the generation"; }
gen=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["generations"][0]["n"])' "$T/state/certs/mail.json")
mv "$T/state/generations/mail/$gen.pem" "$T/gen.saved"
once nogen.log
known nogen.log && { cat "$T/nogen.log" >&2; fail "taken as known without the generation to read it from"; }
grep -q "1 valid, 0 failed" "$T/nogen.log" || { cat "$T/nogen.log" >&2; fail "not valid after examination"; }
pass "without the generation file the outputs are examined"
mv "$T/gen.saved" "$T/state/generations/mail/$gen.pem"

# Thirty-one days later the certificate has expired: never taken as valid.
once before_time.log
known before_time.log || { cat "$T/before_time.log" >&2; fail "not known before the clock moved"; }
once expired.log +31d
known expired.log && { cat "$T/expired.log" >&2; fail "an expired certificate was taken as known"; }
grep -q "mail: renewed: serial" "$T/expired.log" || { cat "$T/expired.log" >&2; fail "the expired certificate was not renewed"; }
pass "past the end of the validity the outputs are examined (and renewed)"
