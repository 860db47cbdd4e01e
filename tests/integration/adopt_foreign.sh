#!/usr/bin/env bash
# Someone else's certificate (issue 15 item 9): a valid certificate for the
# names from another CA, put in place by hand, is kept where it is - never
# reverted - but not taken as the agent's own: a warning, `show` says
# "foreign", and its renewal is scheduled from its own dates. `certsyncctl
# adopt mail` takes it as a generation at once; afterwards it is repaired
# from that generation like any other. With allow_foreign = yes it is taken
# without asking. Files that are not usable are refused by adopt, not repaired.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out"
conf() {
	std_conf "settle    = 0" "" "$1" >"$T/certsync.conf"
}
ctl() { "$CERTSYNCCTL" -s "$T/certsync.sock" "$@"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
other_ca_cert() { # other_ca_cert OUT: a leaf for mail.example.test from another CA, in a bundle
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
		-subj "/CN=Other CA" -keyout "$T/oca.key" -out "$T/oca.pem" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=mail.example.test \
		-keyout "$T/o.key" 2>/dev/null |
		openssl x509 -req -CA "$T/oca.pem" -CAkey "$T/oca.key" -set_serial "0x$(openssl rand -hex 8)" \
			-days 40 -out "$T/o.crt" \
			-extfile <(printf 'subjectAltName=DNS:mail.example.test\nextendedKeyUsage=serverAuth\n') 2>/dev/null
	cat "$T/o.key" "$T/o.crt" "$T/oca.pem" >"$1"
}

conf ""
spawn_agent
wait_for "$T/agent.log" "mail: renewed: serial" 10
sleep 0.5
other_ca_cert "$T/foreign.pem"
fserial=$(openssl x509 -in "$T/o.crt" -noout -serial | cut -d= -f2)
cp "$T/foreign.pem" "$T/out/mail.pem"
wait_for "$T/agent.log" "mail: the deployed certificate $fserial is not from issuer local" 5
sleep 0.5
[ "$(sha "$T/out/mail.pem")" = "$(sha "$T/foreign.pem")" ] || fail "the foreign certificate was reverted"
ctl --json show mail >"$T/show.json" || true
python3 - "$T/show.json" "$fserial" <<'PY' || { cat "$T/show.json" >&2; fail "show"; }
import json, sys
c = json.load(open(sys.argv[1]))["cert"]
assert c["deployed"] == "foreign", c
assert "does not verify" in c["deployed_reason"], c
assert c["serial"] == sys.argv[2], c
assert c["next_renewal_reason"] != "nothing usable is deployed", c
PY
pass "a certificate of another CA copied over is kept, shown as foreign, renewed on its own schedule"

ctl adopt mail >"$T/adopt.out" 2>&1 || { cat "$T/adopt.out" >&2; fail "adopt exited non-zero"; }
grep -q "^mail: adopted $fserial as generation [0-9]*" "$T/adopt.out" || { cat "$T/adopt.out" >&2; fail "adopt output"; }
ctl --json show mail | has '"deployed": *"ok"' || fail "show does not say ok after adopt"
# It is the agent's own now: a deleted output is repaired from it.
rm "$T/out/mail.pem"
for _ in $(seq 100); do [ -f "$T/out/mail.pem" ] && break; sleep 0.05; done
[ "$(sha "$T/out/mail.pem")" = "$(sha "$T/foreign.pem")" ] || fail "not repaired from the adopted generation"
pass "certsyncctl adopt takes it as a generation; a deleted output is then repaired from it"

# adopt refuses what is not usable, and leaves it alone.
echo garbage >"$T/out/mail.pem"
set +e
ctl adopt mail >"$T/adopt2.out" 2>&1
rc=$?
set -e
[ $rc = 1 ] || { cat "$T/adopt2.out" >&2; fail "adopt of garbage exited $rc"; }
grep -q "cannot be adopted" "$T/adopt2.out" || { cat "$T/adopt2.out" >&2; fail "adopt refusal message"; }
ctl adopt nosuch >/dev/null 2>&1 && fail "adopt of an unknown cert succeeded"
pass "adopt refuses unusable files (exit 1, the reason) and unknown certs"
kill -TERM $agent
wait $agent || true

# allow_foreign = yes: taken without asking.
rm -rf "$T/state" "$T/out"/*
conf "allow_foreign = yes"
cp "$T/foreign.pem" "$T/out/mail.pem"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/once.log" || { cat "$T/once.log" >&2; fail "--once"; }
grep -q "mail: adopting certificate $fserial although it is not from issuer local" "$T/once.log" ||
	{ cat "$T/once.log" >&2; fail "allow_foreign did not adopt"; }
[ "$(sha "$T/out/mail.pem")" = "$(sha "$T/foreign.pem")" ] || fail "the foreign certificate was replaced"
pass "allow_foreign = yes adopts it without asking"
