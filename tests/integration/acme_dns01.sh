#!/usr/bin/env bash
# dns-01 through dns_hook: the hook (a script, as users write them) sets and
# clears TXT records through pebble-challtestsrv's management API, which is
# the DNS server Pebble asks. certsyncd --once runs the hook with
# "add NAME VALUE" for each name (and the same in CERTSYNC_* variables), the
# CA validates, the hook runs with "del" afterwards, and the deployed chain
# verifies against Pebble's root. A hook
# that exits non-zero fails the issuance with its status.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/acme_lib.bash"

start_pebble
cat >"$T/dns-hook" <<HOOK
#!/bin/sh
# dns_hook add|del NAME VALUE
echo "\$1 \$2 \$3" >>"$T/hook.log"
echo "\$CERTSYNC_METHOD \$CERTSYNC_RECORD \$CERTSYNC_VALUE \$CERTSYNC_IDENTIFIER \$CERTSYNC_CERT \$CERTSYNC_ISSUER" >>"$T/hook-env.log"
case "\$1" in
add) path=set-txt ;;
del) path=clear-txt ;;
*) exit 2 ;;
esac
exec curl -sf -X POST -d "{\"host\":\"\$2.\",\"value\":\"\$3\"}" \
	"http://127.0.0.1:$CTS_MGMT/\$path" >/dev/null
HOOK
chmod 755 "$T/dns-hook"

write_conf "challenge = dns-01" "dns_hook  = $T/dns-hook"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent.log" ||
	{ cat "$T/agent.log" >&2; fail "certsyncd --once failed"; }
check_deployed
pass "dns-01: the deployed chain verifies against Pebble's root"

for n in a b; do
	grep -q "^add _acme-challenge.$n.example.test [A-Za-z0-9_-]\{43\}\$" "$T/hook.log" ||
		fail "no add for $n.example.test with a base64url SHA-256 value: $(cat "$T/hook.log")"
	grep -q "^del _acme-challenge.$n.example.test " "$T/hook.log" ||
		fail "no del for $n.example.test: $(cat "$T/hook.log")"
done
# The value added is the one removed.
[ "$(grep '^add _acme-challenge.a' "$T/hook.log" | cut -d' ' -f3)" = \
	"$(grep '^del _acme-challenge.a' "$T/hook.log" | cut -d' ' -f3)" ] ||
	fail "del does not name the value that add set"
# The same details in the environment, with the name validated and the cert.
while read -r m r v; do
	grep -q "^$m $r $v ${r#_acme-challenge.} web pebble\$" "$T/hook-env.log" ||
		fail "no CERTSYNC_* environment for '$m $r': $(cat "$T/hook-env.log")"
done <"$T/hook.log"
pass "the hook got add and del with the record name and value, in argv and CERTSYNC_* variables"

# A hook that fails: the issuance fails with the hook's exit status.
printf '#!/bin/sh\nexit 3\n' >"$T/dns-hook"
rm -rf "$T/out" "$T/state/generations" "$T/state/certs"
mkdir -p "$T/out"
if "$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/agent2.log"; then
	fail "--once succeeded with a failing hook"
fi
grep -q "dns_hook $T/dns-hook add _acme-challenge.[ab].example.test failed with status 3" "$T/agent2.log" ||
	{ cat "$T/agent2.log" >&2; fail "the error does not give the hook's status"; }
pass "a failing hook fails the issuance with its exit status"
