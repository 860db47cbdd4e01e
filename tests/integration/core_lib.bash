# Shared helpers for tests/integration/core_*.sh (sourced, not a test): the
# renewal core (per-certificate state machine) seen from outside. A running
# certsyncd -f with a local CA in $T/ca, one cert "mail" whose outputs are in
# $T/out, and an exec reloader ($T/reloader.sh) that a test steers with flag
# files:
#   $T/reload.fail   exists: the reloader says "refused by the test" and exits 1
#   $T/reload.hold   exists: the reloader waits until it is removed (30 s at most)
#   $T/reload.sleep  holds N: the reloader sleeps N seconds first
# Every run of the reloader appends "start"/"end" lines to $T/reloads.log.
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "SKIP: $PY is needed"; exit 77; }
CA=$T/ca
OUT=${OUT:-$T/out}
ST=$T/state

cat >"$T/reloader.sh" <<'SH'
#!/bin/sh
d=$(dirname "$0")
echo "start $(date +%s.%N) serial=$CERTSYNC_SERIAL names=$CERTSYNC_NAME" >>"$d/reloads.log"
if [ -s "$d/reload.sleep" ]; then sleep "$(cat "$d/reload.sleep")"; fi
i=0
while [ -e "$d/reload.hold" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
if [ -e "$d/reload.fail" ]; then
	echo "end $(date +%s.%N) fail" >>"$d/reloads.log"
	echo "refused by the test" >&2
	exit 1
fi
echo "end $(date +%s.%N) ok" >>"$d/reloads.log"
exit 0
SH
chmod 0755 "$T/reloader.sh"

# core_conf [AGENT-LINES [CERT-LINES [ISSUER-LINES]]]: $T/certsync.conf with
# cert "mail" (bundle in $OUT, reloaded by "svc", the exec reloader).
core_conf() {
	mkdir -p "$OUT"
	cat >"$T/certsync.conf" <<CONF
[agent]
state_dir = $ST
socket    = $SOCK
jitter    = 0%
${1:-}

[issuer "local"]
type     = local-ca
dir      = $CA
${3:-validity = 30d}

[reload "svc"]
type    = exec
command = /bin/sh $T/reloader.sh

[cert "mail"]
issuer = local
names  = mail.example.test
bundle = $OUT/mail.pem
reload = svc
${2:-}
CONF
}

# start_agent [EXTRA-ARGS...]: certsyncd -f (debug log) in the background,
# log appended to $T/agent.log; waits for its status socket. Sets $agent.
start_agent() {
	local n
	n=$(count "status socket listening on $SOCK")
	"$CERTSYNCD" -f -c "$T/certsync.conf" --log-level debug "$@" 2>>"$T/agent.log" &
	agent=$!
	CS_PIDS+=($agent)
	until_count "status socket listening on $SOCK" $((n + 1)) 10
}

# json FILE EXPR: the Python expression EXPR on the JSON in FILE (bound to j).
json() { "$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
# show_json [NAME]: `certsyncctl --json show NAME` (mail) into $T/show.json (the "cert" object when wrapped).
show_json() {
	ctl --json show "${1:-mail}"
	# 1 is its answer for a cert in a bad state (failed, expired, missing).
	[ "$rc" = 0 ] || [ "$rc" = 1 ] || { cat "$T/stdout" "$T/stderr" >&2; fail "certsyncctl --json show ${1:-mail} exited $rc"; }
	"$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); j=j.get('cert',j); json.dump(j,open(sys.argv[2],'w'))" \
		"$T/stdout" "$T/show.json" || { cat "$T/stdout" >&2; fail "show --json is not JSON"; }
}
# state EXPR: EXPR on the state file of mail (bound to j).
state() { json "$ST/certs/${2:-mail}.json" "$1"; }

serial_of() { openssl x509 -in "$1" -noout -serial 2>/dev/null | cut -d= -f2; }
deployed() { serial_of "$OUT/mail.pem"; }
# key_matches FILE: the first key in FILE belongs to its first certificate.
key_matches() {
	local a b
	a=$(openssl x509 -in "$1" -noout -pubkey 2>/dev/null | openssl sha256) || return 1
	b=$(openssl pkey -in "$1" -pubout 2>/dev/null | openssl sha256) || return 1
	[ -n "$a" ] && [ "$a" = "$b" ] && openssl pkey -in "$1" -noout 2>/dev/null
}
# issued: how many certificates the local CA has issued.
issued() { if [ -f "$CA/index.txt" ]; then wc -l <"$CA/index.txt"; else echo 0; fi; }
# failure_lines: the "renewal failed (K in a row)" lines for mail, in order.
failure_lines() { grep "mail: renewal failed ([0-9]* in a row)" "$T/agent.log" || true; }
# The K and the S of each failure line.
failure_ks() { failure_lines | sed -n 's/.*renewal failed (\([0-9]*\) in a row).*/\1/p'; }
failure_ss() { failure_lines | sed -n 's/.*next attempt in [^(]*(\([0-9]*\) s, at .*/\1/p'; }
# attempts_failed FROM: how many renewal attempts of mail, from the FROM-th
# "renewing with issuer" line of the log on (counting from 1), have ended in
# a failure: a failure or rollback line follows before the next attempt
# starts (today's wording and the core's contract both count, once each).
attempts_failed() {
	awk -v from="${1:-1}" '
		/mail: renewing with issuer/ { n++; ended = 0; next }
		n >= from && !ended && /mail: (renewal failed|.*rolled back to generation|.*rolling back to generation [0-9]+ failed)/ { ended = 1; e++ }
		END { print e + 0 }' "$T/agent.log"
}

# force_renew: `certsyncctl renew mail --force`; fails unless it exits 0.
force_renew() {
	ctl renew mail --force
	[ "$rc" = 0 ] || { cat "$T/stdout" "$T/stderr" >&2; fail "renew mail --force exited $rc"; }
}

# failed_at_least FROM N: attempts_failed FROM is N or more.
failed_at_least() { [ "$(attempts_failed "$1")" -ge "$2" ]; }

# first_cert: waits for the agent's first certificate and its reload; sets good.
first_cert() {
	wait_for "$T/agent.log" "mail: renewed: serial" 10
	wait_for "$T/reloads.log" "^end .* ok" 10
	good=$(deployed)
}

# renew_in_reload: `renew mail --force`, then waits until its reload has
# started (held or slowed by the caller's reload.hold / reload.sleep); sets
# inflight to the serial just issued.
renew_in_reload() {
	local i # starts stays set: the caller may count reloads from there
	starts=$(grep -c "^start" "$T/reloads.log")
	force_renew
	for ((i = 0; i < 15 * 20; i++)); do
		[ "$(grep -c "^start" "$T/reloads.log")" -gt "$starts" ] && break
		sleep 0.05
	done
	[ "$(grep -c "^start" "$T/reloads.log")" -gt "$starts" ] ||
		{ log_tail; fail "the renewal did not reach its reload within 15 s"; }
	inflight=$(tail -n 1 "$CA/index.txt" | cut -f4)
}

# until_steady SECONDS N COMMAND...: runs COMMAND every 0.05 s until it has
# succeeded N times in a row (status 0) or SECONDS have passed (status 1).
until_steady() {
	local secs=$1 n=$2 i quiet=0
	shift 2
	for ((i = 0; i < secs * 20; i++)); do
		if "$@"; then
			quiet=$((quiet + 1))
			[ "$quiet" -ge "$n" ] && return 0
		else
			quiet=0
		fi
		sleep 0.05
	done
	return 1
}
