#!/usr/bin/env bash
# certsyncd --check-config against what a careless administrator or an
# attacker puts in the configuration: a key mode that every deploy would
# refuse, setuid or world-writable certificate modes, outputs under /dev,
# a drop-in that is a link to a file full of secrets (its content must never
# reach the terminal), a NUL byte, and drop-ins anyone may write.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/conf.d"
main() { std_conf "include   = conf.d/*.conf"; }
check() { # check EXPECTED_STATUS: runs --check-config into $T/out.txt
	set +e
	timeout 20 "$CERTSYNCD" --check-config -c "$T/certsync.conf" >"$T/out.txt" 2>&1
	local rc=$?
	set -e
	[ "$rc" -eq "$1" ] || fail "--check-config exited $rc, not $1: $(cat "$T/out.txt")"
}
main >"$T/certsync.conf"
check 0

# Modes: line 14 is "mode", 15 "cert_mode", 16 the second output.
{ main; printf 'mode = 0660\ncert_mode = 06777\nfullchain = /dev/shm/../shm/mail.crt\n'; } >"$T/certsync.conf"
check 2
C=$T/certsync.conf
grep -qF "$C:14: [cert \"mail\"] mode: 0660: files holding the private key must not be group-writable" "$T/out.txt" ||
	fail "mode 0660 not refused with file:line:key: $(cat "$T/out.txt")"
grep -qF "$C:15: [cert \"mail\"] cert_mode: 6777: certificate files must not be setuid, setgid or sticky" "$T/out.txt" ||
	fail "cert_mode 06777 not refused: $(cat "$T/out.txt")"
grep -qF "$C:16: [cert \"mail\"] fullchain: /dev/shm/../shm/mail.crt is under /dev" "$T/out.txt" ||
	fail "an output under /dev not refused: $(cat "$T/out.txt")"
pass "mode 0660, cert_mode 06777 and an output under /dev are refused with file:line:key"

# A NUL byte in a value.
{ main; printf 'keyfile = %s/out/k.pem\0/etc/passwd\n' "$T"; } >"$T/certsync.conf"
check 2
grep -qF "$C:14: the line holds a NUL byte" "$T/out.txt" || fail "NUL byte: $(cat "$T/out.txt")"
pass "a NUL byte is an error naming file and line"

# A drop-in that is a link to a file of secrets.
main >"$T/certsync.conf"
printf 'root:$6$SECRETSALT$SECRETHASH:19000:0:99999:7:::\nSECRETTOKEN=abc\n[SECRET-HEADER\n' >"$T/shadow"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 >>"$T/shadow" 2>/dev/null
chmod 600 "$T/shadow"
ln -s "$T/shadow" "$T/conf.d/50-evil.conf"
check 2
if grep -E "SECRET|root:|MIG|BEGIN" "$T/out.txt"; then fail "the secret file's content was printed"; fi
grep -q "^$T/conf.d/50-evil.conf" "$T/out.txt" || fail "the drop-in is not named: $(cat "$T/out.txt")"
pass "a drop-in linked to a file of secrets is refused without printing a byte of it"
rm "$T/conf.d/50-evil.conf"

# Drop-ins anyone may write.
cat >"$T/conf.d/20-hook.conf" <<CONF
[reload "hook"]
type    = exec
command = /bin/true
CONF
chmod 666 "$T/conf.d/20-hook.conf"
check 2
grep -qF "$T/conf.d/20-hook.conf:2: [reload \"hook\"] type: refused: an exec reloader runs its command with the agent's privileges, and this file is writable by everyone (mode 0666)" "$T/out.txt" ||
	fail "a world-writable exec reloader not refused: $(cat "$T/out.txt")"
pass "a world-writable drop-in with an exec reloader is refused"
cat >"$T/conf.d/20-hook.conf" <<CONF
[cert "www"]
issuer = local
names  = www.example.test
bundle = $T/out/www.pem
CONF
check 0
grep -qF "warning: $T/conf.d/20-hook.conf: writable by everyone (mode 0666); only root or the agent's user should be able to change the configuration" "$T/out.txt" ||
	fail "no warning about a world-writable drop-in: $(cat "$T/out.txt")"
pass "a world-writable drop-in without hooks is accepted with a warning"
