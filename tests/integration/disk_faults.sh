#!/usr/bin/env bash
# The running agent with its state_dir and a target directory on a tiny
# tmpfs, renewing every second (one-minute certificates, renew_before =
# 99%), when the filesystem fills up (ENOSPC) and when it is remounted
# read-only (EROFS): each renewal fails visibly (a log line naming a file on
# it and "No space left on device" / "Read-only file system", the failure
# count and last error in `certsyncctl show`), the deployed bundle stays
# byte for byte what it was and still holds a matching key and leaf, the
# agent keeps retrying (retry_min = 1s), and once space (or write access)
# is back the next attempt renews and the state file records it.
# Needs to mount a tmpfs (root, or CAP_SYS_ADMIN): skipped (77) otherwise.
. "$(dirname "$0")/lib.bash"

small=$T/small
mkdir "$small"
if ! mount -t tmpfs -o size=256k,mode=0755 tmpfs "$small" 2>"$T/mount.err"; then
	echo "SKIP: cannot mount a tmpfs here: $(cat "$T/mount.err")"
	exit 77
fi
disk_cleanup() {
	for p in "${CS_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	umount "$small" 2>/dev/null || umount -l "$small" 2>/dev/null || true
	cleanup
}
trap disk_cleanup EXIT

# write_conf STATE_DIR: the bundle, fullchain and key file on the tmpfs.
write_conf() {
	cat >"$T/certsync.conf" <<CONF
[agent]
state_dir    = $1
socket       = $T/certsync.sock
renew_before = 99%
jitter       = 0%
retry_min    = 1s
retry_max    = 2s

[issuer "local"]
type     = local-ca
dir      = $T/ca
validity = 1m

[cert "mail"]
renew_before = 99%
issuer    = local
names     = mail.example.test
bundle    = $small/out/mail.pem
fullchain = $small/out/mail.crt
keyfile   = $small/out/mail.key
CONF
}

renewals() { grep -c "mail: renewed: serial" "$T/agent.log" || true; }
matching() { "$CERTSYNCCTL" inspect "$1" 2>&1 | has "key matches leaf: yes"; }
outputs() { cat "$small/out/mail.pem" "$small/out/mail.crt" "$small/out/mail.key"; }

# fault WHAT FILE-PREFIX MESSAGE: renewals fail naming a file under
# FILE-PREFIX with MESSAGE; the outputs stay; the agent keeps retrying.
fault() {
	local what=$1 prefix=$2 msg=$3 pat line r0 n0
	pat="mail: renewal failed ([0-9]* in a row): deploy: $prefix[^ ]*: .*$msg"
	n0=$(grep -c "$pat" "$T/agent.log" || true)
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c "$pat" "$T/agent.log" || true)" -gt "$n0" ] && break
		sleep 0.1
	done
	line=$(grep "$pat" "$T/agent.log" | tail -n 1) ||
		{ tail -n 20 "$T/agent.log" >&2; fail "$what: no failure naming $prefix... with '$msg'"; }
	# The outputs as the first failure left them: nothing may change them now.
	outputs >"$T/old.pem"
	matching "$small/out/mail.pem" || fail "$what: the bundle does not hold a matching key and leaf"
	r0=$(renewals)
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c "$pat" "$T/agent.log")" -ge $((n0 + 3)) ] && break
		sleep 0.1
	done
	[ "$(grep -c "$pat" "$T/agent.log")" -ge $((n0 + 3)) ] || fail "$what: not retried 3 times in 10 s"
	[ "$(renewals)" = "$r0" ] || fail "$what: a renewal succeeded on a $what filesystem"
	outputs | cmp -s - "$T/old.pem" || fail "$what: the deployed files changed"
	"$CERTSYNCCTL" -s "$T/certsync.sock" show mail >"$T/show.out" 2>&1 || true
	grep -q "last error .*$msg" "$T/show.out" || { cat "$T/show.out" >&2; fail "$what: show has no last error"; }
	grep -Eq "^ *failures +([3-9]|[1-9][0-9])" "$T/show.out" ||
		{ cat "$T/show.out" >&2; fail "$what: show does not count the failures"; }
	echo "${line#* certsyncd }" >>"$T/lines"
	pass "$what: '${line#* certsyncd }'; retried every second, outputs unchanged, show gives the error"
}

# back WHAT: after the fault is lifted the next retry renews, the state says so.
back() {
	local what=$1 st=$2 r0
	r0=$(renewals)
	until_count "mail: renewed: serial" $((r0 + 1)) 10
	! outputs | cmp -s - "$T/old.pem" || fail "$what: renewed but the files are the old ones"
	matching "$small/out/mail.pem" || fail "$what: the new bundle does not match"
	sleep 0.3
	grep -q '"failures": 0' "$st/certs/mail.json" ||
		fail "$what: the state still counts failures: $(cat "$st/certs/mail.json")"
	grep -q '"last_error": null' "$st/certs/mail.json" ||
		fail "$what: the state keeps the error: $(cat "$st/certs/mail.json")"
	pass "$what lifted: the next retry renewed; failures 0 and no last error in the state"
}

# Twice: the state_dir on the tmpfs too (the generation file is written
# first, so it is the one that fails), then only the outputs on it (the
# bundle fails, and the state file records the error meanwhile).
for st in "$small/state" "$T/state"; do
	mkdir -p "$small/out"
	write_conf "$st"
	: >"$T/agent.log"
	"$CERTSYNCD" -f -c "$T/certsync.conf" 2>"$T/agent.log" &
	agent=$!
	CS_PIDS+=($agent)
	until_count "mail: renewed: serial" 2 15
	if [ "$st" = "$small/state" ]; then prefix=$small/state/generations/mail/; else prefix=$small/out/mail; fi
	pass "state_dir $st: the agent renews every second"

	# ENOSPC: fill what is left.
	dd if=/dev/zero of="$small/fill" bs=4k 2>/dev/null || true
	fault "full ($st)" "$prefix" "No space left on device"
	if [ "$st" = "$T/state" ]; then
		grep -q '"last_error": "deploy: .*No space left on device' "$st/certs/mail.json" ||
			fail "the state file has no last_error: $(cat "$st/certs/mail.json")"
	fi
	rm "$small/fill"
	back "full ($st)" "$st"

	# EROFS.
	mount -o remount,ro "$small"
	fault "read-only ($st)" "$prefix" "Read-only file system"
	mount -o remount,rw "$small"
	back "read-only ($st)" "$st"

	kill -TERM $agent
	wait $agent || fail "the agent exited non-zero after SIGTERM"
	rm -rf "$small/out" "$small/state"
done
