#!/usr/bin/env bash
# valgrind_agent.sh [BUILD_DIR] - valgrind memcheck on two integration runs
# of the real agent (not in ctest; contrib/dev.sh test runs it once on the
# plain build after the suite; about 80 s):
#   1. certsyncd -f --once on a local-CA configuration with three certs
#      (bundle, fullchain + key file, all of them) and a [capath] the CA is
#      published in: the CA is created, three certificates issued, deployed,
#      the capath hashed;
#   2. certsyncd -f on the same state with one-minute certificates and
#      renew_before = 99%: it starts, renews on its timer, then SIGTERM.
# The cert "mail" has dane = 3 1 1 (a hook that does nothing, a resolver
# that does not answer): its next key is staged, its records "published",
# the resolver asked in vain (through netproc), and its renewals keep the
# current key. A
# [notify] section runs a command for every renewal.
# Each under --leak-check=full --errors-for-leak-kinds=definite
# --error-exitcode=1; suppressions (tests/bench/valgrind.supp) name only
# libraries, never certsync code. Prints each run's leak and error summary
# and exits non-zero when a run had an error or a definite leak.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build-rel}
D=$build/agent/certsyncd
command -v valgrind >/dev/null || { echo "SKIP: valgrind is not installed"; exit 77; }
[ -x "$D" ] || { echo "no $D: build first (cmake --build $build)"; exit 2; }
T=$(mktemp -d /tmp/cs-valgrind.XXXXXX)
# netproc (which asks the DANE resolver) is the parent's binary run again as
# /proc/self/exe, which is valgrind under valgrind: a test build takes the
# binary's path instead. netproc itself runs outside valgrind (its seccomp
# filter would not let valgrind run).
export CERTSYNC_TEST_NETPROC_PROGRAM=$D
agent=
finish() {
	[ -n "$agent" ] && kill -9 "$agent" 2>/dev/null || true
	if [ "${CS_KEEP:-}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap finish EXIT
VG=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible
	--errors-for-leak-kinds=definite --error-exitcode=1 --track-fds=no --num-callers=30
	--suppressions="$top/tests/bench/valgrind.supp")

mkdir -p "$T/out" "$T/dove" "$T/web" "$T/capath"
conf() { # conf VALIDITY RENEW_BEFORE
	cat >"$T/certsync.conf" <<CONF
[agent]
state_dir    = $T/state
socket       = $T/certsync.sock
renew_before = $2
jitter       = 0%

[issuer "local"]
type     = local-ca
dir      = $T/ca
validity = $1

[cert "mail"]
renew_before = $2
issuer = local
names  = mail.example.test, smtp.example.test, 192.0.2.25
bundle = $T/out/mail.pem
dane          = 3 1 1
dane_hook     = /bin/true
dane_resolver = 127.0.0.1:9
dane_ttl      = 2s

[cert "imap"]
renew_before = $2
issuer    = local
names     = imap.example.test
key       = rsa:2048
fullchain = $T/dove/imap.crt
keyfile   = $T/dove/imap.key

[cert "web"]
renew_before = $2
issuer    = local
names     = www.example.test
bundle    = $T/web/web.pem
fullchain = $T/web/web.crt
cert      = $T/web/leaf.pem
chain     = $T/web/chain.pem
keyfile   = $T/web/web.key

[capath "trust"]
dir     = $T/capath
cafile  = $T/CAfile.pem
issuers = local

[notify "all"]
on       = renewal, failure
command  = /bin/true
interval = 1s
CONF
}

rc=0
# summary NAME LOG STATUS: the figures valgrind gave, and whether they pass.
summary() {
	local name=$1 log=$2 st=$3 def
	def=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes in \([0-9,]*\) blocks.*/\1 bytes in \2 blocks/p' "$log" | head -n 1)
	echo "== $name (exit $st)"
	grep -E "in use at exit|definitely lost:|indirectly lost:|possibly lost:|still reachable:|suppressed:|ERROR SUMMARY" "$log" |
		sed 's/^==[0-9]*== */  /'
	grep -q "All heap blocks were freed" "$log" && echo "  all heap blocks were freed"
	if [ "$st" != 0 ] || ! grep -q "ERROR SUMMARY: 0 errors" "$log" ||
		{ [ -n "$def" ] && [ "$def" != "0 bytes in 0 blocks" ]; }; then
		echo "FAIL: $name (see $log; CS_KEEP=1 keeps it)"
		rc=1
	fi
}

conf 30d 33%
st=0
"${VG[@]}" --log-file="$T/once.vg" "$D" -f --once -c "$T/certsync.conf" 2>"$T/once.log" || st=$?
grep -q "one pass over 3 cert(s): 3 renewed" "$T/once.log" || { cat "$T/once.log"; echo "FAIL: --once did not issue 3"; rc=1; }
[ -L "$T/capath/$(openssl x509 -in "$T/capath/local-ca.pem" -noout -hash).0" ] || { echo "FAIL: capath not hashed"; rc=1; }
summary "certsyncd -f --once (CA created, 3 certs issued and deployed, capath hashed)" "$T/once.vg" "$st"

conf 1m 99%
# Fresh outputs and state (the CA stays): issued at start, renewed a second later.
rm -rf "$T/state" "$T/out"/* "$T/dove"/* "$T/web"/*
"${VG[@]}" --log-file="$T/run.vg" "$D" -f -c "$T/certsync.conf" 2>"$T/run.log" &
agent=$!
# Three issued at start, then at least three more on the timer.
for _ in $(seq 1200); do
	[ "$(grep -c "renewed: serial" "$T/run.log" 2>/dev/null || true)" -ge 6 ] && break
	sleep 0.1
done
renewals=$(grep -c "renewed: serial" "$T/run.log" || true)
[ "$renewals" -ge 6 ] || { tail "$T/run.log"; echo "FAIL: no renewal on the timer"; rc=1; }
grep -q "mail: DANE: renewing with the current key" "$T/run.log" ||
	{ tail "$T/run.log"; echo "FAIL: the DANE cert did not keep its key"; rc=1; }
grep -q "notify all: renewal of mail by /bin/true: told" "$T/run.log" ||
	{ tail "$T/run.log"; echo "FAIL: no renewal was told"; rc=1; }
kill -TERM "$agent"
st=0
wait "$agent" || st=$?
agent=
grep -q "certsyncd stopped" "$T/run.log" || { echo "FAIL: no clean stop"; rc=1; }
summary "certsyncd -f: $renewals renewals (3 at start, the rest on the timer), then SIGTERM" "$T/run.vg" "$st"
exit $rc
