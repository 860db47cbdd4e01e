#!/usr/bin/env bash
# certsyncctl revoke with a local CA, against a running certsyncd -f: a
# socket_group member (nobody, as in ctlsock_auth.sh) is refused; bad reasons,
# unknown certs and a cert with nothing deployed are errors; an admin's
# `revoke mail --reason keyCompromise` marks the deployed serial R with that
# reason in index.txt, puts it in DIR/crl.pem, and a new certificate (with a
# new key, although reuse_key is on) is deployed afterwards. The new CRL is
# published into the [capath] that names the issuer.
. "$(dirname "$0")/ctlsock_lib.bash"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to switch users"; exit 77; }
command -v setpriv >/dev/null || { echo "SKIP: setpriv is needed"; exit 77; }
getent group adm >/dev/null || { echo "SKIP: group adm is needed"; exit 77; }
ADM=$(getent group adm | cut -d: -f3)
chmod 0711 "$T" # nobody must reach the socket

write_conf "socket_mode = 0666
socket_group = adm"
sed -i '/^bundle = .*mail.pem/a reuse_key = yes' "$T/certsync.conf"
mkdir -p "$T/capath"
printf '\n[capath "trust"]\ndir     = %s\nissuers = local\n' "$T/capath" >>"$T/certsync.conf"
start_agent
serial() { openssl x509 -in "$T/out/mail.pem" -noout -serial | cut -d= -f2; }
pubkey() { openssl x509 -in "$T/out/mail.pem" -noout -pubkey | openssl sha256; }
s1=$(serial)
k1=$(pubkey)
[ -n "$s1" ] || fail "no serial deployed for mail"

set +e
setpriv --reuid=65534 --regid=65534 --groups="$ADM" "$CERTSYNCCTL" -s "$SOCK" \
	revoke mail --reason keyCompromise >"$T/stdout" 2>"$T/stderr"
rc=$?
set -e
[ $rc = 1 ] || fail "a socket_group member's revoke exited $rc, not 1"
in_err "permission denied: uid 65534 may not change anything"
grep -q "^R" "$T/ca/index.txt" && fail "a reader's revoke revoked: $(cat "$T/ca/index.txt")"
grep -q 'refused "revoke" from uid 65534' "$T/agent.log" || fail "the refusal is not logged"
pass "a socket_group member may not revoke (exit 1, permission denied, index.txt unchanged)"

expect 2 revoke
expect 1 revoke mail --reason CACompromise
in_err 'unknown revocation reason "CACompromise"'
expect 1 revoke nosuch
in_err 'no cert "nosuch" in the configuration'
expect 1 revoke web
in_err "nothing is deployed for web"
grep -q "^R" "$T/ca/index.txt" && fail "a refused revoke revoked: $(cat "$T/ca/index.txt")"
pass "usage (exit 2), a bad reason, an unknown cert and a cert with nothing deployed (exit 1, the agent's message)"

expect 0 revoke mail --reason keyCompromise
[ "$(cat "$T/stdout")" = "revoked $s1 (reason keyCompromise); a new certificate is being issued" ] ||
	fail "revoke printed: $(cat "$T/stdout")"
awk -F'\t' -v s="$s1" '$1 == "R" && $4 == s && $3 ~ /^[0-9]+Z,keyCompromise$/ {found=1} END {exit !found}' \
	"$T/ca/index.txt" || fail "index.txt has no R line for $s1 with keyCompromise: $(cat "$T/ca/index.txt")"
openssl crl -in "$T/ca/crl.pem" -noout -text >"$T/crl.txt" || fail "crl.pem is not a CRL"
grep -q "Serial Number: $s1\$" "$T/crl.txt" || { cat "$T/crl.txt" >&2; fail "the CRL does not list $s1"; }
grep -A4 "Serial Number: $s1\$" "$T/crl.txt" | has "Key Compromise" ||
	{ cat "$T/crl.txt" >&2; fail "the CRL entry for $s1 has no keyCompromise reason"; }
openssl crl -in "$T/ca/crl.pem" -noout -CAfile "$T/ca/cacert.pem" 2>&1 | has "verify OK" ||
	fail "the CRL does not verify with the CA certificate"
grep -q "mail: revoked certificate $s1 with issuer local (reason keyCompromise)" "$T/agent.log" ||
	fail "the revocation is not logged"
for _ in $(seq 100); do cmp -s "$T/capath/local-ca.crl" "$T/ca/crl.pem" && break; sleep 0.05; done
cmp -s "$T/capath/local-ca.crl" "$T/ca/crl.pem" || fail "the new CRL was not published into the capath"
pass "revoke mail --reason keyCompromise: index.txt has R $s1 keyCompromise, crl.pem lists it"

for _ in $(seq 100); do [ "$(serial)" != "$s1" ] && break; sleep 0.1; done
s2=$(serial)
[ "$s2" != "$s1" ] || fail "no new certificate deployed after the revocation"
awk -F'\t' -v s="$s2" '$1 == "V" && $4 == s {found=1} END {exit !found}' "$T/ca/index.txt" ||
	fail "the new serial $s2 is not valid in index.txt"
[ "$(pubkey)" != "$k1" ] || fail "the renewal after a revocation reused the revoked key"
expect 0 revoke mail
in_out "revoked $s2 (reason unspecified)"
for _ in $(seq 100); do [ "$(serial)" != "$s2" ] && break; sleep 0.1; done
[ "$(serial)" != "$s2" ] || fail "no new certificate after the second revocation"
stop_agent
pass "a new certificate ($s2, new key) was deployed after the revocation; a second revoke (unspecified) works too"
