#!/usr/bin/env bash
# Reloads after renewals: a burst of renewals leads to one reload per
# service (debounced), with the renewed names and files in the environment
# of an exec reloader; a failing reload is visible in the log and in the
# cert's state. SIGHUP applies a new configuration to the running pipeline
# (a new cert is issued, a removed one left alone). --once runs the reloads
# once at the end of its pass. SIGTERM during a renewal stops cleanly.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out"
conf() { # conf CERT... : the configuration with these certs
	conf_head
	cat <<CONF

[reload "svc"]
type    = exec
command = /bin/sh -c 'echo "\$CERTSYNC_NAME|\$CERTSYNC_FILES" >>$T/reloads.log'

[reload "broken"]
type    = exec
command = /bin/sh -c 'echo cannot reload >&2; exit 3'
CONF
	for c in "$@"; do
		local extra=
		[ "$c" = d ] && extra="broken"
		cat <<CONF

[cert "$c"]
issuer = local
names  = $c.example.test
bundle = $T/out/$c.pem
reload = svc${extra:+, $extra}
CONF
	done
}

conf a b c >"$T/certsync.conf"
spawn_agent
wait_for "$T/agent.log" "reload svc: done" 10
sleep 1.5
[ "$(wc -l <"$T/reloads.log")" -eq 1 ] || fail "not one reload for the burst: $(cat "$T/reloads.log")"
for c in a b c; do
	grep -q "^\(.* \)\{0,1\}$c\( .*\)\{0,1\}|" "$T/reloads.log" || fail "$c not in CERTSYNC_NAME"
	grep -q "$T/out/$c.pem" "$T/reloads.log" || fail "$c.pem not in CERTSYNC_FILES"
done
pass "three renewals at start, one reload of the service with all three names and files"

# SIGHUP: d is added (with a reloader that fails), c removed.
conf a b d >"$T/certsync.conf"
kill -HUP $agent
wait_for "$T/agent.log" "d: renewed: serial" 10
wait_for "$T/agent.log" "reload broken failed" 5
wait_for "$T/reloads.log" "^d|" 5
grep -q "reload broken failed (for d): .*cannot reload" "$T/agent.log" || fail "the reload failure is not named"
sleep 0.3
grep -q '"last_error": "reload broken failed' "$T/state/certs/d.json" ||
	fail "the reload failure is not in the cert's state: $(cat "$T/state/certs/d.json")"
[ "$(grep -c "renewing" "$T/agent.log")" -eq 4 ] || fail "certs renewed again after SIGHUP"
rm "$T/out/c.pem"
sleep 0.5
[ ! -e "$T/out/c.pem" ] || fail "a cert removed from the configuration is still looked after"
pass "SIGHUP applied: new cert issued, removed cert left alone, a reload failure in log and state"

# SIGTERM while a renewal is in flight (a slow RSA key is being made).
conf a b d >"$T/certsync.conf"
cat >>"$T/certsync.conf" <<CONF

[cert "slow"]
issuer = local
names  = slow.example.test
key    = rsa:4096
bundle = $T/out/slow.pem
CONF
kill -HUP $agent
wait_for "$T/agent.log" "slow: renewing" 10
kill -TERM $agent
wait $agent || fail "agent exited non-zero after SIGTERM during a renewal"
grep -q "certsyncd stopped" "$T/agent.log" || fail "no clean stop"
leftover=$(find "$T" -name '.*.??????*' -type f | head -5)
[ -z "$leftover" ] || fail "temp files left behind: $leftover"
if [ -e "$T/out/slow.pem" ]; then
	"$CERTSYNCCTL" inspect "$T/out/slow.pem" >/dev/null || fail "a half-made slow.pem"
fi
pass "SIGTERM during a renewal: clean stop, no temp files, no half-written output"

# --once: one reload at the end of the pass.
: >"$T/reloads.log"
rm -f "$T/out/a.pem" "$T/out/b.pem" "$T/out/d.pem"
set +e
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/once.log"
rc=$?
set -e
[ $rc -eq 1 ] || fail "--once with a failing reload exited $rc, not 1: $(cat "$T/once.log")"
grep -q "one pass over 4 cert(s): .* 3 repaired" "$T/once.log" || fail "no summary: $(cat "$T/once.log")"
[ "$(wc -l <"$T/reloads.log")" -eq 1 ] || fail "not one reload in --once: $(cat "$T/reloads.log")"
pass "--once: repairs, one reload at the end, exit 1 because a reloader failed"
