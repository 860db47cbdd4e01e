#!/usr/bin/env bash
# Outside changes to deployed files, as the running agent sees them through
# inotify: a deleted or corrupted output is repaired from the last good
# generation within a second; a self-signed one for the same names is kept
# but not taken (it does not end at the issuer's CA); another valid certificate of
# that CA for the same names (copied over, or saved by an editor through
# rename) is accepted and
# rescheduled, never overwritten; the agent's own writes cause no work; an
# output behind a symbolic link is still watched after the link is swapped;
# and a queue overflow (events lost while the agent was stopped) leads to a
# full rescan that repairs what was broken meanwhile. settle = 0 (judge 100
# ms after the last change) so that these timings are the watch's own; the
# default quiet time is tested in adopt_quiet.sh.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out" "$T/dove" "$T/real/a" "$T/real/b"
ln -s "$T/real/a/web.pem" "$T/out/web.pem"
conf_head "settle    = 0" "validity = 30d" >"$T/certsync.conf"
cat >>"$T/certsync.conf" <<CONF

[cert "mail"]
issuer = local
names  = mail.example.test, smtp.example.test
bundle = $T/out/mail.pem

[cert "imap"]
issuer    = local
names     = imap.example.test
fullchain = $T/dove/imap.crt
keyfile   = $T/dove/imap.key

[cert "web"]
issuer = local
names  = www.example.test
bundle = $T/out/web.pem
CONF

sha() { sha256sum "$1" | cut -d' ' -f1; }
matching() { "$CERTSYNCCTL" inspect "$@" 2>&1 | has "key matches leaf: yes"; }
# repaired FILE STARTNS: waits up to 1 s after STARTNS for FILE to hold a matching key and leaf.
repaired_within_1s() {
	local f=$1 start=$2 now
	while :; do
		if [ -f "$f" ] && matching "$f"; then
			now=$(date +%s%N)
			echo $(((now - start) / 1000000))
			return 0
		fi
		now=$(date +%s%N)
		[ $((now - start)) -lt 1000000000 ] || return 1
		sleep 0.02
	done
}
count() { grep -c -- "$2" "$1" || true; }

"$CERTSYNCD" -f -c "$T/certsync.conf" --log-level debug 2>"$T/agent.log" &
agent=$!
CS_PIDS+=($agent)
for name in mail imap web; do wait_for "$T/agent.log" "$name: renewed: serial" 10; done
wait_for "$T/agent.log" "web: valid until\|web: renewed" 5
matching "$T/out/mail.pem" || fail "mail bundle does not hold a matching key and leaf"
[ -L "$T/out/web.pem" ] || fail "the symbolic link was replaced by a file"
matching "$T/real/a/web.pem" || fail "the link's target was not written"
good_mail=$(sha "$T/out/mail.pem")
pass "three certs issued at start; the symlinked output was written through its link"

# The agent's own writes cause no examination, and an idle agent stays idle.
sleep 0.5
[ "$(count "$T/agent.log" "is valid")" -eq 0 ] || fail "own writes were examined again"
pass "the agent's own writes are recognised and ignored"

# Deleted: repaired from the generation within a second.
start=$(date +%s%N)
rm "$T/out/mail.pem"
ms=$(repaired_within_1s "$T/out/mail.pem" "$start") || fail "deleted bundle not repaired within 1 s"
[ "$(sha "$T/out/mail.pem")" = "$good_mail" ] || fail "the repaired bundle is not the last good one"
wait_for "$T/agent.log" "mail: repaired from generation 1" 2
pass "deleted bundle repaired in $ms ms, byte for byte"

# Corrupted in place.
start=$(date +%s%N)
echo "garbage" >"$T/out/mail.pem"
ms=$(repaired_within_1s "$T/out/mail.pem" "$start") || fail "corrupted bundle not repaired within 1 s"
[ "$(sha "$T/out/mail.pem")" = "$good_mail" ] || fail "the repaired bundle is not the last good one"
pass "corrupted bundle repaired in $ms ms"

# A key that does not belong to the certificate (separate key file).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/otherkey.pem" 2>/dev/null
good_key=$(sha "$T/dove/imap.key")
start=$(date +%s%N)
cp "$T/otherkey.pem" "$T/dove/imap.key"
for _ in $(seq 50); do [ "$(sha "$T/dove/imap.key")" = "$good_key" ] && break; sleep 0.02; done
[ "$(sha "$T/dove/imap.key")" = "$good_key" ] || fail "mismatched key file not repaired within 1 s"
wait_for "$T/agent.log" "imap: repaired from generation" 2
pass "a key file that does not match the certificate is repaired"

# Deleted key file.
rm "$T/dove/imap.key"
for _ in $(seq 50); do [ -f "$T/dove/imap.key" ] && break; sleep 0.02; done
[ "$(sha "$T/dove/imap.key")" = "$good_key" ] || fail "deleted key file not repaired within 1 s"
[ "$(stat -c %a "$T/dove/imap.key")" = 600 ] || fail "repaired key file is not 0600"
pass "deleted key file repaired, mode 0600"

# A self-signed certificate for the same names, copied over: it does not end at
# the issuer's CA, so it is not taken as the agent's own, but it is not
# reverted either: it is someone else's choice, kept (and shown as foreign)
# until its renewal. The test then puts the issued one back itself.
good_mail=$(sha "$T/out/mail.pem")
cp "$T/out/mail.pem" "$T/good-mail.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/k.pem" \
	-out "$T/c.pem" -days 3650 -subj /CN=mail.example.test \
	-addext "subjectAltName=DNS:mail.example.test,DNS:smtp.example.test" 2>/dev/null
cat "$T/k.pem" "$T/c.pem" >"$T/selfsigned.pem"
cp "$T/selfsigned.pem" "$T/out/mail.pem"
wait_for "$T/agent.log" "mail: the deployed certificate [0-9A-F]* is not from issuer local (the chain does not verify to CAfile $T/ca/cacert.pem: self-signed certificate at depth 0 (CN=mail.example.test))" 2
sleep 0.3
[ "$(sha "$T/out/mail.pem")" = "$(sha "$T/selfsigned.pem")" ] || fail "the self-signed certificate was reverted"
grep -q "mail: repaired from generation 1 (the chain" "$T/agent.log" && fail "the self-signed certificate was repaired away"
"$CERTSYNCCTL" -s "$T/certsync.sock" --json show mail >"$T/show.json" || true
grep -q '"deployed": *"foreign"' "$T/show.json" || { cat "$T/show.json" >&2; fail "show does not say foreign"; }
cp "$T/good-mail.pem" "$T/out/mail.pem"
for _ in $(seq 50); do
	"$CERTSYNCCTL" -s "$T/certsync.sock" --json show mail 2>/dev/null | has '"deployed": *"ok"' && break
	sleep 0.02
done
pass "a self-signed certificate copied over is kept but not adopted (shown foreign); the issued one is taken back when put back"

# Another valid certificate of the same CA for the same names, copied over:
# accepted, not overwritten.
mk_other() { # mk_other OUT DAYS
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/k.pem" \
		-subj /CN=mail.example.test 2>/dev/null |
		openssl x509 -req -CA "$T/ca/cacert.pem" -CAkey "$T/ca/private/cakey.pem" \
			-set_serial "0x$(openssl rand -hex 8)" -days "$2" -out "$T/c.pem" \
			-extfile <(printf 'subjectAltName=DNS:mail.example.test,DNS:smtp.example.test\nextendedKeyUsage=serverAuth\n') 2>/dev/null
	cat "$T/k.pem" "$T/c.pem" >"$1"
}
mk_other "$T/admin1.pem" 20
cp "$T/admin1.pem" "$T/out/mail.pem"
wait_for "$T/agent.log" "mail: the deployed files now hold another valid certificate" 2
sleep 1
[ "$(sha "$T/out/mail.pem")" = "$(sha "$T/admin1.pem")" ] || fail "the administrator's certificate was overwritten"
admin_end=$(openssl x509 -in "$T/admin1.pem" -noout -enddate | cut -d= -f2)
admin_end=$(date -u -d "$admin_end" +%Y-%m-%d)
grep "mail: valid until $admin_end" "$T/agent.log" | has "next renewal" ||
	fail "not rescheduled for the new certificate (until $admin_end)"
grep -q '"serial": "'"$(openssl x509 -in "$T/admin1.pem" -noout -serial | cut -d= -f2)"'"' \
	"$T/state/certs/mail.json" || fail "the accepted certificate is not a generation in the state"
pass "another valid certificate copied over is accepted and rescheduled, not overwritten"

# The same through an editor's rename-save.
mk_other "$T/admin2.pem" 25
cp "$T/admin2.pem" "$T/out/.mail.pem.swp"
mv "$T/out/.mail.pem.swp" "$T/out/mail.pem"
for _ in $(seq 40); do
	[ "$(count "$T/agent.log" "now hold another valid certificate")" -ge 2 ] && break
	sleep 0.05
done
[ "$(count "$T/agent.log" "now hold another valid certificate")" -ge 2 ] || fail "rename-save not seen"
sleep 0.5
[ "$(sha "$T/out/mail.pem")" = "$(sha "$T/admin2.pem")" ] || fail "the rename-saved certificate was overwritten"
pass "a rename-save of another valid certificate is accepted"

# And a deletion now repairs from the accepted certificate, the newest good generation.
rm "$T/out/mail.pem"
start=$(date +%s%N)
repaired_within_1s "$T/out/mail.pem" "$start" >/dev/null || fail "not repaired after the deletion"
[ "$(sha "$T/out/mail.pem")" = "$(sha "$T/admin2.pem")" ] || fail "not repaired from the accepted certificate"
pass "a later deletion is repaired from the accepted certificate"

# A symbolic link swapped to another target: the new target is repaired and watched.
web_good=$(sha "$T/real/a/web.pem")
echo "not a certificate" >"$T/real/b/web.pem"
ln -s "$T/real/b/web.pem" "$T/out/web.pem.new"
mv -T "$T/out/web.pem.new" "$T/out/web.pem"
# (A wait, not a latency figure: those are repaired_within_1s above. It failed
# at 1 s once on a machine running two builds beside the suite.)
for _ in $(seq 250); do [ "$(sha "$T/real/b/web.pem")" = "$web_good" ] && break; sleep 0.02; done
[ "$(sha "$T/real/b/web.pem")" = "$web_good" ] || fail "the swapped link's target was not repaired"
[ -L "$T/out/web.pem" ] || fail "the link was replaced by a file"
rm "$T/real/b/web.pem"
for _ in $(seq 250); do [ -f "$T/real/b/web.pem" ] && break; sleep 0.02; done
[ -f "$T/real/b/web.pem" ] || fail "the new link target is not watched"
echo "junk" >"$T/real/a/web.pem"
sleep 0.5
[ "$(cat "$T/real/a/web.pem")" = "junk" ] || fail "the old link target is still treated as deployed"
pass "after a link swap the new target is watched and repaired, the old one left alone"

# Events lost while the agent was stopped: the overflow leads to a rescan.
kill -STOP $agent
for i in $(seq 9000); do : >"$T/out/junk$i"; done
echo "garbage" >"$T/out/mail.pem"
kill -CONT $agent
wait_for "$T/agent.log" "overflowed; rescanning everything" 5
for _ in $(seq 50); do matching "$T/out/mail.pem" && break; sleep 0.02; done
matching "$T/out/mail.pem" || fail "not repaired after the overflow"
pass "an inotify queue overflow rescans every cert and repairs the lost change"

stop_agent
grep -q "renewing" <(grep -v "renewing with issuer local (.*does not exist)" "$T/agent.log") &&
	fail "the agent renewed something it should have repaired"
pass "no renewal was needed for any of it"
