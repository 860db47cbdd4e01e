#!/usr/bin/env bash
# DANE key rollover end to end (issue 21): a DNSSEC-signed zone on BIND
# taking the agent's TSIG-signed updates, a validating Unbound, a receiving
# Postfix served by the agent with dane = 3 1 1 and certificates of 16 s
# from the local CA (renewed every 8 s: sooner than a new record can have
# been visible for 2 x TTL, so that some renewals must keep the key), and a DANE-validating sending
# Postfix that sends a message every two seconds the whole time. Several
# renewals and at least two key rollovers happen; every message is delivered
# with "Verified TLS connection established" and none is deferred; each
# rollover takes the staged key only after its record has been visible for
# 2 x TTL; the verify after each reload checks the TLSA RRset; the retired
# records are deleted; status, metrics and certsyncctl dane say all is well.
# Needs root, BIND, Unbound and Postfix.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/servers.bash"
. "$(dirname "$0")/dns.bash"
. "$(dirname "$0")/dane_agent.bash"

started=$SECONDS
dane_setup right
first_key=$(key_of "$T/out/mail.pem")
spawn_agent
wait_until 30 dane_ok || { cat "$T/stdout" "$T/agent.log" >&2; fail "DANE not ok 30 s after the start"; }
grep -q "current   3 1 1 $first_key" "$T/stdout" || { cat "$T/stdout" >&2; fail "certsyncctl dane does not show the deployed key as current"; }
pass "the agent published current + next and sees them validated ($((SECONDS - started)) s)"

mail_loop_start
# At least two rollovers: three keys served, each renewal verified.
three_keys() { [ "$(sort -u "$T/keys" | wc -l)" -ge 3 ] && [ "$(count 'DANE: renewing with the staged next key')" -ge 2 ]; }
wait_until 150 three_keys || { log_tail 40; fail "fewer than two key rollovers in 150 s"; }
# and one more renewal, whichever key it takes.
r=$(renewals)
wait_until 40 eval '[ "$(renewals)" -gt "$r" ]' || { log_tail; fail "no renewal after the rollovers"; }
mail_loop_stop
all_verified
pass "$(renewals) renewals, $(sort -u "$T/keys" | wc -l) keys served ($((SECONDS - started)) s)"

# Each rollover waited for its record: visible for 2 x TTL (8 s) first.
grep -q "DANE: renewing with the staged next key (its TLSA record has been visible for 2 x TTL)" "$T/agent.log" ||
	fail "no rollover says its record was visible for 2 x TTL"
[ "$(count 'refusing to deploy')" = 0 ] || { log_tail; fail "a deploy was refused"; }
kept=$(count "DANE: renewing with the current key: the next key's TLSA record")
[ "$kept" -ge 1 ] || { log_tail 40; fail "no renewal kept the current key while the next one's record was new"; }
pass "every rollover took the staged key after its record had been visible for 2 x TTL; $kept renewal(s) kept the current key meanwhile"

# The verify after each reload checked the served chain against the RRset.
ctl show mail
grep -q "last verify .*DANE: TLSA 3 1 1 matches at depth 0" "$T/stdout" || { cat "$T/stdout" >&2; fail "the verify does not say DANE matched"; }
pass "the verify after the reload checks DANE: $(grep 'last verify' "$T/stdout" | sed 's/^ *//')"

# Retired records are deleted: the RRset holds current and next (and at most
# one record still retiring), not every key ever served.
n=$(tlsa_view _25._tcp.mail.example.test | sed 1d | wc -l)
[ "$n" -le 3 ] || { tlsa_view _25._tcp.mail.example.test >&2; fail "$n TLSA records published after $(sort -u "$T/keys" | wc -l) keys: the old ones are not deleted"; }
tlsa_view _25._tcp.mail.example.test | has "$first_key" && fail "the first key's record is still published"
pass "$n records published at the end; the first key's record was deleted"

ctl dane mail
[ "$rc" = 0 ] || { cat "$T/stdout" >&2; fail "certsyncctl dane mail says not ok at the end"; }
ctl metrics
grep -q '^certsync_dane_ok{name="mail"} 1$' "$T/stdout" || fail "certsync_dane_ok is not 1"
grep -q '^certsync_dane_update_failures_total{name="mail"} 0$' "$T/stdout" || fail "an update failed"
grep -q "^certsync_dane_current_key_kept_total{name=\"mail\"} $kept\$" "$T/stdout" ||
	{ grep certsync_dane "$T/stdout" >&2; fail "certsync_dane_current_key_kept_total is not $kept"; }
pass "certsyncctl dane and certsync_dane_ok say all is well"
stop_agent
