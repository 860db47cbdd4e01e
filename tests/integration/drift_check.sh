#!/usr/bin/env bash
# Served-certificate drift checks (issue 19) with a real Postfix: the agent
# deploys a local-CA certificate with two names and an address (not sent as
# SNI, so not probed for), and Postfix serves the copy an operator keeps at
# another path. With verify_interval = 2s the agent
# probes smtp:// for each name (SNI). When the operator swaps that copy for
# another certificate and reloads Postfix by hand, the agent sees the drift
# within an interval, logs it once per URL and name, shows it in show, status
# and the metrics file, reloads its services once (an exec reloader that only
# counts and reloads Postfix, so nothing changes), checks again, and reports
# that the drift persists: no further reload over several intervals, nothing
# renewed or rolled back; `certsyncctl reload` then counts as the one reload
# of that drift. A different certificate served next is a new drift:
# one more reload, which this time copies the deployed bundle into place, and
# the re-check finds the deployed certificate again (match, metric 1, the log
# says it cleared). certsyncd --once runs no drift check.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/servers.bash"

mkdir -m 700 "$T/tls"
# other N: a self-signed certificate that is not the deployed one, as a key-first bundle.
other() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=other$1.example.test" -keyout "$T/other$1.key" -out "$T/other$1.crt" \
		2>/dev/null || fail "openssl req"
	cat "$T/other$1.key" "$T/other$1.crt" >"$T/other$1.pem"
}
other 1
other 2
sha_of() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }
cp "$T/other1.pem" "$T/tls/served.pem"
chmod 600 "$T/tls/served.pem"
smtp=$(free_port)
postfix_start "$T/postfix" "$T/tls/served.pem" "$smtp"

# The reloader counts its runs; with $T/cure it first copies the deployed
# bundle over the copy Postfix serves (what an operator's fix would do).
cat >"$T/reloader.sh" <<SH
#!/bin/sh
echo run >>"$T/reloads"
[ -e "$T/cure" ] && cp "$T/tls/mail.pem" "$T/tls/served.pem"
exec postfix -c "$T/postfix" reload
SH
chmod 755 "$T/reloader.sh"
: >"$T/reloads"
reloads() { wc -l <"$T/reloads" | tr -d ' '; }

cat >"$T/certsync.conf" <<CONF
[agent]
state_dir       = $T/state
socket          = $T/certsync.sock
metrics_file    = $T/metrics.prom
retry_min       = 1s
verify_interval = 2s

[issuer "ca"]
type     = local-ca
dir      = $T/ca
subject  = /CN=certsync drift test CA
validity = 1d

[cert "mail"]
issuer         = ca
names          = mail.example.test, smtp.example.test, 127.0.0.1
jitter         = 0%
bundle         = $T/tls/mail.pem
reload         = counted
verify         = smtp://127.0.0.1:$smtp
verify_timeout = 2s

[reload "counted"]
type    = exec
command = $T/reloader.sh
CONF
URL="smtp://127.0.0.1:$smtp"
ctl() { "$CERTSYNCCTL" -s "$T/certsync.sock" "$@"; }

# One pass issues the certificate; its reloader puts it in place. No drift check runs.
touch "$T/cure"
rc=0
timeout 60 "$CERTSYNCD" -f --once -c "$T/certsync.conf" 2>"$T/once.log" || rc=$?
[ $rc = 0 ] || { cat "$T/once.log"; fail "--once exited $rc"; }
grep -q "mail: verified: " "$T/once.log" || { cat "$T/once.log"; fail "--once did not verify"; }
! grep -q "mail: drift" "$T/once.log" || { cat "$T/once.log"; fail "--once ran a drift check"; }
deployed=$(sha_of "$T/tls/mail.pem")
[ "$(sha_of "$T/tls/served.pem")" = "$deployed" ] || fail "the first reload did not put the bundle in place"
pass "--once issued and verified the certificate (sha256 $deployed), no drift check"

: >"$T/reloads"
spawn_agent

# show_py EXPR...: asserts on `certsyncctl --json show mail` (c: the cert).
show_py() {
	ctl --json show mail >"$T/show.json" 2>&1 || { cat "$T/show.json" >&2; return 1; }
	python3 - "$T/show.json" "$URL" "$@" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["cert"]
url = sys.argv[2]
s = {(v["url"], v["name"]): v for v in c.get("served") or []}
for expr in sys.argv[3:]:
    if not eval(expr):
        print("not true: %s\n%s" % (expr, json.dumps(c, indent=1)), file=sys.stderr)
        sys.exit(1)
PY
}
# until_show SECONDS EXPR...: polls show_py until it holds.
until_show() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 5; i++)); do
		show_py "$@" 2>/dev/null && return 0
		sleep 0.2
	done
	show_py "$@" || true
	cat "$T/agent.log" >&2
	fail "show never said: $*"
}
NAMES='["mail.example.test", "smtp.example.test"]'
until_show 10 "c['drift'] == 'none'" "len(s) == 2" \
	"all(s[(url, n)]['match'] is True for n in $NAMES)" \
	"all(s[(url, n)]['sha256'] == c['sha256'] for n in $NAMES)"
ctl metrics >"$T/m1" || fail "certsyncctl metrics"
for n in mail.example.test smtp.example.test; do
	grep -qxF "certsync_served_match{cert=\"mail\",url=\"$URL\",name=\"$n\"} 1" "$T/m1" ||
		fail "no certsync_served_match 1 for $n: $(grep served "$T/m1")"
done
[ "$(reloads)" = 0 ] || fail "the agent reloaded $(reloads) time(s) with nothing drifted"
pass "the first drift check within an interval: match for both names over SNI, metric 1"

# The operator restores another certificate behind the agent's back.
rm -f "$T/cure"
cp "$T/other1.pem" "$T/tls/served.pem"
postfix -c "$T/postfix" reload >/dev/null 2>&1
t0=$(date +%s)
wait_for "$T/agent.log" "mail: drift: $URL (name mail.example.test) serves sha256 $(sha_of "$T/other1.crt"), not the deployed $deployed" 8
wait_for "$T/agent.log" "mail: drift: $URL (name smtp.example.test) serves sha256 $(sha_of "$T/other1.crt")" 2
wait_for "$T/agent.log" "mail: drift: 2 of 2 probe(s) saw another certificate .*: reloading the services once" 3
wait_for "$T/agent.log" "mail: drift: $URL (name [a-z.]*) still serves sha256 $(sha_of "$T/other1.crt"), not the deployed $deployed, after a reload; not reloaded again for it" 20
t1=$(date +%s)
[ $((t1 - t0)) -le 15 ] || fail "the drift took $((t1 - t0)) s to be reported"
[ "$(reloads)" = 1 ] || fail "$(reloads) reloads for one drift, not 1"
# The reload was followed by the usual verify (which failed: nothing changed) and the re-check.
grep -q "mail: verify failed: $URL: $URL serves sha256 $(sha_of "$T/other1.crt")" "$T/agent.log" ||
	{ cat "$T/agent.log"; fail "no verify after the drift's reload"; }
other1=$(sha_of "$T/other1.crt")
until_show 5 "c['drift'] == 'persists'" \
	"all(s[(url, n)]['match'] is False for n in $NAMES)" \
	"all(s[(url, n)]['sha256'] == '$other1' for n in $NAMES)" \
	"all(s[(url, n)]['checked'] for n in $NAMES)" \
	"c['last_error'].startswith('drift: ')" "c['sha256'] == '$deployed'"
ctl show mail >"$T/show.txt" || true
grep -q "served drift.*persists" "$T/show.txt" || { cat "$T/show.txt"; fail "show: no drift line"; }
grep -q "$URL (name smtp.example.test): OTHER certificate sha256 $other1" "$T/show.txt" ||
	{ cat "$T/show.txt"; fail "show: no line for smtp.example.test"; }
rc=0
ctl status >"$T/status.txt" || rc=$?
[ $rc = 1 ] || { cat "$T/status.txt"; fail "status exited $rc with a drift"; }
grep -q "problem: 1 cert(s) served other than deployed (e.g. mail" "$T/status.txt" ||
	{ cat "$T/status.txt"; fail "status: no drift"; }
ctl --json status >"$T/status.json" || true
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["drifted"] == 1 and d["drifted_cert"] == "mail", d' \
	"$T/status.json" || fail "status JSON: drifted"
for i in $(seq 50); do
	grep -qF "certsync_served_match{cert=\"mail\",url=\"$URL\",name=\"smtp.example.test\"} 0" "$T/metrics.prom" 2>/dev/null && break
	sleep 0.1
done
for n in mail.example.test smtp.example.test; do
	grep -qxF "certsync_served_match{cert=\"mail\",url=\"$URL\",name=\"$n\"} 0" "$T/metrics.prom" ||
		fail "metrics_file: no certsync_served_match 0 for $n: $(grep served "$T/metrics.prom")"
done
pass "drift found within an interval, logged per name, one reload, verify and re-check, reported as persisting (show, status, metrics_file)"

# Several more intervals: checked again, never reloaded again, nothing renewed.
checked=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cert"]["served"][0]["checked"])' "$T/show.json")
sleep 9
until_show 5 "s[(url, 'mail.example.test')]['checked'] > '$checked'" "c['drift'] == 'persists'"
[ "$(reloads)" = 1 ] || fail "reloaded again for the same drift: $(reloads) reloads"
[ "$(grep -c "reloading the services once" "$T/agent.log")" = 1 ] || fail "more than one drift reload logged"
[ "$(grep -c "mail: drift: $URL (name mail.example.test) serves sha256" "$T/agent.log")" = 1 ] ||
	fail "the same drift was logged more than once"
[ "$(grep -c "still serves" "$T/agent.log")" = 1 ] || fail "the persisting drift was reported more than once"
[ "$(sha_of "$T/tls/mail.pem")" = "$deployed" ] || fail "the deployed bundle changed"
! grep -q "renewed\|rolled back\|rolling back" "$T/agent.log" || fail "a drift check renewed or rolled back"
pass "the persisting drift: checked again, no further reload over 4 intervals, nothing renewed or rolled back"

# certsyncctl reload: the operator's reload counts as the one reload of this
# drift; the re-check after it reports it again, and nothing reloads after that.
ctl reload mail >/dev/null || fail "certsyncctl reload mail"
for i in $(seq 100); do [ "$(grep -c "still serves" "$T/agent.log")" -ge 2 ] && break; sleep 0.1; done
[ "$(grep -c "still serves" "$T/agent.log")" = 2 ] || { cat "$T/agent.log"; fail "no report after certsyncctl reload"; }
sleep 5
[ "$(reloads)" = 2 ] || fail "$(reloads) reloads after certsyncctl reload, not 2"
[ "$(grep -c "reloading the services once" "$T/agent.log")" = 1 ] || fail "a drift reload after certsyncctl reload"
until_show 2 "c['drift'] == 'persists'"
pass "certsyncctl reload: one reload, re-checked, reported again, no drift reload after it"

# Another certificate served is another drift: one more reload, which now cures it.
touch "$T/cure"
cp "$T/other2.pem" "$T/tls/served.pem"
postfix -c "$T/postfix" reload >/dev/null 2>&1
wait_for "$T/agent.log" "mail: drift: $URL (name mail.example.test) serves sha256 $(sha_of "$T/other2.crt")" 8
wait_for "$T/agent.log" "mail: drift cleared: the services serve the deployed certificate" 15
wait_for "$T/agent.log" "mail: drift cleared: $URL (name smtp.example.test) serves the deployed certificate again" 1
[ "$(reloads)" = 3 ] || fail "$(reloads) reloads, not 3"
[ "$(sha_of "$T/tls/served.pem")" = "$deployed" ] || fail "the reload did not put the deployed bundle in place"
until_show 5 "c['drift'] == 'none'" "all(s[(url, n)]['match'] is True for n in $NAMES)" \
	"not (c['last_error'] or '').startswith('drift: ')"
for i in $(seq 50); do
	grep -qF "certsync_served_match{cert=\"mail\",url=\"$URL\",name=\"smtp.example.test\"} 1" "$T/metrics.prom" 2>/dev/null && break
	sleep 0.1
done
for n in mail.example.test smtp.example.test; do
	grep -qxF "certsync_served_match{cert=\"mail\",url=\"$URL\",name=\"$n\"} 1" "$T/metrics.prom" ||
		fail "metrics_file: certsync_served_match not back to 1 for $n: $(grep served "$T/metrics.prom")"
done
ctl status >"$T/status2.txt" || { cat "$T/status2.txt"; fail "status still fails after the drift cleared"; }
sleep 5
[ "$(reloads)" = 3 ] || fail "reloaded after the drift cleared: $(reloads)"
pass "a new drift: one more reload that cures it; match again, metric 1, cleared in the log, status ok"

# A new configuration and a stop while checks come and go every 2 s: the
# checks' timers and probes end with the certs that own them.
apid=${CS_PIDS[-1]}
kill -HUP "$apid"
wait_for "$T/agent.log" "pipeline: 1 cert(s) under the new configuration" 15
sleep 3
until_show 5 "c['drift'] == 'none'" "all(s[(url, n)]['match'] is True for n in $NAMES)"
kill -TERM "$apid"
rc=0
wait "$apid" || rc=$?
[ $rc = 0 ] || { tail -20 "$T/agent.log"; fail "certsyncd exited $rc after SIGHUP and SIGTERM"; }
grep -q "certsyncd stopped" "$T/agent.log" || fail "no clean stop"
pass "SIGHUP and SIGTERM with drift checks running: checked again after the switch, clean stop"
