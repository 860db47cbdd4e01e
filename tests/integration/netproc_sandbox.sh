#!/usr/bin/env bash
# netproc's sandbox (#18), through tests/np_sandbox_drv run as root:
# - inside, /proc/PID/status (read from outside) says Uid not 0, CapEff
#   0000000000000000, NoNewPrivs 1, Seccomp 2, and so does the process;
# - a 0600 key outside the root and /etc/shadow cannot be opened;
# - an HTTPS GET through cs_http (libcurl's threaded resolver on /etc/hosts,
#   OpenSSL) to a loopback `openssl s_server` succeeds, trusting only the CA
#   bundle passed as an extra root file;
# - fork, exec and mount kill it with SIGSYS; opening for writing and an
#   AF_UNIX socket fail with EACCES;
# - the root is refused when others may write it, and a file left under
#   root/extra/ that is no longer wanted is removed.
. "$(dirname "$0")/lib.bash"

[ "$(id -u)" = 0 ] || { echo "skip: needs root (chroot, setuid)"; exit 77; }
DRV=$CS_BUILD_DIR/tests/np_sandbox_drv
ROOT=$T/root

# A name /etc/hosts maps to a loopback address (not "localhost", which
# libcurl answers itself), so that glibc's resolver runs in the sandbox.
read -r addr name < <(awk '$1 ~ /^127\./ { for (i = 2; i <= NF; i++)
	if ($i !~ /localhost/) { print $1, $i; exit } }' /etc/hosts) || true
if [ -z "${name:-}" ]; then
	addr=127.0.0.1 name=localhost
	echo "note: /etc/hosts names no other loopback host; the resolver is not exercised"
fi

# A test CA, a server certificate for $name, its key 0600 outside the root.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/ca.key" \
	-out "$T/ca.pem" -subj /CN=np-test-ca -days 2 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/srv.key" \
	-out "$T/srv.csr" -subj "/CN=$name" 2>/dev/null
printf 'subjectAltName=DNS:%s\n' "$name" >"$T/ext.cnf"
openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -set_serial 7 -days 2 \
	-extfile "$T/ext.cnf" -out "$T/srv.pem" 2>/dev/null
chmod 600 "$T/srv.key"
port=$(free_port)
openssl s_server -accept "$addr:$port" -cert "$T/srv.pem" -key "$T/srv.key" -www -quiet \
	</dev/null >/dev/null 2>&1 &
CS_PIDS+=($!)
wait_until 10 bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null || fail "s_server did not listen"
URL=https://$name:$port/

# drv OUT ARGS...: the driver with its output through a pipe into OUT (it
# runs with RLIMIT_FSIZE 0: a regular file as stdout would kill it), its
# exit status in $rc.
drv() {
	local out=$1
	shift
	set +e
	"$DRV" "$ROOT" "$T/ca.pem" "$URL" "$@" 2>&1 | cat >"$out"
	rc=${PIPESTATUS[0]}
	set -e
}

# --- the cage seen from outside, then the work done inside it.
mkdir -p "$ROOT/extra/old"
echo stale >"$ROOT/extra/old/stale.pem"
mkfifo "$T/hold"
"$DRV" "$ROOT" "$T/ca.pem" "$URL" --wait --open "$T/srv.key" --open /etc/shadow \
	<"$T/hold" > >(cat >"$T/out") 2>&1 &
pid=$!
CS_PIDS+=($pid)
exec 7>"$T/hold"
wait_for "$T/out" waiting 20
cp "/proc/$pid/status" "$T/status"
exec 7>&-
set +e
wait "$pid"
rc=$?
set -e
sleep 0.2 # the last lines through cat
uid=$(awk '/^Uid:/ { print $2 }' "$T/status")
[ -n "$uid" ] && [ "$uid" != 0 ] || fail "Uid is '$uid': $(grep ^Uid "$T/status")"
awk '/^Uid:/ { for (i = 2; i <= 5; i++) if ($i != $2) exit 1 }' "$T/status" ||
	fail "real, effective, saved and fs uids differ: $(grep ^Uid "$T/status")"
grep -qx $'CapEff:\t0000000000000000' "$T/status" || fail "$(grep ^CapEff "$T/status")"
grep -qx $'CapBnd:\t0000000000000000' "$T/status" || fail "$(grep ^CapBnd "$T/status")"
grep -qx $'NoNewPrivs:\t1' "$T/status" || fail "$(grep ^NoNewPrivs "$T/status")"
grep -qx $'Seccomp:\t2' "$T/status" || fail "$(grep ^Seccomp "$T/status")"
awk '/^Groups:/ { exit NF > 1 }' "$T/status" || fail "supplementary groups: $(grep ^Groups "$T/status")"
pass "from outside: Uid $uid, CapEff and CapBnd 0, NoNewPrivs 1, Seccomp 2, no groups"
grep -qx $'Seccomp:\t2' "$T/out" && grep -qx $'CapEff:\t0000000000000000' "$T/out" ||
	{ cat "$T/out"; fail "the process does not see itself caged"; }
grep -q "^open $T/srv.key: No such file" "$T/out" || { cat "$T/out"; fail "the key outside the root was opened"; }
grep -q "^open /etc/shadow: No such file" "$T/out" || { cat "$T/out"; fail "/etc/shadow was opened"; }
pass "a 0600 key outside the root and /etc/shadow cannot be opened"
[ "$rc" = 0 ] && grep -q "^GET: 200" "$T/out" || { cat "$T/out"; fail "the HTTPS GET of $URL failed (exit $rc)"; }
pass "HTTPS GET of $URL in the sandbox: 200 (exit $rc)"
[ ! -e "$ROOT/extra/old" ] || fail "a file no longer wanted under extra/ was kept: $(ls -R "$ROOT/extra")"
[ "$(stat -c '%a %u' "$ROOT/extra/test/ca.pem")" = "644 0" ] || fail "the extra file's mode or owner"
[ "$(stat -c '%a %u' "$ROOT")" = "755 0" ] || fail "the root's mode or owner"
cmp -s "$ROOT/etc/hosts" /etc/hosts || fail "the root's /etc/hosts is not a copy of the host's"
pass "the root: fresh copies 0644 root's, stale extra files removed"

# --- what the filter refuses.
for call in fork exec mount; do
	drv "$T/out.$call" --forbid "$call"
	[ "$rc" = $((128 + 31)) ] || { cat "$T/out.$call"; fail "$call: exit $rc, not SIGSYS (159)"; }
done
pass "fork, exec and mount are killed with SIGSYS"
drv "$T/out.openw" --forbid openw
[ "$rc" = 0 ] && grep -q "open for writing: Permission denied" "$T/out.openw" ||
	{ cat "$T/out.openw"; fail "opening for writing did not fail with EACCES (exit $rc)"; }
drv "$T/out.socket" --forbid socket
[ "$rc" = 0 ] && grep -q "socket(AF_UNIX): Permission denied" "$T/out.socket" ||
	{ cat "$T/out.socket"; fail "an AF_UNIX socket did not fail with EACCES (exit $rc)"; }
pass "opening a file for writing and an AF_UNIX socket fail with EACCES"

# --- a root others may write is refused, before anything is entered.
chmod 0777 "$ROOT"
drv "$T/out.open" --open /etc/hosts
[ "$rc" = 1 ] && grep -q "writable by others" "$T/out.open" ||
	{ cat "$T/out.open"; fail "a root writable by others was used (exit $rc)"; }
pass "a root writable by others is refused"
