#!/usr/bin/env bash
# Every status socket command through certsyncctl, against a real certsyncd
# with a local CA: tables and --json, the exit statuses scripts rely on
# (0 ok, 1 a failed cert or a refused request, 2 usage, 3 no agent), renew
# --force --wait changing the certificate on disk, and metrics that promtool
# accepts and that carry the numbers of the deployed certificate.
. "$(dirname "$0")/ctlsock_lib.bash"

write_conf
start_agent
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
s1=$(serial_of "$T/out/mail.pem")

# list: a table with both certs; exit 1 because web failed.
expect 1 list
in_out "^NAME  *STATE  *DAYS"
grep -Eq "^mail +valid +(29|30) \[##########\] " "$T/stdout" || { cat "$T/stdout"; fail "mail row"; }
grep -Eq "^web +failed " "$T/stdout" || { cat "$T/stdout"; fail "web row"; }
grep -q $'\033' "$T/stdout" && fail "colour codes when stdout is not a terminal"
pass "list: aligned table, days-left bar, no colour off a terminal, exit 1 with a failed cert"
if command -v script >/dev/null; then
	TERM=xterm script -qec "$CERTSYNCCTL -s $SOCK list" /dev/null >"$T/tty.out" 2>&1 || true
	grep -q $'\033\\[32mvalid' "$T/tty.out" || { cat -v "$T/tty.out"; fail "no green 'valid' on a terminal"; }
	grep -q $'\033\\[1;31mfailed' "$T/tty.out" || fail "no red 'failed' on a terminal"
	NO_COLOR=1 TERM=xterm script -qec "$CERTSYNCCTL -s $SOCK list" /dev/null >"$T/tty.out" 2>&1 || true
	grep -q $'\033' "$T/tty.out" && fail "colour on a terminal despite NO_COLOR"
	pass "list on a terminal: valid in green, failed in red; NO_COLOR turns it off"
fi

expect 1 --json list
json "$T/stdout" 'j["ok"], len(j["certs"])' | has -x "True 2" || fail "list --json: $(cat "$T/stdout")"
[ "$(json "$T/stdout" '[c for c in j["certs"] if c["name"]=="mail"][0]["serial"]')" = "$s1" ] ||
	fail "list --json: serial is not the one on disk ($s1)"
json "$T/stdout" '[c for c in j["certs"] if c["name"]=="web"][0]["failures"] >= 1 and
	[c for c in j["certs"] if c["name"]=="web"][0]["last_error"] is not None' | has -x True ||
	fail "web has no failures or last_error: $(cat "$T/stdout")"
pass "list --json: one JSON object, the serial on disk, web's failures and last error"

# show: everything about one cert.
expect 0 show mail
in_out "serial  *$s1"
fp=$(openssl x509 -in "$T/out/mail.pem" -noout -fingerprint -sha256 | cut -d= -f2)
in_out "sha256  *$fp"
in_out "names  *mail.example.test, smtp.example.test"
in_out "issuer  *local"
in_out "next renewal .*(.*)"
in_out "deployed files  *ok"
end=$(date -u -d "$(openssl x509 -in "$T/out/mail.pem" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)
in_out "not after  *$end"
expect 1 show web
in_out "state  *failed"
in_out "last error  *.*notadir"
expect 1 show nosuch
in_err 'no cert "nosuch"'
expect 2 show
pass "show: serial, sha256, names, not after as openssl sees them; failed cert exits 1; unknown name 1; no name 2"

# status: counts and problems.
expect 1 status
in_out "certsyncd [0-9.]* (pid $agent)"
in_out "certs: 2 (1 valid, 1 failed)"
in_out "problem: web is failed"
expect 1 --json status
[ "$(json "$T/stdout" 'j["states"]["valid"], j["states"]["failed"], j["pid"]')" = "1 1 $agent" ] ||
	fail "status --json: $(cat "$T/stdout")"
pass "status: version, pid, counts by state, problems; exit 1 while a cert is failed"

# renew: not due without --force; --force --wait changes the certificate on disk.
expect 0 renew mail
in_out "mail: not due"
[ "$(serial_of "$T/out/mail.pem")" = "$s1" ] || fail "renew without --force renewed"
expect 0 renew mail --force --wait
in_out "mail: renewed, deployed and reloaded"
s2=$(serial_of "$T/out/mail.pem")
[ "$s2" != "$s1" ] || fail "renew --force --wait returned but the serial did not change"
expect 0 show mail
in_out "serial  *$s2"
expect 1 renew web --force --wait
in_out "web: failed"
expect 1 renew nosuch
in_err 'no cert "nosuch"'
expect 2 renew
expect 2 renew mail --all
pass "renew: not due without --force; --force --wait follows to valid ($s1 -> $s2) or failed (exit 1)"

# renew all lists only the certs that were not simply not due, and counts them.
expect 0 --json renew all
json "$T/stdout" 'sorted((r["name"], r["result"]) for r in j["results"])' | has "('mail'" &&
	fail "renew all lists a cert that is not due: $(cat "$T/stdout")"
json "$T/stdout" 'j["counts"]["not_due"]' | has -x "[1-9][0-9]*" ||
	fail "renew all: no count of the certs not due: $(cat "$T/stdout")"
expect 0 renew all
in_out "certificate(s): not due (use --force to renew anyway)"
expect 0 renew mail force
grep -q "status socket: renew mail (forced): started" "$T/agent.log" || fail "forced renewal not logged"
sleep 0.5
pass "renew all reports the certs not due as a count; 'renew NAME force' works as --force"

# rehash without any [capath]: a clear refusal (ctlsock_rehash.sh has the
# real thing); reload of a cert (reload_servers.sh has it with real servers).
expect 1 rehash
in_err "no \[capath\] or \[clientcerts\] section is configured"
# mail may still be renewing from 'renew mail force' above: busy is exit 1.
for _ in $(seq 50); do
	"$CERTSYNCCTL" -s "$SOCK" reload mail >/dev/null 2>&1 && break
	sleep 0.2
done
expect 0 reload mail
wait_for "$T/agent.log" "status socket: reload of the services of mail requested" 5
expect 1 reload nosuch
in_err 'no \[cert "nosuch"\] in the configuration'
expect 2 reload
pass "rehash with no capath is refused with a reason (exit 1); reload mail is taken, an unknown cert exits 1, no name 2"

# metrics: promtool accepts them; the numbers match the certificate.
expect 0 metrics
[ -s "$T/stdout" ] || fail "metrics: empty output"
cp "$T/stdout" "$T/metrics.txt"
if command -v promtool >/dev/null; then
	promtool check metrics <"$T/metrics.txt" 2>"$T/promtool.err" ||
		{ cat "$T/promtool.err" >&2; fail "promtool check metrics rejects the output"; }
	pass "promtool check metrics accepts the output"
else
	echo "promtool not installed: format checked by check_metrics only"
fi
na=$(date -d "$(openssl x509 -in "$T/out/mail.pem" -noout -enddate | cut -d= -f2)" +%s)
grep -qx "certsync_cert_not_after_timestamp_seconds{name=\"mail\"} $na" "$T/metrics.txt" ||
	fail "no not_after sample $na for mail"
grep -qx 'certsync_cert_state{name="web",state="failed"} 1' "$T/metrics.txt" || fail "web state"
grep -qx 'certsync_certs{state="valid"} 1' "$T/metrics.txt" || fail "count of valid"
grep -Eqx 'certsync_renewals_total\{result="success"\} [1-9][0-9]*' "$T/metrics.txt" ||
	fail "no renewal successes counted"
grep -Eqx 'certsync_renewals_total\{result="failure"\} [1-9][0-9]*' "$T/metrics.txt" ||
	fail "no renewal failures counted"
grep -qx 'certsync_build_info{version="'"$("$CERTSYNCD" --version | cut -d' ' -f2)"'"} 1' "$T/metrics.txt" ||
	fail "build_info"
pass "metrics: not_after of the file on disk, states, renewal counters, build_info"

# Usage and reachability.
expect 2 list extra
expect 2 --bogus list
expect 2 nosuchcommand
ctl -s "$T/nothing.sock" list
[ $rc = 3 ] || fail "no agent: exit $rc, not 3"
in_err "cannot reach the agent at $T/nothing.sock"
stop_agent
[ ! -e "$SOCK" ] || fail "the socket file is left after the agent stopped"
expect 3 status
pass "usage errors exit 2; no agent exits 3 with the path; the socket is removed at stop"
