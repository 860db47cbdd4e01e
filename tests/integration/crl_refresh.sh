#!/usr/bin/env bash
# The local CA's CRL stays fresh (issue 15 item 10): once a CRL exists (after a
# revocation), the running agent signs the next one when the configured share
# of its lifetime is left (crl_validity = 20s, crl_renew_before = 50% here)
# and publishes it into the capath, so that it never expires silently; and a
# crl.pem written into the CA directory by `openssl ca -gencrl` is published
# within seconds.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out" "$T/capath"
std_conf "" "crl_validity     = 20s
crl_renew_before = 50%" >"$T/certsync.conf"
cat >>"$T/certsync.conf" <<CONF

[capath "trust"]
dir     = $T/capath
issuers = local
CONF
lastupdate() { openssl crl -in "$1" -noout -lastupdate 2>/dev/null | cut -d= -f2; }
epoch() { date -u -d "$1" +%s; }

spawn_agent
wait_for "$T/agent.log" "mail: renewed: serial" 10
"$CERTSYNCCTL" -s "$T/certsync.sock" revoke mail >"$T/revoke.out" 2>&1 || { cat "$T/revoke.out" >&2; fail "revoke"; }
for _ in $(seq 100); do [ -f "$T/capath/local-ca.crl" ] && break; sleep 0.05; done
[ -f "$T/capath/local-ca.crl" ] || fail "the CRL was not published after the revocation"
first=$(lastupdate "$T/ca/crl.pem")
pass "after a revocation the CRL ($first) is published into the capath"

# About 10 s later (half of 20 s) the next one is signed and published.
for _ in $(seq 300); do
	[ "$(lastupdate "$T/capath/local-ca.crl")" != "$first" ] && break
	sleep 0.1
done
second=$(lastupdate "$T/capath/local-ca.crl")
[ "$second" != "$first" ] || { tail "$T/agent.log" >&2; fail "no new CRL published within 30 s"; }
gap=$(($(epoch "$second") - $(epoch "$first")))
[ "$gap" -ge 8 ] && [ "$gap" -le 14 ] || fail "the CRL was signed again after $gap s, not about 10 s"
next=$(openssl crl -in "$T/capath/local-ca.crl" -noout -nextupdate | cut -d= -f2)
[ "$(epoch "$next")" -gt "$(date -u +%s)" ] || fail "the published CRL is already out of date"
openssl crl -in "$T/capath/local-ca.crl" -noout -text | has "Serial Number" ||
	fail "the new CRL lost the revoked serial"
pass "the next CRL was signed $gap s after the first (half of 20 s) and published; still listing the revocation"

# openssl ca -gencrl in the CA directory: published at once.
cat >"$T/ossl.cnf" <<CNF
[ca]
default_ca = CA_default
[CA_default]
dir = $T/ca
database = \$dir/index.txt
crlnumber = \$dir/crlnumber
default_md = sha256
default_crl_days = 30
CNF
sleep 1.1 # a lastUpdate of its own second
openssl ca -gencrl -config "$T/ossl.cnf" -keyfile "$T/ca/private/cakey.pem" -cert "$T/ca/cacert.pem" \
	-out "$T/gencrl.pem" 2>"$T/ossl.err" || fail "openssl ca -gencrl: $(cat "$T/ossl.err")"
cp "$T/gencrl.pem" "$T/ca/crl.pem.new" && mv "$T/ca/crl.pem.new" "$T/ca/crl.pem"
mine=$(lastupdate "$T/gencrl.pem")
for _ in $(seq 60); do
	[ "$(lastupdate "$T/capath/local-ca.crl")" = "$mine" ] && break
	sleep 0.05
done
[ "$(lastupdate "$T/capath/local-ca.crl")" = "$mine" ] || fail "the CRL made by openssl ca -gencrl was not published within 3 s"
pass "a CRL made with openssl ca -gencrl is published within seconds"
