# Helpers for the acme_*.sh tests (sourced after lib.bash): a real Pebble and
# pebble-challtestsrv on free loopback ports, with a TLS certificate for
# Pebble's listener made here, and a certsync.conf for an [issuer "acme"].
# Everything started is registered in CS_PIDS and killed by lib.bash's cleanup.

command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null || {
	echo "SKIP: pebble is not installed (apt-get install -y pebble)"
	exit 77
}

# The listener certificate: a throwaway CA ($T/pebble-ca.pem, the ca_bundle)
# and a leaf for 127.0.0.1 and localhost signed by it.
make_listener_cert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=certsync test listener CA" -keyout "$T/pebble-ca.key" \
		-out "$T/pebble-ca.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/CN=127.0.0.1" -keyout "$T/pebble.key" -out "$T/pebble.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$T/pebble.ext"
	openssl x509 -req -in "$T/pebble.csr" -CA "$T/pebble-ca.pem" -CAkey "$T/pebble-ca.key" \
		-CAcreateserial -days 2 -extfile "$T/pebble.ext" -out "$T/pebble.pem" 2>/dev/null
}

# start_challtestsrv: DNS on CTS_DNS (every name resolves to 127.0.0.1),
# management API on CTS_MGMT.
start_challtestsrv() {
	CTS_DNS=$(free_port)
	CTS_MGMT=$(free_port)
	pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
		-dns01 "127.0.0.1:$CTS_DNS" -management "127.0.0.1:$CTS_MGMT" \
		-http01 "" -https01 "" -tlsalpn01 "" >"$T/challtestsrv.log" 2>&1 &
	CTS_PID=$!
	CS_PIDS+=($CTS_PID)
	wait_for "$T/challtestsrv.log" "Starting management server" 10
	wait_port "$CTS_MGMT"
}

# start_pebble [EAB]: Pebble on PEBBLE_PORT (directory $ACME_DIR), management
# on PEBBLE_MGMT, validating http-01 on HTTP_PORT; resolving through
# challtestsrv. With EAB=1, external account binding is required with key
# kid-1 = $EAB_KEY. Extra environment (PEBBLE_WFE_NONCEREJECT, ...) passes through.
# PEBBLE_NAME (default pebble) names its files: $T/NAME.json, $T/NAME.log and
# its root $T/NAME-root.pem; a second instance takes another name and, with
# PEBBLE_PORT, PEBBLE_MGMT, HTTP_PORT and TLS_PORT unset, ports of its own
# (the listener certificate and challtestsrv are shared). PEBBLE_VALIDITY
# (seconds): the lifetime of the certificates it issues (default Pebble's).
EAB_KEY=zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W
start_pebble() {
	local eab=${1:-0} required=false name=${PEBBLE_NAME:-pebble}
	[ -f "$T/pebble.pem" ] || make_listener_cert
	[ -n "${CTS_DNS:-}" ] || start_challtestsrv
	: "${PEBBLE_PORT:=$(free_port)}" "${PEBBLE_MGMT:=$(free_port)}" "${HTTP_PORT:=$(free_port)}"
	: "${TLS_PORT:=$(free_port)}"
	[ "$eab" = 1 ] && required=true
	cat >"$T/$name.json" <<JSON
{
  "pebble": {
    "listenAddress": "127.0.0.1:$PEBBLE_PORT",
    "managementListenAddress": "127.0.0.1:$PEBBLE_MGMT",
    "certificate": "$T/pebble.pem",
    "privateKey": "$T/pebble.key",
    "httpPort": $HTTP_PORT,
    "tlsPort": $TLS_PORT,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": $required,
    "externalAccountMACKeys": { "kid-1": "$EAB_KEY" }${PEBBLE_VALIDITY:+,
    \"certificateValidityPeriod\": $PEBBLE_VALIDITY}
  }
}
JSON
	ACME_DIR=https://127.0.0.1:$PEBBLE_PORT/dir
	: >"$T/$name.log"
	# No reuse of valid authorizations between orders unless a test asks:
	# a second order must do its challenges again.
	PEBBLE_AUTHZREUSE=${PEBBLE_AUTHZREUSE:-0} PEBBLE_VA_NOSLEEP=1 pebble -config "$T/$name.json" -dnsserver "127.0.0.1:$CTS_DNS" \
		>>"$T/$name.log" 2>&1 &
	PEBBLE_PID=$!
	CS_PIDS+=($PEBBLE_PID)
	wait_for "$T/$name.log" "ACME directory available" 15
	# Pebble logs each listener's address before it listens: wait for both.
	wait_port "$PEBBLE_MGMT"
	wait_port "$PEBBLE_PORT"
	# The root that signs what Pebble issues (a new one at every start).
	curl -sf --cacert "$T/pebble-ca.pem" "https://127.0.0.1:$PEBBLE_MGMT/roots/0" \
		>"$T/$name-root.pem" || fail "cannot fetch Pebble's root"
}

stop_pebble() {
	kill "$PEBBLE_PID" 2>/dev/null || true
	wait "$PEBBLE_PID" 2>/dev/null || true
}

# write_conf ISSUER_LINES...: certsync.conf with the acme issuer "pebble"
# (directory, ca_bundle, trust = $ACME_TRUST or Pebble's root, contact and
# the given extra lines) and the cert
# "web" for a.example.test and b.example.test into $T/out.
write_conf() {
	mkdir -p "$T/out"
	{
		cat <<CONF
[agent]
state_dir = $T/state
socket    = $T/certsync.sock
retry_min = 2s
retry_max = 4s

[issuer "pebble"]
type      = acme
directory = $ACME_DIR
ca_bundle = $T/pebble-ca.pem
trust     = ${ACME_TRUST:-$T/pebble-root.pem}
contact   = mailto:hostmaster@example.test
CONF
		printf '%s\n' "$@"
		cat <<CONF

[cert "web"]
issuer    = pebble
names     = a.example.test, b.example.test
fullchain = $T/out/web.crt
keyfile   = $T/out/web.key
CONF
	} >"$T/certsync.conf"
}

# check_deployed: the deployed chain verifies against Pebble's root, names the
# cert's names, and matches the key; the account key is private (0600).
check_deployed() {
	local leaf=$T/out/leaf.pem chain=$T/out/chain.pem
	[ -s "$T/out/web.crt" ] || fail "no fullchain deployed"
	openssl x509 -in "$T/out/web.crt" -out "$leaf"
	awk 'n>0 {print} /END CERTIFICATE/ {n++}' "$T/out/web.crt" >"$chain"
	[ -s "$chain" ] || fail "the fullchain has no intermediate"
	openssl verify -CAfile "$T/pebble-root.pem" -untrusted "$chain" "$leaf" >"$T/verify.out" 2>&1 ||
		fail "the chain does not verify against Pebble's root: $(cat "$T/verify.out")"
	openssl x509 -in "$leaf" -noout -ext subjectAltName | has "DNS:a.example.test, DNS:b.example.test" ||
		fail "the leaf does not name a.example.test and b.example.test"
	[ "$(openssl x509 -in "$leaf" -noout -pubkey | openssl sha256)" = \
		"$(openssl pkey -in "$T/out/web.key" -pubout | openssl sha256)" ] ||
		fail "the deployed key does not match the leaf"
	[ "$(stat -c %a "$T/state/acme/pebble/account.key")" = 600 ] ||
		fail "the account key is not mode 0600"
	openssl pkey -in "$T/state/acme/pebble/account.key" -noout 2>/dev/null ||
		fail "the account key is not a private key in PEM"
}

# add_certs NAME...: appends to certsync.conf a [cert "NAME"] for each NAME:
# NAME.example.test from "pebble", fullchain and key file in $T/out.
add_certs() {
	local n
	for n in "$@"; do
		cat >>"$T/certsync.conf" <<CONF

[cert "$n"]
issuer    = pebble
names     = $n.example.test
fullchain = $T/out/$n.crt
keyfile   = $T/out/$n.key
CONF
	done
}
