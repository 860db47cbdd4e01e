#!/usr/bin/env bash
# Temp files that writers killed before their rename left behind (copies of
# private keys, for a bundle or a generation) are removed when the agent
# starts, in every directory it writes to: outputs, state_dir/certs,
# state_dir/generations/NAME, the local CA's directories. Only files of the
# atomic writer's own name pattern, regular, and owned by the agent's uid (or
# the output's configured owner) go; everything else stays.
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/out"
std_conf "" "" "fullchain = $T/out/mail.crt
keyfile   = $T/out/mail.key" >"$T/certsync.conf"
"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/first.log" || fail "first pass: $(cat "$T/first.log")"
[ -d "$T/state/generations/mail" ] || fail "no generations directory"

key=$(cat "$T/out/mail.key")
leftover() { printf '%s\n' "$key" >"$1"; chmod 600 "$1"; }
gone=(
	"$T/out/.mail.pem.0123456789ab"
	"$T/out/.mail.key.fedcba987654"
	"$T/out/.mail.crt.00aa11bb22cc"
	"$T/state/generations/mail/.1.pem.0123456789ab"
	"$T/state/generations/mail/.9.pem.abcdefabcdef"
	"$T/state/certs/.mail.json.0123456789ab"
	"$T/ca/.index.txt.0123456789ab"
	"$T/ca/private/.cakey.pem.0123456789ab"
	"$T/ca/newcerts/.0A1B.pem.0123456789ab"
)
kept=(
	"$T/out/.other.pem.0123456789ab"    # not an output of ours
	"$T/out/.mail.pem.0123456789AB"     # not the writer's pattern (upper case)
	"$T/out/.mail.pem.0123"             # too short
	"$T/out/mail.pem.0123456789ab"      # no leading dot
	"$T/out/notes.txt"
	"$T/state/generations/mail/keep.txt"
	"$T/state/generations/mail/.1.crt.0123456789ab"
	"$T/out/.mail.key.999999999999"     # owned by someone else (chown below)
)
for f in "${gone[@]}" "${kept[@]}"; do leftover "$f"; done
chown 65534:65534 "$T/out/.mail.key.999999999999" 2>/dev/null ||
	{ echo "SKIP: needs root (chown)"; exit 77; }
mkfifo "$T/out/.mail.pem.aaaaaaaaaaaa"           # not a regular file
ln -s "$T/out/mail.key" "$T/out/.mail.crt.bbbbbbbbbbbb"
kept+=("$T/out/.mail.pem.aaaaaaaaaaaa" "$T/out/.mail.crt.bbbbbbbbbbbb")

"$CERTSYNCD" --once -c "$T/certsync.conf" 2>"$T/second.log" || fail "second pass: $(cat "$T/second.log")"
for f in "${gone[@]}"; do
	[ ! -e "$f" ] || fail "$f (a killed writer's temp file) is still there"
done
for f in "${kept[@]}"; do
	[ -e "$f" ] || [ -L "$f" ] || fail "$f was removed, but it is not a temp file of ours"
done
grep -q "removed 2 temporary file(s) left by an interrupted write in $T/state/generations/mail" "$T/second.log" ||
	fail "no notice for the generations directory: $(cat "$T/second.log")"
grep -q "removed 1 temporary file(s) left by an interrupted write in $T/out/mail.pem" "$T/second.log" ||
	fail "no notice for the bundle: $(cat "$T/second.log")"
pass "at start: ${#gone[@]} leftover temp files removed (outputs, generations, certs, CA); ${#kept[@]} others kept"
