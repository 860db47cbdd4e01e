#!/usr/bin/env bash
# One file under two names (issue 15 item 4). --check-config refuses two
# [cert]s whose outputs are the same file spelt differently ("out//x.pem",
# "out/./x.pem", a symbolic link to the directory), naming both. And when it
# happens behind the agent's back (a directory replaced by a link while it
# runs), the two certs do not repair over each other forever: after a few
# repairs within a minute one stops, is shown failed with the reason, and
# the repairs end.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/a" "$T/b"
ln -s "$T/a" "$T/alink"
conf() { # conf PATH-OF-WEB'S-BUNDLE
	conf_head "retry_min = 2s" >"$T/certsync.conf"
	cat >>"$T/certsync.conf" <<CONF

[cert "mail"]
issuer = local
names  = mail.example.test
bundle = $T/a/mail.pem

[cert "web"]
issuer = local
names  = web.example.test
bundle = $1
CONF
}
for spelling in "$T/a//mail.pem" "$T/a/./mail.pem" "$T/alink/mail.pem"; do
	conf "$spelling"
	set +e
	"$CERTSYNCD" --check-config -c "$T/certsync.conf" >"$T/check.out" 2>&1
	rc=$?
	set -e
	[ $rc = 2 ] || { cat "$T/check.out" >&2; fail "--check-config accepted web's bundle $spelling (exit $rc)"; }
	grep -q "certsync.conf:[0-9]*: \[cert \"web\"\] bundle: $spelling is .*$T/a/mail.pem.* of \[cert \"mail\"\]" "$T/check.out" ||
		{ cat "$T/check.out" >&2; fail "the error for $spelling does not name both"; }
done
pass "--check-config: out//x, out/./x and a linked directory are the same file as out/x (exit 2, both named)"

# Behind the agent's back: web's directory becomes a link to mail's.
conf "$T/b/mail.pem"
spawn_agent
wait_for "$T/agent.log" "web: renewed: serial" 10
wait_for "$T/agent.log" "mail: renewed: serial" 10
sleep 1.5 # the first reloads and checks settle
rm -rf "$T/b"
ln -s "$T/a" "$T/b"
touch "$T/a/mail.pem" # a change either watch sees
wait_for "$T/agent.log" "repairs are stopped" 30
# The other cert may put its own certificate back once more; then it is over.
repairs() { grep -c "repaired from generation" "$T/agent.log" || true; }
n1=$(repairs)
for _ in 1 2 3 4 5; do
	sleep 3
	n2=$(repairs)
	[ "$n1" = "$n2" ] && break
	n1=$n2
done
[ "$n1" = "$n2" ] || fail "repairs go on after the stop: $(repairs) so far"
[ "$n2" -le 12 ] || fail "$n2 repairs before the stop"
stopped=$(sed -n 's/.* \([a-z]*\): repaired 5 times within a minute.*/\1/p' "$T/agent.log" | head -1)
"$CERTSYNCCTL" -s "$T/certsync.sock" show "$stopped" >"$T/show.out" 2>&1 || true
grep -q "failed" "$T/show.out" && grep -q "repaired 5 times within a minute" "$T/show.out" ||
	{ cat "$T/show.out" >&2; fail "show $stopped does not say failed and why"; }
pass "the repair loop stopped after $n2 repairs: $stopped is failed with the reason in show"
