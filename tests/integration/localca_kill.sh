#!/usr/bin/env bash
# Crash safety of the local-ca issuer: a driver issuing in a loop is killed
# with SIGKILL at 25 random moments. After each kill, index.txt holds only
# whole lines, no serial twice, a newcerts file for every line and every
# serial the driver reported as issued; `openssl ca -updatedb` reads it; the
# next run removes the writer's leftover temp files and issues on. Then four
# drivers issue at once into one CA: the flock on .certsync.lock keeps every
# issuance (none lost to a concurrent rewrite of index.txt).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/localca_lib.bash"

d=$T/ca
"$DRV" -d "$d" issue first.example.test >"$T/issued" || fail "creating the CA failed"
cnf "$d"
for i in $(seq 1 25); do
	"$DRV" -d "$d" issue -n 100000 "k$i.example.test" >"$T/out" 2>"$T/err" &
	pid=$!
	sleep "$(printf '0.%03d' $((RANDOM % 300 + 10)))"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null && fail "driver $i ended before it was killed"
	cat "$T/out" >>"$T/issued"
	index_ok "$d"
	# A serial printed was in index.txt before it was printed.
	missing=$(sort "$T/issued" | comm -23 - <(cut -f4 "$d/index.txt" | sort))
	[ -z "$missing" ] || fail "kill $i: issued serials missing from index.txt: $missing"
	osslca "$d" -updatedb || fail "kill $i: openssl ca -updatedb rejects index.txt"
done
n=$(wc -l <"$d/index.txt")
[ "$n" -gt 25 ] || fail "only $n issuances in 25 runs: the kills came too early to test anything"
pass "25 SIGKILLs during issuance ($n certificates): index.txt whole, no duplicate serial, openssl ca -updatedb reads it"

"$DRV" -d "$d" issue -o "$T/after" after.example.test >/dev/null || fail "issuing after the kills failed"
leftovers=$(find "$d" -name '.*.????????????' | head -5)
[ -z "$leftovers" ] || fail "temp files left after reopening: $leftovers"
openssl verify -CAfile "$d/cacert.pem" "$T/after.pem" >/dev/null || fail "leaf after the kills does not verify"
pass "reopening removes the killed writers' temp files and issues on"

before=$(wc -l <"$d/index.txt")
: >"$T/par"
pids=()
for j in 1 2 3 4; do
	"$DRV" -d "$d" issue -n 40 "par$j.example.test" >"$T/par.$j" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent driver failed"; done
cat "$T/par".? >"$T/par"
[ "$(wc -l <"$T/par")" = 160 ] || fail "concurrent drivers reported $(wc -l <"$T/par") serials"
[ "$(wc -l <"$d/index.txt")" = $((before + 160)) ] || fail "index.txt gained $(($(wc -l <"$d/index.txt") - before)) lines, not 160"
[ -z "$(sort "$T/par" | comm -23 - <(cut -f4 "$d/index.txt" | sort))" ] || fail "a concurrent issuance is missing"
index_ok "$d"
osslca "$d" -updatedb || fail "openssl ca -updatedb after concurrent issuance"
pass "four processes issuing at once: all 160 issuances recorded"
