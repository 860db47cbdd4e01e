# Shared helpers for the integration scripts (sourced, not a test itself;
# core_lib and ctlsock_lib source it, acme_lib, localca_lib and
# servers.bash follow it; all add their own): a temporary directory $T
# removed at exit, fail/pass, waits (wait_for, wait_until, until_count), has
# (grep -q at the end of a pipe), the
# usual configuration (std_conf, conf_head, conf_mail, conf_capath,
# EVERY_SECOND), the agent in the background (spawn_agent, stop_agent) and
# certsyncctl on its socket (ctl), commands with an expected exit status
# (run), a test PKI with two generations of its leaf (mkpki2).
set -euo pipefail
: "${CS_BUILD_DIR:?run through ctest}"
: "${CS_SOURCE_DIR:?run through ctest}"
CERTSYNCD=$CS_BUILD_DIR/agent/certsyncd
CERTSYNCCTL=$CS_BUILD_DIR/agent/certsyncctl
T=$(mktemp -d /tmp/cs-it.XXXXXX)
CS_PIDS=()
SOCK=$T/certsync.sock # the status socket of the usual configuration
cleanup() {
	for p in "${CS_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	# A server stopped a moment ago may still be writing its queue: try again.
	if [ "${CS_KEEP:-}" = 1 ]; then
		echo "kept $T"
	else
		local i
		for i in 1 2 3 4 5; do
			rm -rf "$T" 2>/dev/null && break
			sleep 1
		done
		[ ! -e "$T" ] || echo "warning: could not remove $T" >&2
	fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }
# wait_for FILE PATTERN [SECONDS]: until grep -q PATTERN FILE, or fail.
wait_for() {
	local f=$1 pat=$2 secs=${3:-10} i
	for ((i = 0; i < secs * 20; i++)); do
		grep -q -- "$pat" "$f" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "--- $f" >&2; cat "$f" >&2 || true
	fail "timed out waiting for '$pat' in $f"
}

# The tests' usual configuration, printed on stdout for the caller to
# redirect: conf_head prints [agent] (state in $T/state, the status socket
# $T/certsync.sock) and [issuer "local"] (a local CA in $T/ca); conf_mail
# prints [cert "mail"] (mail.example.test from "local", bundle
# $T/out/mail.pem). Each optional argument is added, as it is, at the end of
# its section: one line, several lines, or nothing when empty. The sections
# are those the tests wrote before, line for line (the line numbers of the
# configuration are the same).
# conf_head [AGENT-LINES [ISSUER-LINES]]
conf_head() {
	cat <<CONF
[agent]
state_dir = $T/state
socket    = $T/certsync.sock${1:+
$1}

[issuer "local"]
type = local-ca
dir  = $T/ca${2:+
$2}
CONF
}
# conf_mail [CERT-LINES]
conf_mail() {
	cat <<CONF
[cert "mail"]
issuer = local
names  = mail.example.test
bundle = $T/out/mail.pem${1:+
$1}
CONF
}
# std_conf [AGENT-LINES [ISSUER-LINES [CERT-LINES]]]: conf_head, a blank
# line, conf_mail: the whole usual configuration.
std_conf() {
	conf_head "${1:-}" "${2:-}"
	echo
	conf_mail "${3:-}"
}

# conf_capath [CAPATH-LINES]: a blank line and [capath "trust"]: the CAs of
# issuer "local" in $T/capath and in the CAfile $T/CAfile.pem.
conf_capath() {
	cat <<CONF

[capath "trust"]
dir     = $T/capath
cafile  = $T/CAfile.pem
issuers = local${1:+
$1}
CONF
}

# [agent] lines (for conf_head) of a test that renews all the time: with the
# local CA's validity = 1m, a certificate is due a second after it was
# issued, and a failure is tried again a second later.
EVERY_SECOND="renew_before = 99%
jitter       = 0%
retry_min    = 1s"

# spawn_agent [LOG [ARG...]]: certsyncd -f -c $T/certsync.conf ARGs in the
# background, its stderr in LOG ($T/agent.log unless given), killed at the
# end of the test; sets $agent to its PID. It does not wait for anything.
spawn_agent() {
	local log=${1:-$T/agent.log}
	shift || true
	"$CERTSYNCD" -f -c "$T/certsync.conf" "$@" 2>"$log" &
	agent=$!
	CS_PIDS+=($agent)
}

# stop_agent: SIGTERM to $agent; fails unless it exits 0.
stop_agent() {
	kill -TERM "$agent"
	wait "$agent" || fail "the agent exited non-zero after SIGTERM"
}

# PRODUCER | has [GREP-OPTION...] PATTERN: grep -q that reads all of its
# input first. grep -q leaves at the first match, and a producer still
# writing then dies of SIGPIPE, which pipefail makes the pipeline's status:
# a test that fails now and then, when the output is long (a man page
# section, a log). Redirecting grep to /dev/null does not help: GNU grep
# then leaves at the first match too.
has() {
	local in
	in=$(cat)
	grep -q "$@" <<<"$in"
}

# wait_until SECONDS COMMAND...: runs COMMAND every 0.05 s until it succeeds
# (status 0) or SECONDS have passed (status 1; the caller says what failed).
wait_until() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 20; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

# wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT.
wait_port() {
	local i
	for ((i = 0; i < ${2:-10} * 20; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	fail "nothing listens on 127.0.0.1:$1"
}

# ctl ARGS...: certsyncctl -s $SOCK ARGS, its output in $T/stdout and
# $T/stderr, its exit status in $rc.
ctl() {
	set +e
	"$CERTSYNCCTL" -s "$SOCK" "$@" >"$T/stdout" 2>"$T/stderr"
	rc=$?
	set -e
}

# count PATTERN [FILE]: how many lines of FILE ($T/agent.log) hold PATTERN.
count() { grep -c -- "$1" "${2:-$T/agent.log}" || true; }
# log_tail [N]: the last N (25) lines of the agent's log, on stderr.
log_tail() { echo "--- last lines of the agent's log" >&2; tail -n "${1:-25}" "$T/agent.log" >&2; }
# until_count PATTERN N SECONDS: waits until PATTERN is in the log N times.
until_count() {
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		[ "$(count "$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	log_tail 30
	fail "'$1' not logged $2 time(s) within $3 s (logged $(count "$1"))"
}

# run EXPECTED_STATUS CMD...: runs CMD, its stdout in $T/stdout and its
# stderr in $T/stderr; fails, showing both, unless it exits EXPECTED_STATUS.
run() {
	local want=$1 rc=0
	shift
	"$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "--- stdout" >&2; cat "$T/stdout" >&2
		echo "--- stderr" >&2; cat "$T/stderr" >&2
		fail "$* exited $rc, expected $want"
	fi
}

# mkpki2 DIR: tests/mkpki.sh's EC PKI in DIR, and a second generation of its
# leaf: a new key and leaf from the same intermediate (DIR/leaf2.key,
# DIR/leaf2.pem, serial 0x2222).
mkpki2() {
	bash "$CS_SOURCE_DIR/tests/mkpki.sh" "$1" ec >/dev/null 2>&1
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1/leaf2.key" \
		-subj "/CN=leaf.example.test" -out "$1/leaf2.csr" 2>/dev/null
	openssl x509 -req -in "$1/leaf2.csr" -CA "$1/int.pem" -CAkey "$1/int.key" -set_serial 0x2222 \
		-days 90 -extfile "$1/ext.cnf" -extensions leaf -out "$1/leaf2.pem" 2>/dev/null
}

# free_port: a TCP (and UDP) port on 127.0.0.1 that nothing uses now, taken
# below the kernel's ephemeral range (net.ipv4.ip_local_port_range), so that
# no outgoing connection of a test running beside this one is given the
# same port between this choice and the server's bind (it_acme_ari once
# failed so with "address already in use").
free_port() {
	python3 - <<'PY'
import random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
while True:
    p = random.randrange(10000, max(lo, 10001))
    t = socket.socket()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        t.bind(("127.0.0.1", p)); u.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        t.close(); u.close()
    print(p); break
PY
}
