#!/usr/bin/env bash
# Short-lived certificates with the shipped [agent] renew_before = 33%: a
# certificate of less than 10 days is renewed at half its lifetime all the
# same, unless its own [cert] section sets renew_before.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out"
cat >"$T/certsync.conf" <<CONF
[agent]
state_dir    = $T/state
renew_before = 33%
jitter       = 0%

[issuer "ca"]
type     = local-ca
dir      = $T/ca
validity = 6d

[cert "short"]
issuer = ca
names  = short.example.test
bundle = $T/out/short.pem

[cert "own"]
issuer       = ca
names        = own.example.test
bundle       = $T/out/own.pem
renew_before = 33%
CONF
"$CERTSYNCD" -f --once -c "$T/certsync.conf" 2>"$T/log1" || { cat "$T/log1"; fail "--once"; }
# Issued for 6 days now: half of it is 3 days; 33% before the end, 4 days.
grep -qE "short: renewed: .*; next renewal .* \(in (3d|2d 23h)" "$T/log1" ||
	{ cat "$T/log1"; fail "a 6-day certificate is not renewed at half its lifetime under [agent] renew_before = 33%"; }
pass "[agent] renew_before = 33%: a 6-day certificate is renewed at half its lifetime"
grep -qE "own: renewed: .*; next renewal .* \(in 4d" "$T/log1" ||
	{ cat "$T/log1"; fail "the certificate's own renew_before = 33% was not used"; }
pass "a [cert] renew_before = 33% of its own is used as it is"
