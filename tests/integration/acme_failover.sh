#!/usr/bin/env bash
# Several issuers per cert (`issuer = ca1, ca2`) with failover, against two
# Pebble instances on loopback (start_pebble twice, PEBBLE_NAME):
# - ca1 stopped, nothing deployed: the first attempt fails on ca1, the
#   failover rule moves on at once (nothing valid is deployed) and the next
#   attempt, retry_min (2 s) later, goes to ca2, which issues. The deployed
#   chain ends in ca2's root (the examination takes the trust of either
#   issuer); `show` says "issued by: ca2" and why, the metrics have
#   certsync_cert_issuer_info{issuer="ca2",fallback="1"} and one fallback;
# - ca1 back (now issuing 20-minute certificates): `certsyncctl renew web
#   --force --wait` goes to ca1, the first, and show and the metrics say so;
# - ca1 answering every request 503 with Retry-After: 3600: Pebble has no
#   switch for that, so a tiny python3 HTTPS fixture on loopback stands in
#   for ca1 (every request: 503, Retry-After: 3600). A new cert is issued by
#   ca2 within seconds, not after the hour ca1 asked for; and a forced
#   renewal of web, valid for 20 minutes, moves on to ca2 after its first
#   failure because the hour ends past the point where a third of its
#   renewal's time is left (the rule's Retry-After case).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

# Not a test of challenges, nor of nonces.
export PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_WFE_NONCEREJECT=0
start_pebble
P1=("$PEBBLE_PORT" "$PEBBLE_MGMT" "$HTTP_PORT" "$TLS_PORT")
ACME1=$ACME_DIR
P1_PID=$PEBBLE_PID
unset PEBBLE_PORT PEBBLE_MGMT HTTP_PORT TLS_PORT
PEBBLE_NAME=pebble2 start_pebble
ACME2=$ACME_DIR
P2_PID=$PEBBLE_PID

cat >"$T/dns-hook" <<HOOK
#!/bin/sh
[ "\$1" = add ] && path=set-txt || path=clear-txt
curl -sf -X POST -d "{\"host\":\"\$2.\",\"value\":\"\$3\"}" "http://127.0.0.1:$CTS_MGMT/\$path" >/dev/null
exit 0
HOOK
chmod 755 "$T/dns-hook"

# issuer_conf NAME DIR ROOT: an [issuer "NAME"] of type acme at DIR trusting ROOT.
issuer_conf() {
	printf '\n[issuer "%s"]\ntype = acme\ndirectory = %s\nca_bundle = %s\ntrust = %s\n' \
		"$1" "$2" "$T/pebble-ca.pem" "$3"
	printf 'contact = %s\nchallenge = dns-01\ndns_hook = %s\n' \
		mailto:hostmaster@example.test "$T/dns-hook"
}

# conf DIR1 CERT...: ca1 at DIR1, ca2 at the second Pebble; each CERT from ca1, then ca2.
conf() {
	local dir1=$1 n
	shift
	{
		printf '[agent]\nstate_dir = %s\nsocket = %s\nretry_min = 2s\nretry_max = 4s\n' \
			"$T/state" "$T/certsync.sock"
		issuer_conf ca1 "$dir1" "$T/pebble-root.pem"
		issuer_conf ca2 "$ACME2" "$T/pebble2-root.pem"
	} >"$T/certsync.conf"
	for n in "$@"; do
		cat >>"$T/certsync.conf" <<CONF

[cert "$n"]
issuer    = ca1, ca2
failover_after = 3
names     = $n.example.test
fullchain = $T/out/$n.crt
keyfile   = $T/out/$n.key
CONF
	done
}

# verifies NAME ROOT: the deployed chain of NAME ends in ROOT.
verifies() {
	openssl x509 -in "$T/out/$1.crt" -out "$T/out/$1-leaf.pem"
	awk 'n>0 {print} /END CERTIFICATE/ {n++}' "$T/out/$1.crt" >"$T/out/$1-chain.pem"
	openssl verify -CAfile "$2" -untrusted "$T/out/$1-chain.pem" "$T/out/$1-leaf.pem" >/dev/null 2>&1
}

mkdir -p "$T/out"
conf "$ACME1" web
run 0 "$CERTSYNCD" --check-config -c "$T/certsync.conf"

# ---- ca1 stopped: ca2 issues ------------------------------------------------
PEBBLE_PID=$P1_PID stop_pebble
t0=$(date +%s)
spawn_agent
until_count "web: falling back from issuer ca1 to issuer ca2: nothing valid is deployed" 1 30
until_count "web: renewed: serial" 1 30
t1=$(date +%s)
[ $((t1 - t0)) -le 30 ] || fail "ca2 issued only after $((t1 - t0)) s"
verifies web "$T/pebble2-root.pem" || fail "web's chain does not end in ca2's root"
grep -q "web: renewing with issuer ca2 (.*fallback: issuer ca1 failed (nothing valid is deployed)" \
	"$T/agent.log" || { log_tail; fail "the renewal with ca2 does not say why"; }
pass "ca1 stopped: ca2 issued web within $((t1 - t0)) s (retry_min 2 s after ca1's failure)"

# The examination after the deploy found it valid (ca2's trust), not foreign.
shown_ok() { ctl show "$1" && grep -q "deployed files  *ok" "$T/stdout"; }
wait_until 10 shown_ok web || { cat "$T/stdout"; fail "show does not say web's deployed files are ok"; }
# says NAME ISSUER FALLBACK_PATTERN FALLBACK01 COUNT: show and the metrics
# say that ISSUER issued NAME, why (FALLBACK_PATTERN), and the fallback count.
says() {
	ctl show "$1"
	grep -q "^ *issuers  *ca1, ca2$" "$T/stdout" || { cat "$T/stdout"; fail "show lacks $1's issuer list"; }
	grep -q "^ *issued by  *$2$" "$T/stdout" || { cat "$T/stdout"; fail "show does not say $2 issued $1"; }
	grep -q "^ *fallback  *$3" "$T/stdout" || { cat "$T/stdout"; fail "show's fallback of $1 is not '$3'"; }
	ctl metrics
	grep -qxF "certsync_cert_issuer_info{name=\"$1\",issuer=\"$2\",fallback=\"$4\"} 1" "$T/stdout" ||
		{ grep issuer "$T/stdout"; fail "the metrics do not say $2 issued $1"; }
	grep -qxF "certsync_issuer_fallbacks_total{name=\"$1\"} $5" "$T/stdout" ||
		{ grep fallback "$T/stdout"; fail "the metrics do not count $5 fallback(s) of $1"; }
}
says web ca2 "issuer ca1 failed (nothing valid is deployed): " 1 1
pass "show and the metrics say ca2 issued web, and why"

# ---- ca1 back: the next renewal goes to ca1 -------------------------------------
PEBBLE_VALIDITY=1200 PEBBLE_PORT=${P1[0]} PEBBLE_MGMT=${P1[1]} HTTP_PORT=${P1[2]} TLS_PORT=${P1[3]} \
	start_pebble
# Pebble makes a new root at every start: the file ca1's trust names changes.
ctl renew web --force --wait
[ "$rc" = 0 ] || { cat "$T/stdout" "$T/stderr"; log_tail; fail "the forced renewal failed"; }
grep -q "web: renewing with issuer ca1 (" "$T/agent.log" || { log_tail; fail "the renewal did not start with ca1"; }
verifies web "$T/pebble-root.pem" || fail "web's chain does not end in ca1's root"
left=$(($(date -d "$(openssl x509 -in "$T/out/web.crt" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)))
[ "$left" -le 1200 ] || fail "ca1's certificate is valid for $left s, not 20 minutes"
says web ca1 "-$" 0 1
pass "ca1 back: the next renewal went to ca1; show and the metrics say so"
stop_agent

# ---- ca1 answering 503 with Retry-After: 3600 ----------------------------------
cat >"$T/busy.py" <<'PY'
# Every request: 503 with Retry-After: 3600 (an ACME CA at its limit).
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        body = b'{"type":"urn:ietf:params:acme:error:rateLimited","detail":"busy"}'
        self.send_response(503)
        self.send_header("Retry-After", "3600")
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_HEAD = answer
    def log_message(self, *a):
        sys.stderr.write("busy: %s\n" % self.requestline)
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening", flush=True)
srv.serve_forever()
PY
BUSY_PORT=$(free_port)
python3 "$T/busy.py" "$BUSY_PORT" "$T/pebble.pem" "$T/pebble.key" >"$T/busy.out" 2>"$T/busy.log" &
CS_PIDS+=($!)
wait_for "$T/busy.out" listening 10
conf "https://127.0.0.1:$BUSY_PORT/dir" web mail
t0=$(date +%s)
spawn_agent "$T/agent2.log"
wait_until 30 grep -q "mail: renewed: serial" "$T/agent2.log" ||
	{ tail -30 "$T/agent2.log" >&2; fail "mail was not issued by ca2 within 30 s"; }
t1=$(date +%s)
grep -q "HTTP 503" "$T/agent2.log" || fail "ca1's 503 is not in the log"
grep -q "mail: falling back from issuer ca1 to issuer ca2: nothing valid is deployed" "$T/agent2.log" ||
	{ tail -30 "$T/agent2.log" >&2; fail "no fallback line for mail"; }
[ -s "$T/busy.log" ] || fail "the 503 fixture was never asked"
verifies mail "$T/pebble2-root.pem" || fail "mail's chain does not end in ca2's root"
says mail ca2 "issuer ca1 failed .*HTTP 503" 1 1
pass "ca1 answering 503 (Retry-After 3600): ca2 issued mail within $((t1 - t0)) s"
# web, valid from ca1, was left alone (not due).
[ "$(grep -c "web: renewing" "$T/agent2.log")" = 0 ] || fail "web was renewed again"

# Retry-After: 3600 on a certificate valid for 20 minutes: waiting is unwise.
ctl renew web --force --wait
[ "$rc" != 0 ] || fail "the forced renewal with ca1 answering 503 succeeded"
wait_until 30 grep -q "web: renewed: serial" "$T/agent2.log" ||
	{ tail -30 "$T/agent2.log" >&2; fail "web was not issued by ca2 within 30 s"; }
grep -q "web: falling back from issuer ca1 to issuer ca2: its Retry-After ends past a third of the renewal's time" \
	"$T/agent2.log" || { tail -30 "$T/agent2.log" >&2; fail "no Retry-After fallback line for web"; }
[ "$(grep -c "web: renewing with issuer ca1" "$T/agent2.log")" = 1 ] || fail "web tried ca1 more than once"
verifies web "$T/pebble2-root.pem" || fail "web's chain does not end in ca2's root"
says web ca2 "issuer ca1 failed (its Retry-After ends past a third of the renewal's time): .*HTTP 503" 1 2
pass "a 20-minute certificate: ca1's Retry-After of an hour moved the renewal to ca2 after one failure"
kill "$P2_PID"
