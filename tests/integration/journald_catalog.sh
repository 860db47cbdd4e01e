#!/usr/bin/env bash
# The journal message catalog the package installs
# (packaging/journald/certsync.catalog) as journalctl reads it: in a root
# of its own (nothing of the host's journal touched), --update-catalog
# accepts it and --list-catalog names every MESSAGE_ID of agent/cs_journal.c
# with its subject; `journalctl -x` would show these texts. Skipped (77)
# without journalctl.
. "$(dirname "$0")/lib.bash"

command -v journalctl >/dev/null || { echo "SKIP: no journalctl"; exit 77; }
cat="$CS_SOURCE_DIR/packaging/journald/certsync.catalog"
mkdir -p "$T/root/usr/lib/systemd/catalog" "$T/root/var/lib/systemd/catalog"
cp "$cat" "$T/root/usr/lib/systemd/catalog/"
journalctl --root="$T/root" --update-catalog 2>"$T/update.log" ||
	{ cat "$T/update.log"; fail "journalctl --update-catalog refuses $cat"; }
[ ! -s "$T/update.log" ] || { cat "$T/update.log"; fail "journalctl --update-catalog warns"; }
journalctl --root="$T/root" --list-catalog >"$T/list"
ids=$(grep -o '= "[0-9a-f]\{32\}"' "$CS_SOURCE_DIR/agent/cs_journal.c" | tr -d '=" ')
[ "$(echo "$ids" | wc -l)" -eq 12 ] || fail "not 12 MESSAGE_IDs in agent/cs_journal.c: $ids"
for id in $ids; do
	grep -q "^$id certsync: " "$T/list" || { cat "$T/list"; fail "$id is not in the catalog"; }
done
[ "$(wc -l <"$T/list")" -eq 12 ] || { cat "$T/list"; fail "the catalog has sections no event has"; }
journalctl --root="$T/root" --dump-catalog f93cacfa9f0a4e94af0b8729bf0fcb49 >"$T/failed"
grep -q "^Subject: renewal of @CERTSYNC_CERT@ failed" "$T/failed" ||
	{ cat "$T/failed"; fail "the failed event's section"; }
pass "journalctl accepts the catalog: 12 sections, one per MESSAGE_ID"
