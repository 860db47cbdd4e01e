# Shared helpers for tests/integration/ctlsock_*.sh (sourced, not a test):
# a local-CA configuration in $T, a real certsyncd -f on it, and a raw
# client (/usr/bin/python3, so that it also runs as another user).
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "SKIP: $PY is needed"; exit 77; }

# write_conf [EXTRA-AGENT-LINES]: two certs, "mail" (deployable) and "web"
# (its bundle's directory is a regular file: every renewal fails).
write_conf() {
	mkdir -p "$T/out"
	: >"$T/notadir"
	conf_head "${1:-}" "validity = 30d" >"$T/certsync.conf"
	cat >>"$T/certsync.conf" <<CONF

[cert "mail"]
issuer = local
names  = mail.example.test, smtp.example.test
bundle = $T/out/mail.pem

[cert "web"]
issuer = local
names  = www.example.test
bundle = $T/notadir/web.pem
CONF
}

# start_agent [LOG [PATTERN]]: certsyncd -f in the background; waits for the
# socket and for the first pass (PATTERN, default: mail issued; and web
# failed). Sets $agent.
start_agent() {
	local log=${1:-$T/agent.log}
	spawn_agent "$log"
	wait_for "$log" "status socket listening on $SOCK" 10
	wait_for "$log" "${2:-mail: renewed: serial}" 10
	wait_for "$log" "web: " 10
}

# expect STATUS ARGS...: ctl ARGS and check the exit status.
expect() {
	local want=$1
	shift
	ctl "$@"
	[ "$rc" = "$want" ] || {
		echo "--- stdout" >&2; cat "$T/stdout" >&2
		echo "--- stderr" >&2; cat "$T/stderr" >&2
		fail "certsyncctl $* exited $rc, not $want"
	}
}

in_out() { grep -q -- "$1" "$T/stdout" || { cat "$T/stdout" >&2; fail "stdout lacks '$1'"; }; }
in_err() { grep -q -- "$1" "$T/stderr" || { cat "$T/stderr" >&2; fail "stderr lacks '$1'"; }; }

# jq-like: json FILE EXPR prints the Python expression EXPR evaluated on the
# JSON in FILE (bound to j).
json() { "$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
