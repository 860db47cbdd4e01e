#!/usr/bin/env bash
# The pipeline drives the [capath] sync: the local CA's certificate is
# published into the capath that names its issuer and hashed as openssl
# rehash would, so that the deployed leaf verifies with -CApath and with the
# CAfile; a CA certificate dropped into the directory by hand is linked
# within a second (inotify); a change leads to the capath's reload, once.
# --once does the same in one pass.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out" "$T/capath"
{ std_conf; conf_capath "reload  = svc"; cat <<CONF

[reload "svc"]
type    = exec
command = /bin/sh -c 'echo "\$CERTSYNC_NAME" >>$T/reloads.log'
CONF
} >"$T/certsync.conf"

spawn_agent
wait_for "$T/agent.log" "mail: renewed: serial" 10
for _ in $(seq 100); do [ -f "$T/capath/local-ca.pem" ] && break; sleep 0.05; done
[ -f "$T/capath/local-ca.pem" ] || { cat "$T/agent.log" >&2; fail "the CA was not published"; }
h=$(openssl x509 -in "$T/capath/local-ca.pem" -noout -hash)
for _ in $(seq 100); do [ -L "$T/capath/$h.0" ] && break; sleep 0.05; done
[ -L "$T/capath/$h.0" ] || fail "no hash link $h.0"
openssl verify -CApath "$T/capath" "$T/out/mail.pem" >/dev/null 2>&1 ||
	fail "the deployed leaf does not verify with -CApath"
for _ in $(seq 100); do [ -s "$T/CAfile.pem" ] && break; sleep 0.05; done
openssl verify -CAfile "$T/CAfile.pem" "$T/out/mail.pem" >/dev/null 2>&1 ||
	fail "the deployed leaf does not verify with the CAfile"
wait_for "$T/reloads.log" "trust" 5
pass "the local CA is published and hashed; the deployed leaf verifies with -CApath and the CAfile; the capath's reload ran"

# A CA dropped in by hand is linked through inotify.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj "/CN=Another CA" -keyout "$T/other.key" -out "$T/other.pem" 2>/dev/null
h2=$(openssl x509 -in "$T/other.pem" -noout -hash)
n=$(wc -l <"$T/reloads.log")
cp "$T/other.pem" "$T/capath/other.pem"
for _ in $(seq 20); do [ -L "$T/capath/$h2.0" ] && break; sleep 0.05; done
[ -L "$T/capath/$h2.0" ] || fail "the added CA was not linked within a second"
[ "$(readlink "$T/capath/$h2.0")" = other.pem ] || fail "the link does not name other.pem"
for _ in $(seq 60); do [ "$(wc -l <"$T/reloads.log")" -gt "$n" ] && break; sleep 0.05; done
[ "$(wc -l <"$T/reloads.log")" -gt "$n" ] || fail "no reload after the capath changed"
pass "a CA certificate added by hand is linked within a second and the service reloaded"

rm "$T/capath/other.pem"
for _ in $(seq 20); do [ ! -e "$T/capath/$h2.0" ] && [ ! -L "$T/capath/$h2.0" ] && break; sleep 0.05; done
[ ! -L "$T/capath/$h2.0" ] || fail "the link of a removed CA stays"
pass "its link goes when it is removed"
stop_agent

# --once in a fresh capath.
rm -rf "$T/capath" "$T/CAfile.pem"
mkdir "$T/capath"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/once.log" ||
	{ cat "$T/once.log" >&2; fail "--once failed"; }
[ -L "$T/capath/$h.0" ] || fail "--once did not publish and hash the CA"
openssl verify -CApath "$T/capath" "$T/out/mail.pem" >/dev/null 2>&1 ||
	fail "the deployed leaf does not verify with -CApath after --once"
pass "--once publishes and hashes the CA too"
