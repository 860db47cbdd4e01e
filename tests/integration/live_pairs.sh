#!/usr/bin/env bash
# The live directory (issue 19, atomic key and certificate pairs):
# `[agent] live_dir` makes LIVE/mail a link to LIVE/.gen/mail/ID, one
# directory per generation, swapped with one rename(2). While the running
# agent is forced to renew LIVE_RENEWALS (default 200) times:
#   - a reader that opens LIVE/mail once per pass and reads privkey.pem and
#     fullchain.pem relative to it never sees a key that does not match the
#     leaf (0 mismatches), and reads many pairs;
#   - a naive reader opening the two paths one after the other is counted
#     too, for the documentation (its window is the time between two opens);
# then: the generation directories are pruned to those the state keeps,
# modes are the configured ones, the fixed-path outputs are still written,
# a deleted link and a damaged file in the live generation are repaired,
# `live_dir = none` opts a cert out, a cert named ".x" is refused with the
# file and line, and a LIVE/NAME the agent did not make is never replaced.
. "$(dirname "$0")/lib.bash"

RENEWALS=${LIVE_RENEWALS:-200}
PY=/usr/bin/python3
"$PY" -c 'import cryptography' 2>/dev/null || { echo "SKIP: python3-cryptography is needed"; exit 77; }
mkdir -p "$T/out"
conf_head "live_dir  = $T/live
settle    = 0" "validity = 1h" >"$T/certsync.conf"
cat >>"$T/certsync.conf" <<CONF

[cert "mail"]
issuer       = local
names        = mail.example.test
renew_before = 10%
mode         = 0640
keyfile      = $T/out/mail.key
fullchain    = $T/out/mail.crt

[cert "other"]
issuer   = local
names    = other.example.test
live_dir = none
bundle   = $T/out/other.pem
CONF

spawn_agent
wait_for "$T/agent.log" "mail: renewed: serial" 15
wait_for "$T/agent.log" "other: renewed: serial" 15
[ "$(readlink "$T/live/mail")" = ".gen/mail/$(ls "$T/live/.gen/mail")" ] ||
	fail "live/mail is not a link to its generation: $(ls -la "$T/live" "$T/live/.gen/mail")"
[ ! -e "$T/live/other" ] || fail "live_dir = none: live/other was made"
for f in privkey.pem fullchain.pem cert.pem chain.pem bundle.pem; do
	[ -f "$T/live/mail/$f" ] || fail "live/mail/$f is missing"
done
[ "$(stat -c %a "$T/live/mail/privkey.pem")" = 640 ] || fail "privkey.pem is not 0640"
[ "$(stat -c %a "$T/live/mail/bundle.pem")" = 640 ] || fail "bundle.pem is not 0640"
[ "$(stat -c %a "$T/live/mail/fullchain.pem")" = 644 ] || fail "fullchain.pem is not 0644"
pass "live/mail leads to a generation directory with all five files and their modes"

cat >"$T/reader.py" <<'PY'
import os, sys, time
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

live, stop, out, naive = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "naive"

def pub(k):
    return k.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

def read_at(dfd, name):
    fd = os.open(name, os.O_RDONLY, dir_fd=dfd)
    try:
        return b"".join(iter(lambda: os.read(fd, 65536), b""))
    finally:
        os.close(fd)

pairs = bad = gone = 0
leaves = set()
while not os.path.exists(stop):
    try:
        if naive:
            # Two opens of two paths: each resolves the link on its own.
            key = open(f"{live}/privkey.pem", "rb").read()
            chain = open(f"{live}/fullchain.pem", "rb").read()
        else:
            # The link resolved once: both files from one generation.
            dfd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
            try:
                key = read_at(dfd, "privkey.pem")
                chain = read_at(dfd, "fullchain.pem")
            finally:
                os.close(dfd)
    except FileNotFoundError:
        gone += 1  # a generation pruned while held: read again
        continue
    k = serialization.load_pem_private_key(key, None)
    leaf = x509.load_pem_x509_certificate(chain)
    pairs += 1
    leaves.add(leaf.serial_number)
    if pub(k.public_key()) != pub(leaf.public_key()):
        bad += 1
        with open(out + ".bad", "a") as f:
            f.write(f"mismatch at pair {pairs}: leaf {leaf.serial_number:x}\n")
with open(out, "w") as f:
    f.write(f"{pairs} {bad} {gone} {len(leaves)}\n")
PY
"$PY" "$T/reader.py" "$T/live/mail" "$T/stop" "$T/reader.result" dirfd &
CS_PIDS+=($!)
"$PY" "$T/reader.py" "$T/live/mail" "$T/stop" "$T/naive.result" naive &
CS_PIDS+=($!)

start=$(date +%s.%N)
for ((i = 0; i < RENEWALS; i++)); do
	"$CERTSYNCCTL" -s "$T/certsync.sock" renew mail --force --wait >>"$T/renew.log" 2>&1 ||
		{ tail -5 "$T/renew.log"; tail -20 "$T/agent.log"; fail "forced renewal $i failed"; }
done
secs=$(echo "$(date +%s.%N) - $start" | bc)
touch "$T/stop"
for ((i = 0; i < 200; i++)); do
	[ -s "$T/reader.result" ] && [ -s "$T/naive.result" ] && break
	sleep 0.05
done
read -r pairs bad gone leaves <"$T/reader.result" || fail "the reader did not report"
read -r npairs nbad ngone nleaves <"$T/naive.result" || fail "the naive reader did not report"
renewed=$(grep -c "mail: renewed: serial" "$T/agent.log")
[ "$renewed" -ge $((RENEWALS + 1)) ] || fail "only $renewed renewals logged"
echo "# $RENEWALS forced renewals in ${secs%.*} s; reader through the opened directory: $pairs pairs, $bad mismatched, $gone generation(s) gone while held, $leaves distinct leaves"
echo "# naive reader (two opens of two paths): $npairs pairs, $nbad mismatched"
[ "$bad" = 0 ] || { cat "$T/reader.result.bad"; fail "$bad mismatched pairs read through the link"; }
[ "$pairs" -ge $((RENEWALS * 5)) ] || fail "the reader read only $pairs pairs"
[ "$leaves" -ge $((RENEWALS / 4)) ] || fail "the reader saw only $leaves of $RENEWALS generations"
pass "$RENEWALS forced renewals: $pairs pairs read through live/mail, 0 mismatched"

# Pruned to what the state keeps (the deployed generation and those before it).
sleep 0.5
ngen=$(find "$T/live/.gen/mail" -mindepth 1 -maxdepth 1 | wc -l)
[ "$ngen" -le 3 ] || fail "$ngen generation directories kept: $(ls "$T/live/.gen/mail")"
"$PY" - "$T/state/certs/mail.json" "$T/live/.gen/mail" "$(readlink "$T/live/mail")" <<'PY' ||
import json, os, sys
st = json.load(open(sys.argv[1]))
ids = {g["sha256"].replace(":", "").lower()[:16] for g in st["generations"]}
dirs = set(os.listdir(sys.argv[2]))
assert dirs <= ids, (dirs, ids)
assert sys.argv[3].rsplit("/", 1)[1] == st["generations"][0]["sha256"].replace(":", "").lower()[:16]
PY
	fail "the generation directories are not those the state keeps"
pass "old generation directories pruned to the $ngen the state keeps; the link on the newest"

pubkey() { openssl pkey -in "$1" -pubout 2>/dev/null | sha256sum; }
leafkey() { openssl x509 -in "$1" -noout -pubkey | sha256sum; }
[ "$(pubkey "$T/live/mail/privkey.pem")" = "$(pubkey "$T/out/mail.key")" ] &&
	cmp -s "$T/live/mail/fullchain.pem" "$T/out/mail.crt" ||
	fail "the fixed-path outputs are not the live generation"
pass "keyfile and fullchain at their fixed paths hold the live generation too"

# The link deleted: repaired, to the same generation.
target=$(readlink "$T/live/mail")
rm "$T/live/mail"
for ((i = 0; i < 100; i++)); do [ -L "$T/live/mail" ] && break; sleep 0.05; done
[ "$(readlink "$T/live/mail")" = "$target" ] || fail "the deleted link was not made again"
[ "$(pubkey "$T/live/mail/privkey.pem")" = "$(leafkey "$T/live/mail/fullchain.pem")" ] ||
	fail "the repaired link leads to a mismatched pair"
pass "a deleted live/mail link is repaired"

# A damaged file in the live generation: repaired in place.
echo garbage >"$T/live/mail/privkey.pem"
for ((i = 0; i < 100; i++)); do
	[ "$(pubkey "$T/live/mail/privkey.pem")" = "$(leafkey "$T/live/mail/fullchain.pem")" ] && break
	sleep 0.05
done
[ "$(pubkey "$T/live/mail/privkey.pem")" = "$(leafkey "$T/live/mail/fullchain.pem")" ] ||
	fail "the damaged privkey.pem was not repaired"
[ "$(stat -c %a "$T/live/mail/privkey.pem")" = 640 ] || fail "repaired privkey.pem is not 0640"
pass "a damaged privkey.pem in the live generation is repaired"
kill "$agent"
wait "$agent" 2>/dev/null || true
grep -E " error: " "$T/agent.log" && fail "the agent logged errors"

# A cert whose name begins with '.' cannot have a link beside .gen.
cat >"$T/bad.conf" <<CONF
[agent]
state_dir = $T/state2
live_dir  = $T/live2

[issuer "local"]
type = local-ca
dir  = $T/ca

[cert ".gen"]
issuer = local
names  = a.example.test
bundle = $T/out/a.pem
CONF
rc=0
"$CERTSYNCD" --check-config -c "$T/bad.conf" >"$T/bad.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "a cert named .gen with live_dir passed --check-config ($rc)"
grep -q "bad.conf:9: \[cert \".gen\"\]: .*must not begin with '.'" "$T/bad.out" ||
	{ cat "$T/bad.out"; fail "no file:line error for the name"; }
pass "a cert named '.gen' is refused when live_dir is in use ($(head -1 "$T/bad.out"))"

# LIVE/NAME that the agent did not make is never replaced.
mkdir -p "$T/live3"
echo "mine" >"$T/live3/mail"
sed -e "s|$T/live\$|$T/live3|" -e "s|$T/state\$|$T/state3|" "$T/certsync.conf" >"$T/c3.conf"
rc=0
"$CERTSYNCD" -f --once -c "$T/c3.conf" 2>"$T/once3.log" || rc=$?
[ "$rc" = 1 ] || { cat "$T/once3.log"; fail "--once over a foreign live/mail exited $rc"; }
[ "$(cat "$T/live3/mail")" = mine ] || fail "the foreign live/mail was replaced"
grep -q "live3/mail exists and is not a link" "$T/once3.log" ||
	{ cat "$T/once3.log"; fail "no clear error for the foreign live/mail"; }
pass "a live/mail the agent did not make is left alone, with a clear error"
