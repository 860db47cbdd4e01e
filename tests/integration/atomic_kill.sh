#!/usr/bin/env bash
# The atomic writer killed with SIGKILL at random moments, 200 times: after
# every kill the target is a complete bundle of one generation (key first,
# and that key matches the leaf after it), never a mix or a partial file;
# the temp files killed writers leave are swept by the next writer.
. "$(dirname "$0")/lib.bash"

DRV=$CS_BUILD_DIR/tests/atomic_drv
P=$T/pki
mkpki2 "$P"
cat "$P/leaf.key" "$P/leaf.pem" "$P/int.pem" "$P/root.pem" >"$T/gen1.pem"
cat "$P/leaf2.key" "$P/leaf2.pem" "$P/int.pem" "$P/root.pem" >"$T/gen2.pem"
mkdir "$T/etc"
target=$T/etc/mail.pem
cp "$T/gen1.pem" "$target"
chmod 600 "$target"

kills=0 gen1=0 gen2=0
for ((i = 0; i < 200; i++)); do
	"$DRV" "$target" "$T/gen1.pem" "$T/gen2.pem" &
	pid=$!
	# 0 to 40 ms: the kill lands anywhere from the sweep to the middle of a write.
	sleep "0.0$((RANDOM % 40))"
	kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
	wait "$pid" 2>/dev/null || true
	if cmp -s "$target" "$T/gen1.pem"; then
		gen1=$((gen1 + 1))
	elif cmp -s "$target" "$T/gen2.pem"; then
		gen2=$((gen2 + 1))
	else
		cp "$target" "$T/broken.pem"
		fail "after kill $i the target is neither generation (kept as $T/broken.pem)"
	fi
	[ "$(stat -c %a "$target")" = 600 ] || fail "after kill $i the target has mode $(stat -c %a "$target")"
done
# Byte equality with a generation implies it parses; check one with certsyncctl anyway.
"$CERTSYNCCTL" inspect "$target" >"$T/inspect.out" || { cat "$T/inspect.out"; fail "inspect"; }
grep -q "key matches leaf: yes" "$T/inspect.out" || fail "key does not match leaf"
[ "$kills" -ge 150 ] || fail "only $kills of 200 kills hit a running writer"
[ "$gen1" -gt 0 ] && [ "$gen2" -gt 0 ] || fail "the writer never switched generations ($gen1/$gen2)"
pass "$kills SIGKILLs mid-write: the target was always a whole generation ($gen1 x gen1, $gen2 x gen2)"

left=$(find "$T/etc" -name '.mail.pem.*' | wc -l)
"$DRV" "$target" "$T/gen1.pem" "$T/gen2.pem" 3
[ -z "$(find "$T/etc" -name '.mail.pem.*')" ] || fail "temp files remain after a clean run"
[ "$(ls -A "$T/etc")" = mail.pem ] || fail "unexpected files: $(ls -A "$T/etc")"
pass "$left temp file(s) left by killed writers were swept by the next one"
