#!/usr/bin/env bash
# A full filesystem (a 32 KiB tmpfs) and a read-only one under the atomic
# writer, through `certsyncctl convert`: the write fails with a message that
# names the file and says why, the old bundle stays byte for byte, no temp
# file is left; once space is back the same command succeeds.
# Needs to mount a tmpfs (root, or CAP_SYS_ADMIN): skipped (77) otherwise.
. "$(dirname "$0")/lib.bash"

small=$T/small
mkdir "$small"
if ! mount -t tmpfs -o size=32k,mode=0755 tmpfs "$small" 2>"$T/mount.err"; then
	echo "SKIP: cannot mount a tmpfs here: $(cat "$T/mount.err")"
	exit 77
fi
umount_small() { umount "$small" 2>/dev/null || umount -l "$small" 2>/dev/null || true; cleanup; }
trap umount_small EXIT

P=$T/pki
bash "$CS_SOURCE_DIR/tests/mkpki.sh" "$P" rsa >/dev/null 2>&1
openssl req -new -newkey rsa:2048 -nodes -keyout "$P/leaf2.key" -subj "/CN=leaf.example.test" \
	-out "$P/leaf2.csr" 2>/dev/null
openssl x509 -req -in "$P/leaf2.csr" -CA "$P/int.pem" -CAkey "$P/int.key" -set_serial 0x2222 \
	-days 90 -extfile "$P/ext.cnf" -extensions leaf -out "$P/leaf2.pem" 2>/dev/null
cat "$P/leaf2.key" "$P/leaf2.pem" "$P/int.pem" "$P/root.pem" >"$T/gen2.pem"

target=$small/mail.pem
"$CERTSYNCCTL" convert "$P/mixed.pem" "$target" --to bundle || fail "first write"
cp "$target" "$T/old.pem"
# Fill the rest of the filesystem.
dd if=/dev/zero of="$small/fill" bs=1k count=64 2>/dev/null || true
rc=0
"$CERTSYNCCTL" convert "$T/gen2.pem" "$target" --to bundle 2>"$T/err" || rc=$?
[ $rc = 1 ] || fail "convert on a full disk exited $rc"
grep -q "^certsyncctl convert: $target: cannot write: No space left on device" "$T/err" ||
	fail "message: $(cat "$T/err")"
cmp -s "$target" "$T/old.pem" || fail "the old bundle changed on a full disk"
[ "$(ls -A "$small" | sort | tr '\n' ' ')" = "fill mail.pem " ] || fail "left behind: $(ls -A "$small")"
pass "full disk: exit 1, '$(cat "$T/err")', old bundle intact, no temp file"

rm "$small/fill"
"$CERTSYNCCTL" convert "$T/gen2.pem" "$target" --to bundle || fail "write after space came back"
cmp -s "$target" "$T/gen2.pem" || fail "the new bundle is not the second generation"
pass "space back: the same command writes the new bundle"

cp "$target" "$T/old.pem"
mount -o remount,ro "$small"
rc=0
"$CERTSYNCCTL" convert "$P/mixed.pem" "$target" --to bundle 2>"$T/err" || rc=$?
[ $rc = 1 ] || fail "convert on a read-only filesystem exited $rc"
grep -q "$target: cannot create a temporary file in $small: Read-only file system" "$T/err" ||
	fail "message: $(cat "$T/err")"
cmp -s "$target" "$T/old.pem" || fail "the old bundle changed on a read-only filesystem"
pass "read-only filesystem: exit 1, old bundle intact"
