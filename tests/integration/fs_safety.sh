#!/usr/bin/env bash
# File-system safety when the target directory is writable by others (mode
# 1777) and an attacker (uid nobody) prepared it before the agent ran:
#   - a symbolic link at an output path pointing to a file outside: the
#     agent refuses to write through it (the link is not root's or its own)
#     and says so, naming the path; the outside file keeps its bytes and mode;
#   - a hard link of an output to a file outside: the agent replaces the
#     name (rename), the outside file keeps its bytes, mode and link;
#   - symbolic links and a hard link named like the writer's temp files:
#     nothing outside is written, chmodded or removed;
#   - at no moment does a file in the directory hold "PRIVATE KEY" with a
#     group or other read bit (an inotify watcher, tests/key_watch.c, reads
#     and fstats every file on each create, modify, attrib and rename, over
#     several renewals; a key chmodded 0644 by hand shows it can see one);
#   - with log_level = debug, through renewals and failures, the log never
#     holds "PRIVATE KEY" nor the start of any deployed key's base64 body.
# The socket's permissions are tested in ctlsock_auth.sh.
. "$(dirname "$0")/lib.bash"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to act as another user"; exit 77; }
command -v setpriv >/dev/null || { echo "SKIP: setpriv is needed"; exit 77; }
WATCH=$CS_BUILD_DIR/tests/key_watch
chmod 0711 "$T"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

pub=$T/pub
mkdir -m 1777 "$pub"
chmod 1777 "$pub"
mkdir "$T/etc"
for v in victim1 victim2 victim3 victim4; do
	printf 'precious %s\n' "$v" >"$T/etc/$v"
	chmod 0644 "$T/etc/$v"
done
ln "$T/etc/victim4" "$T/etc/victim4.keep" # a second name, so that victim4 keeps its data if unlinked
stat -c '%n %a %u %s' "$T"/etc/victim{1,2,3,4} >"$T/victims.before"
sha256sum "$T"/etc/victim{1,2,3,4} >"$T/victims.sha"

# The attacker's preparations.
as_nobody ln -s "$T/etc/victim1" "$pub/mail.pem"
ln "$T/etc/victim2" "$pub/hard.pem" # protected_hardlinks stops nobody; root plays the attacker
for h in 000000000000 0123456789ab ffffffffffff a1b2c3d4e5f6; do
	as_nobody ln -s "$T/etc/victim3" "$pub/.imap.key.$h"
	as_nobody ln -s "$T/etc/victim3" "$pub/.hard.pem.$h"
done
ln "$T/etc/victim4" "$pub/.imap.crt.0123456789ab"

conf_head "log_level    = debug
$EVERY_SECOND
retry_max    = 2s" "validity = 1m" >"$T/certsync.conf"
cat >>"$T/certsync.conf" <<CONF

[cert "mail"]
renew_before = 99%
issuer = local
names  = mail.example.test
bundle = $pub/mail.pem

[cert "hard"]
renew_before = 99%
issuer = local
names  = hard.example.test
bundle = $pub/hard.pem

[cert "imap"]
renew_before = 99%
issuer    = local
names     = imap.example.test
fullchain = $pub/imap.crt
keyfile   = $pub/imap.key
CONF

"$WATCH" "$pub" >"$T/watch.out" 2>&1 &
watcher=$!
CS_PIDS+=($watcher)
wait_for "$T/watch.out" "watching" 5
spawn_agent
# Several renewals of hard and imap (one a second each), mail failing meanwhile.
for _ in $(seq 150); do
	[ "$(grep -c "imap: renewed: serial" "$T/agent.log" 2>/dev/null)" -ge 4 ] 2>/dev/null &&
		[ "$(grep -c "hard: renewed: serial" "$T/agent.log")" -ge 4 ] && break
	sleep 0.1
done
stop_agent
renewed=$(grep -c ": renewed: serial" "$T/agent.log" || true)
failed=$(grep -c "mail: renewal failed" "$T/agent.log" || true)

# Nothing outside changed: bytes, mode, owner, link count, size.
sha256sum -c --quiet "$T/victims.sha" || fail "a file outside the target directory changed"
stat -c '%n %a %u %s' "$T"/etc/victim{1,2,3,4} | diff - "$T/victims.before" ||
	fail "mode, owner or size of a file outside changed"
[ "$(stat -c %h "$T/etc/victim2")" = 1 ] || fail "victim2 is still linked from the target directory"
[ "$(stat -c %h "$T/etc/victim1")" = 1 ] && [ "$(stat -c %h "$T/etc/victim3")" = 1 ] ||
	fail "a link count outside changed"
pass "files outside (symlink, hard link and temp-name targets) kept their bytes and mode"
[ "$(grep -c "imap: renewed: serial" "$T/agent.log")" -ge 4 ] || { cat "$T/agent.log" >&2; fail "imap not renewed 4 times"; }
[ "$failed" -ge 2 ] || { cat "$T/agent.log" >&2; fail "mail did not fail (twice)"; }

# The symbolic link: refused with a clear error, left as it was.
[ -L "$pub/mail.pem" ] && [ "$(readlink "$pub/mail.pem")" = "$T/etc/victim1" ] ||
	fail "the attacker's link was changed"
line=$(grep -m1 "mail: renewal failed" "$T/agent.log")
grep -q "$pub/mail.pem is a symbolic link owned by uid 65534" <<<"$line" ||
	fail "the refusal does not say why: $line"
pass "the symlink at the output is refused: '${line#* certsyncd }'"

# The hard link: the name was replaced, the outside file still has its two names.
[ "$(stat -c %h "$pub/hard.pem")" = 1 ] || fail "hard.pem still has $(stat -c %h "$pub/hard.pem") links"
"$CERTSYNCCTL" inspect "$pub/hard.pem" | has "key matches leaf: yes" || fail "hard.pem is not a bundle"
[ "$(stat -c '%a %u' "$pub/hard.pem")" = "600 0" ] || fail "hard.pem: $(stat -c '%a %u' "$pub/hard.pem")"
pass "the hard link is replaced by the agent's own file (rename); the outside file is untouched"

# Temp-name links: no longer followed, the symlinks left alone.
for h in 000000000000 0123456789ab ffffffffffff a1b2c3d4e5f6; do
	[ "$(readlink "$pub/.imap.key.$h")" = "$T/etc/victim3" ] || fail ".imap.key.$h changed"
done
"$CERTSYNCCTL" inspect "$pub/imap.key" "$pub/imap.crt" >/dev/null || fail "imap outputs do not parse"
cat "$pub/imap.key" "$pub/imap.crt" >"$T/imap.both"
"$CERTSYNCCTL" inspect "$T/imap.both" | has "key matches leaf: yes" || fail "imap key and fullchain differ"
# A hard link named like a temp file may be swept as a stale temp file (its
# name goes) or left; either way the file it names keeps its data and mode.
if [ -e "$pub/.imap.crt.0123456789ab" ]; then swept=left; else swept=swept; fi
pass "links named like temp files: symlinks neither followed nor changed, a hard link $swept (the file it names untouched); imap deployed"

# The watcher.
kill -TERM $watcher
wait $watcher || true
summary=$(tail -n 1 "$T/watch.out")
grep -q VIOLATION "$T/watch.out" && { cat "$T/watch.out" >&2; fail "a private key was readable by others"; }
keys=$(sed -n 's/.* keys \([0-9]*\) .*/\1/p' <<<"$summary")
[ "${keys:-0}" -ge 8 ] || fail "the watcher saw only ${keys:-0} key files: $summary"
# It can see one: a key made readable by hand.
mkdir "$T/control"
"$WATCH" "$T/control" >"$T/control.out" 2>&1 &
cw=$!
CS_PIDS+=($cw)
wait_for "$T/control.out" "watching" 5
cp "$pub/imap.key" "$T/control/k.pem"
chmod 0644 "$T/control/k.pem"
sleep 0.2
kill -TERM $cw
wait $cw && fail "the watcher missed a key with mode 0644"
grep -q "VIOLATION: k.pem mode 0644" "$T/control.out" || fail "control: $(cat "$T/control.out")"
pass "key watcher over $renewed renewals and $failed failures: $summary; no key readable by others (a 0644 key by hand is caught)"

# No key material in the debug log.
grep -q "PRIVATE KEY" "$T/agent.log" && fail "the log holds PRIVATE KEY"
n=0
for f in "$pub/hard.pem" "$pub/imap.key" "$T"/state/generations/*/*.pem; do
	b=$(sed -n '/-----BEGIN .*PRIVATE KEY-----/{n;p;q}' "$f" | cut -c1-40)
	[ ${#b} = 40 ] || fail "$f: no key body"
	grep -qF -- "$b" "$T/agent.log" && fail "the log holds the key of $f ($b)"
	n=$((n + 1))
done
[ "$n" -ge 8 ] || fail "only $n keys to look for"
lines=$(grep -c "" "$T/agent.log")
pass "debug log ($lines lines, $renewed renewals, $failed failures): no PRIVATE KEY, none of $n keys' base64"
