# DNSSEC for the DANE integration tests (sourced after lib.bash): a BIND
# authoritative server for the zone example.test, signed by a dnssec-policy
# and taking TSIG-signed dynamic updates (start_dns), an Unbound validating
# resolver with that zone's key as trust anchor (start_unbound), a helper
# that publishes or removes TLSA records with nsupdate (dns_update) and the
# resolver's view of a TLSA RRset (tlsa_view). Everything runs on loopback,
# keeps its files under $T and is killed at the end of the test. Needs root
# (port 53). Facts in ../shared/TESTING.md, "DNSSEC for DANE tests".
#
# Two tests running side by side must not share the receiver's port 25 or
# the resolver's port 53: each test takes its own pair of loopback
# addresses, derived from its PID, 127.25.H.L (RECV_ADDR: where
# mail.example.test points, for the receiving Postfix) and 127.53.H.L
# (RESOLVER_ADDR: where start_unbound listens), unless the caller set them
# before sourcing this file.

# dane_addrs_free RECV RESOLVER: whether nothing uses RECV:25 (TCP) and
# RESOLVER:53 (TCP and UDP) now.
dane_addrs_free() {
	python3 - "$1" "$2" <<'PY'
import socket, sys
for addr, port, kind in ((sys.argv[1], 25, socket.SOCK_STREAM),
                         (sys.argv[2], 53, socket.SOCK_STREAM),
                         (sys.argv[2], 53, socket.SOCK_DGRAM)):
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((addr, port))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
}

# dane_addrs: sets RECV_ADDR and RESOLVER_ADDR (those already set are kept)
# to a pair of this test's own loopback addresses that nothing uses now.
dane_addrs() {
	local n=$(($$ % 65024)) i
	if [ -n "${RECV_ADDR:-}" ] && [ -n "${RESOLVER_ADDR:-}" ]; then return 0; fi
	for ((i = 0; i < 64; i++)); do
		local h=$(((n >> 8) % 254 + 1)) l=$((n % 254 + 1))
		local recv=${RECV_ADDR:-127.25.$h.$l} res=${RESOLVER_ADDR:-127.53.$h.$l}
		if [ "$(id -u)" != 0 ] || dane_addrs_free "$recv" "$res"; then
			RECV_ADDR=$recv RESOLVER_ADDR=$res
			return 0
		fi
		n=$(((n + 977) % 65024))
	done
	fail "no free pair of loopback addresses for the receiver and the resolver"
}
dane_addrs
export RECV_ADDR RESOLVER_ADDR

# dns_need: exits 77 (ctest's skip) unless this test can run the DNS
# fixture: root, named, unbound and the BIND tools.
dns_need() {
	local c
	[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (ports 25 and 53)"; exit 77; }
	for c in named unbound dig nsupdate tsig-keygen; do
		command -v "$c" >/dev/null ||
			{ echo "SKIP: $c is not installed (bind9, bind9-utils, bind9-dnsutils, unbound)"; exit 77; }
	done
}

# start_dns: BIND (named) on 127.0.0.1:$DNS_PORT, authoritative for
# example.test: SOA (negative TTL 1 s), NS ns, MX 10 mail, ns A 127.0.0.1,
# mail A $RECV_ADDR, every record with TTL 2. The zone is signed by a
# dnssec-policy (one CSK, ECDSA P-256, DNSKEY TTL 5) and takes RFC 2136
# updates signed with the TSIG key certsync-test of $T/tsig.key (any name
# of the zone, any type); $T/tsig-wrong.key has the same name and another
# secret, for updates the server must refuse. Exports DNS_PORT,
# DNS_ZONE=example.test, DNS_TSIG=$T/tsig.key and DNS_TSIG_WRONG; returns
# once the zone is served signed. Log: $T/dns/named.log.
start_dns() {
	local d=$T/dns
	mkdir -p "$d/keys"
	DNS_PORT=$(free_port)
	DNS_ZONE=example.test
	DNS_TSIG=$T/tsig.key
	DNS_TSIG_WRONG=$T/tsig-wrong.key
	export DNS_PORT DNS_ZONE DNS_TSIG DNS_TSIG_WRONG
	tsig-keygen -a hmac-sha256 certsync-test >"$DNS_TSIG"
	tsig-keygen -a hmac-sha256 certsync-test >"$DNS_TSIG_WRONG"
	cat >"$d/example.test.db" <<ZONE
\$TTL 2
@	IN SOA ns.example.test. hostmaster.example.test. 1 60 10 600 1
	IN NS ns.example.test.
	IN MX 10 mail.example.test.
ns	IN A 127.0.0.1
mail	IN A $RECV_ADDR
ZONE
	cat >"$d/named.conf" <<CONF
options {
	directory "$d";
	pid-file none;
	session-keyfile "$d/session.key";
	managed-keys-directory "$d";
	listen-on port $DNS_PORT { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	notify no;
	dnssec-validation no;
};
controls { };
include "$DNS_TSIG";
dnssec-policy "certsync-test" {
	keys { csk lifetime unlimited algorithm ecdsap256sha256; };
	dnskey-ttl 5;
	max-zone-ttl 60;
	zone-propagation-delay 1;
	publish-safety 1;
	retire-safety 1;
	parent-ds-ttl 5;
	parent-propagation-delay 1;
};
zone "example.test" {
	type primary;
	file "$d/example.test.db";
	key-directory "$d/keys";
	dnssec-policy "certsync-test";
	inline-signing no;
	update-policy { grant certsync-test zonesub ANY; };
};
CONF
	named-checkconf "$d/named.conf" || fail "named-checkconf $d/named.conf"
	named -g -4 -n 1 -c "$d/named.conf" >"$d/named.log" 2>&1 &
	CS_PIDS+=($!)
	disown $! # no "Killed" notice from bash when the EXIT trap kills it
	wait_until 20 dns_signed ||
		{ tail -n 30 "$d/named.log" >&2; fail "named does not serve example.test signed"; }
}

# dns_signed: whether named answers the zone's DNSKEY and a signed SOA.
dns_signed() {
	local a
	a=$(dig @127.0.0.1 -p "$DNS_PORT" +dnssec +noall +answer +time=1 +tries=1 example.test SOA 2>/dev/null) || return 1
	grep -qw RRSIG <<<"$a" || return 1
	dig @127.0.0.1 -p "$DNS_PORT" +noall +answer +time=1 +tries=1 example.test DNSKEY 2>/dev/null | has -w DNSKEY
}

# start_unbound [ADDR]: Unbound on ADDR:53 (default $RESOLVER_ADDR),
# validating example.test (stub zone to start_dns's named) with the zone's
# DNSKEY 257 (the CSK) as trust anchor; it keeps answers 5 s at most
# (cache-max-ttl), negative and bogus ones 1 s. Exports RESOLVER=ADDR;
# returns once mail.example.test A comes back with the AD flag. Log:
# $T/unbound/unbound.log.
start_unbound() {
	local addr=${1:-$RESOLVER_ADDR} d=$T/unbound
	: "${DNS_PORT:?start_dns first}"
	mkdir -p "$d"
	dig @127.0.0.1 -p "$DNS_PORT" +noall +answer example.test DNSKEY |
		awk '$4 == "DNSKEY" && $5 == 257' >"$d/trust-anchor"
	[ -s "$d/trust-anchor" ] || fail "no DNSKEY 257 for example.test"
	cat >"$d/unbound.conf" <<CONF
server:
	interface: $addr
	port: 53
	do-ip6: no
	num-threads: 1
	username: ""
	chroot: ""
	directory: "$d"
	pidfile: "$d/unbound.pid"
	use-syslog: no
	logfile: ""
	verbosity: 1
	val-log-level: 2
	do-not-query-localhost: no
	module-config: "validator iterator"
	trust-anchor-file: "$d/trust-anchor"
	local-zone: "test." nodefault
	cache-max-ttl: 5
	cache-max-negative-ttl: 1
	val-bogus-ttl: 1
	aggressive-nsec: no
	prefetch: no
	serve-expired: no
	access-control: 127.0.0.0/8 allow
stub-zone:
	name: "example.test"
	stub-addr: 127.0.0.1@$DNS_PORT
remote-control:
	control-enable: no
CONF
	unbound-checkconf "$d/unbound.conf" >/dev/null || fail "unbound-checkconf $d/unbound.conf"
	unbound -d -c "$d/unbound.conf" >"$d/unbound.log" 2>&1 &
	CS_PIDS+=($!)
	disown $!
	RESOLVER=$addr
	export RESOLVER
	wait_until 20 resolver_validates ||
		{ tail -n 30 "$d/unbound.log" >&2; fail "Unbound on $addr does not validate example.test"; }
}

# resolver_validates: whether $RESOLVER answers mail.example.test A with AD.
resolver_validates() {
	dig @"$RESOLVER" +dnssec +time=1 +tries=1 mail.example.test A 2>/dev/null |
		has '^;; flags:.* ad[ ;]'
}

# dns_update add|del|set OWNER TTL RECORD [KEYFILE]: one RFC 2136 update of
# the TLSA RRset at OWNER (e.g. _25._tcp.mail.example.test) sent to
# start_dns's named, signed with KEYFILE ($DNS_TSIG unless given): add adds
# RECORD ("3 1 1 HEX") with TTL, del removes RECORD (the whole RRset when
# RECORD is empty; TTL is ignored), set replaces the RRset by RECORD in the
# same update. Returns nsupdate's status (non-zero when refused), its
# messages on stderr.
dns_update() {
	local op=$1 owner=${2%.}. ttl=$3 rec=$4 key=${5:-$DNS_TSIG} cmds
	case $op in
	add) cmds="update add $owner $ttl IN TLSA $rec" ;;
	del) cmds="update delete $owner IN TLSA $rec" ;;
	set) cmds="update delete $owner IN TLSA
update add $owner $ttl IN TLSA $rec" ;;
	*) fail "dns_update: add, del or set, not $op" ;;
	esac
	nsupdate -t 5 -k "$key" <<NSU
server 127.0.0.1 $DNS_PORT
zone $DNS_ZONE
$cmds
send
NSU
}

# tlsa_view OWNER: the TLSA RRset at OWNER as the resolver ($RESOLVER)
# answers it: a first line "RCODE ad|noad TTL" (TTL "-" when there is no
# record), then one line per record, "U S M hex" (lowercase, sorted).
# Returns 0 when the answer had the AD flag (validated), 1 otherwise.
tlsa_view() {
	local out rcode ad=noad ttl
	out=$(dig @"$RESOLVER" +dnssec +nosplit +time=2 +tries=1 +noall +comments +answer \
		"${1%.}." TLSA) || { echo "NOANSWER noad -"; return 1; }
	rcode=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out")
	grep -q '^;; flags:.* ad[ ;]' <<<"$out" && ad=ad
	ttl=$(awk '$4 == "TLSA" { print $2; exit }' <<<"$out")
	echo "${rcode:-NOANSWER} $ad ${ttl:--}"
	awk '$4 == "TLSA" { h = ""; for (i = 8; i <= NF; i++) h = h $i; print $5, $6, $7, tolower(h) }' <<<"$out" | sort
	[ "$ad" = ad ]
}
