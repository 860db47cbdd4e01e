#!/usr/bin/env bash
# The documentation says what the programs do (issue 15 item 14): every
# command certsyncctl --help lists is in certsyncctl(8)'s synopsis; the
# README's convert takes several inputs, as the program does; the README does
# not promise in `show` what only `show --json` gives; contrib/MIGRATION.md
# does not say outputs are never written through a symbolic link (they are:
# the link's target is replaced); and the packages create the `certsync` user
# the network process runs as; every example passes check-config.
. "$(dirname "$0")/lib.bash"

S=$CS_SOURCE_DIR
"$CERTSYNCCTL" --help >"$T/help" 2>&1 || true
sed -n '/^\.SH SYNOPSIS/,/^\.SH DESCRIPTION/p' "$S/packaging/man/certsyncctl.8" >"$T/synopsis"
for cmd in $(awk '/^(Agent|Offline) commands/ {on=1; next} /^$/ {on=0} on {print $1}' "$T/help"); do
	sed 's/\\-/-/g' "$T/synopsis" | has -wF -- "$cmd" ||
		fail "certsyncctl(8) synopsis lacks '$cmd'"
done
pass "certsyncctl(8)'s synopsis names every command of --help"

# The global options --help lists (-s, -c, --json): each long one under
# certsyncctl(8)'s GLOBAL OPTIONS, each short one in its synopsis, and the
# README's certsyncctl section shows -s SOCKET and -c CONFIG.
sed -n '/^\.SH GLOBAL OPTIONS/,/^\.SH AGENT COMMANDS/p' "$S/packaging/man/certsyncctl.8" |
	sed 's/\\-/-/g' >"$T/globals"
opts=$(sed -n '1,/^Agent commands/p' "$T/help" | grep -oE '^ +(-[a-z], )?--[a-z]+' || true)
[ -n "$opts" ] || fail "certsyncctl --help lists no global options"
while read -r line; do
	long=$(grep -oE -- '--[a-z]+' <<<"$line")
	grep -qF -- "$long" "$T/globals" || fail "certsyncctl(8) GLOBAL OPTIONS lacks $long"
	short=$(grep -oE -- '^ *-[a-z],' <<<"$line" | tr -d ' ,' || true)
	[ -z "$short" ] || sed 's/\\-/-/g' "$T/synopsis" | has -E -- "^\.R?B (\[ )?$short\$" ||
		fail "certsyncctl(8) synopsis lacks $short"
done <<<"$opts"
sed -n '/^## certsyncctl/,/^## /p' "$S/README.md" >"$T/readme_ctl"
for o in '-s SOCKET' '-c CONFIG'; do
	grep -qF -- "\`$o\`" "$T/readme_ctl" || fail "README's certsyncctl section lacks \`$o\`"
done
pass "certsyncctl's global options in certsyncctl(8) and the README"

grep -q "^certsyncctl convert IN\.\.\. OUT" "$S/README.md" || fail "README: convert is shown with one input"
pass "README: convert IN... OUT"

tr '\n' ' ' <"$S/README.md" | has '`show` gives `last_verify` and `verify_ok`' &&
	fail "README: show is said to give last_verify and verify_ok (only --json has verify_ok)"
pass "README: what show gives and what only --json gives"

grep -qi "refuses to write through a symbolic link" "$S/contrib/MIGRATION.md" &&
	fail "MIGRATION.md: says outputs are never written through a symbolic link"
pass "MIGRATION.md: outputs behind symbolic links as the agent treats them"

# The network process runs as the system user certsync (issue 18): both
# packages create it, without a shell or a home, outside the status socket's
# group.
grep -q "adduser --system .*--no-create-home --home /nonexistent" "$S/packaging/debian/certsync.postinst" ||
	fail "the Debian package does not create the system user certsync without a home"
grep -q -- "--shell /usr/sbin/nologin certsync" "$S/packaging/debian/certsync.postinst" ||
	fail "the Debian package's certsync user has a shell"
grep -q "useradd -r -M -d /nonexistent -s /sbin/nologin -g nobody certsync" "$S/packaging/rpm/certsync.spec" ||
	fail "the RPM does not create the system user certsync"
pass "both packages create the system user netproc runs as, without shell, home or the socket's group"

# Drift checks (issue 19): the key in both sections of certsync.conf(5) that
# accept it, and the metrics of the verify probes in certsyncctl(8)'s METRICS
# and in the README.
for sect in '\[agent\]' '\[cert '; do
	awk -v s="$sect" '/^\.SH / {on = ($0 ~ s)} on' "$S/packaging/man/certsync.conf.5" |
		has '^\.BI verify_interval ' || fail "certsync.conf(5): no verify_interval under $sect"
done
grep -q "V_INTERVAL, AG(verify_interval)" "$S/agent/cs_config.c" &&
	grep -q "V_INTERVAL, CE(verify_interval)" "$S/agent/cs_config.c" ||
	fail "cs_config.c: verify_interval is not a key of [agent] and [cert] any more"
pass "certsync.conf(5): verify_interval under [agent] and [cert]"

for m in certsync_verify_ok certsync_served_match; do
	grep -q "family(b, \"$m\"" "$S/agent/control/cs_metrics.c" || fail "cs_metrics.c no longer renders $m"
	sed -n '/^\.SH METRICS/,/^\.SH LIMITS/p' "$S/packaging/man/certsyncctl.8" | has "^\.B $m{" ||
		fail "certsyncctl(8): $m is not under METRICS"
	grep -q "\`$m" "$S/README.md" || fail "README: $m is not named"
done
pass "certsync_verify_ok and certsync_served_match in certsyncctl(8) and the README"

# Every example the package installs passes check-config as shipped.
for f in "$S"/contrib/examples/*.conf; do
	"$CERTSYNCD" --check-config -c "$f" >"$T/example.log" 2>&1 ||
		{ cat "$T/example.log" >&2; fail "check-config refuses $f"; }
done
pass "certsyncd --check-config accepts each of contrib/examples/*.conf"
