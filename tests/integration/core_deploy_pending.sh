#!/usr/bin/env bash
# A certificate that was issued but could not be deployed (the output
# directory is on a tmpfs remounted read-only) is kept as a pending
# generation: the agent retries the DEPLOY of that material, it does not ask
# the CA again. While the fault lasts (three failed deploy attempts or more)
# the CA issues exactly one certificate, `show mail --json` gives
# "pending_generation": N and state_dir/generations/mail/N.pem holds it, and
# the old bundle stays in place. Once the filesystem is writable again the
# deployed serial is that one certificate, index.txt has one line more than
# before the fault, the generation file of the deployed certificate exists
# and "pending_generation" is null.
# Needs to mount a tmpfs (root, or CAP_SYS_ADMIN): skipped (77) otherwise.
_small=$(mktemp -d /tmp/cs-it-small.XXXXXX)
OUT=$_small/out
. "$(dirname "$0")/core_lib.bash"
if ! mount -t tmpfs -o size=256k,mode=0755 tmpfs "$_small" 2>"$T/mount.err"; then
	rmdir "$_small"
	echo "SKIP: cannot mount a tmpfs here: $(cat "$T/mount.err")"
	exit 77
fi
small_cleanup() {
	for p in "${CS_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	umount "$_small" 2>/dev/null || umount -l "$_small" 2>/dev/null || true
	rmdir "$_small" 2>/dev/null || true
	cleanup
}
trap small_cleanup EXIT

# Due 20 s after issuance: the forced renewal below is the one that fails,
# and the certificate it brings is not due again before the test ends.
core_conf "retry_min = 1s
retry_max = 2s" "renew_before = 3580s" "validity = 1h"
start_agent
first_cert
base=$(issued)
cp "$OUT/mail.pem" "$T/good.pem"
pass "first certificate $good deployed on the tmpfs ($base issued)"

mount -o remount,ro "$_small"
rofail() { count "mail: renewal failed ([0-9]* in a row): .*Read-only file system"; }
f0=$(rofail)
force_renew
for ((i = 0; i < 30 * 20; i++)); do
	n=$(($(issued) - base))
	[ "$n" -le 1 ] || {
		log_tail 30
		fail "the CA issued $n certificates while the deploy failed ($(($(rofail) - f0)) failed attempts): the issued one is not kept and deployed again"
	}
	[ $(($(rofail) - f0)) -ge 3 ] && break
	sleep 0.05
done
[ $(($(rofail) - f0)) -ge 3 ] || { log_tail 30; fail "not three 'renewal failed (K in a row): ...Read-only file system' lines within 30 s"; }
[ $(($(issued) - base)) = 1 ] || fail "$(($(issued) - base)) certificates issued for the failed deploys, not 1"
pending_serial=$(tail -n 1 "$CA/index.txt" | cut -f4)
cmp -s "$OUT/mail.pem" "$T/good.pem" || fail "the bundle changed on a read-only filesystem"
pass "$(($(rofail) - f0)) failed deploy attempts, one certificate issued ($pending_serial), the old bundle in place"

show_json
pg=$(json "$T/show.json" 'j.get("pending_generation", "absent")')
[[ "$pg" =~ ^[0-9]+$ ]] || { cat "$T/show.json" >&2; fail "show --json gives pending_generation '$pg', not a number"; }
[ "$(serial_of "$ST/generations/mail/$pg.pem")" = "$pending_serial" ] ||
	{ ls -l "$ST/generations/mail" >&2; fail "generations/mail/$pg.pem does not hold the issued $pending_serial"; }
pass "show --json: pending_generation $pg, and its generation file holds $pending_serial"

mount -o remount,rw "$_small"
for ((i = 0; i < 15 * 20; i++)); do
	[ "$(deployed)" != "$good" ] && break
	sleep 0.05
done
now=$(deployed)
[ "$now" != "$good" ] || { log_tail; fail "nothing deployed within 15 s after the filesystem became writable"; }
[ "$now" = "$pending_serial" ] || { log_tail; fail "deployed serial $now, not the certificate issued during the fault ($pending_serial)"; }
key_matches "$OUT/mail.pem" || fail "the deployed key does not match the deployed certificate"
[ $(($(issued) - base)) = 1 ] || fail "index.txt has $(($(issued) - base)) lines more than before the fault, not 1"
pass "after the fault: the pending certificate $pending_serial was deployed, no second issuance"

# The state settles once the deploy is recorded.
for ((i = 0; i < 40; i++)); do
	[ "$(state 'j["generations"][0]["serial"]')" = "$now" ] && break
	sleep 0.05
done
g0=$(state 'j["generations"][0]["n"]')
[ "$(state 'j["generations"][0]["serial"]')" = "$now" ] || fail "the state's first generation is not $now: $(cat "$ST/certs/mail.json")"
[ "$g0" = "$pg" ] || fail "deployed as generation $g0, not as the pending generation $pg"
for n in $(state '" ".join(str(g["n"]) for g in j["generations"])'); do
	[ -f "$ST/generations/mail/$n.pem" ] || { ls -l "$ST/generations/mail" >&2; fail "generation file $n.pem (in the state) is missing"; }
done
[ "$(serial_of "$ST/generations/mail/$g0.pem")" = "$now" ] || fail "generation file $g0.pem does not hold $now"
wait_for "$T/reloads.log" "serial=$now" 10
show_json
[ "$(json "$T/show.json" 'j.get("pending_generation", "absent")')" = None ] ||
	fail "pending_generation is $(json "$T/show.json" 'j.get("pending_generation", "absent")') after the deploy, not null"
pass "state: generation $g0 = $now with its file, every listed generation file present, pending_generation null"
stop_agent
