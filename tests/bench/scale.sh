#!/usr/bin/env bash
# One agent, N certificates (issue 16). Issues N certificates once with a
# local CA (certsyncd --once; N [cert] sections in conf.d, each a bundle
# OUT/cI.pem for cI.example.test, 90 days, none due afterwards), then in one
# run measures:
#   floor      floor_scan over the same N bundles (../shared/floors), built here
#   --once     certsyncd --once with nothing due: wall, CPU, peak RSS
#   -f         certsyncd -f start-up, a client asking `status` every 50 ms:
#              time to the first answer, the slowest answer, the time until
#              every certificate is examined and scheduled (status shows no
#              "unknown"), CPU and peak RSS at that moment; then the latency of
#              `renew all` (nothing due), `show NAME` and `status`.
#   tests/bench/scale.sh BUILD_DIR N [WORK_DIR]
# With WORK_DIR the issued set is kept there and reused by later runs (issuing
# 10,000 certificates takes minutes); without it a temporary one is removed.
# FLOORS (default: ../shared/floors from the source tree) holds floor_scan.c.
set -euo pipefail
B=$(cd "${1:?usage: $0 BUILD_DIR N [WORK_DIR]}" && pwd)
N=${2:?usage: $0 BUILD_DIR N [WORK_DIR]}
HERE=$(cd "$(dirname "$0")" && pwd)
FLOORS=${FLOORS:-$HERE/../../../shared/floors}
keep=${3:-}
if [ -n "$keep" ]; then
	W=$keep
	mkdir -p "$W"
else
	W=$(mktemp -d /tmp/bench-scale.XXXXXX)
	trap 'rm -rf "$W"' EXIT
fi
W=$(cd "$W" && pwd)
D="$HERE/scale_drive.py"

if [ ! -f "$W/issued.$N" ]; then
	rm -rf "$W/state" "$W/ca" "$W/out" "$W/conf.d"
	mkdir -p "$W/out" "$W/conf.d"
	{
		printf '[agent]\nstate_dir = %s/state\nsocket = %s/sock\n' "$W" "$W"
		printf 'include = %s/conf.d/*.conf\n\n' "$W"
		printf '[issuer "local"]\ntype = local-ca\ndir = %s/ca\nvalidity = 90d\n' "$W"
	} >"$W/certsync.conf"
	for i in $(seq "$N"); do
		printf '[cert "c%d"]\nissuer = local\nnames = c%d.example.test\nbundle = %s/out/c%d.pem\n' \
			"$i" "$i" "$W" "$i" >"$W/conf.d/c$i.conf"
	done
	echo "== issuing $N certificates (certsyncd --once)"
	python3 "$D" once "$B/agent/certsyncd" "$W/certsync.conf" "$W/issue.log" ||
		{ tail "$W/issue.log"; exit 1; }
	grep -o 'one pass over .*' "$W/issue.log"
	touch "$W/issued.$N"
fi

cc -O2 "$FLOORS/floor_scan.c" -o "$W/floor_scan" -lcrypto
echo "== floor_scan $N (read, decode key + leaf + CA, key match, notAfter, name)"
floor=$(python3 "$D" floor "$W/floor_scan" "$W/out" "$N")
echo "$floor"
echo "== certsyncd --once, nothing due"
once=$(python3 "$D" once "$B/agent/certsyncd" "$W/certsync.conf" "$W/once.log")
echo "$once"
grep -o 'one pass over .*' "$W/once.log"
echo "== certsyncd -f start-up, status every 50 ms"
start=$(python3 "$D" start "$B/agent/certsyncd" "$W/certsync.conf" "$W/sock" "$N" "$W/agent.log")
echo "$start"

val() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }
fw=$(val "$floor" wall) fc=$(val "$floor" cpu)
ow=$(val "$once" wall) oc=$(val "$once" cpu) orss=$(val "$once" rss_mb)
sw=$(val "$start" scheduled) sc=$(val "$start" cpu) srss=$(val "$start" rss_mb)
echo
echo "== N=$N                       certsync      floor_scan   ratio"
printf '%-28s %8ss %8ss %8.2fx\n' "--once wall (nothing due)" "$ow" "$fw" "$(echo "$ow / $fw" | bc -l)"
printf '%-28s %8ss %8ss %8.2fx\n' "--once CPU" "$oc" "$fc" "$(echo "$oc / $fc" | bc -l)"
printf '%-28s %7sMB\n' "--once peak RSS" "$orss"
printf '%-28s %8ss %8ss %8.2fx  (-f / --once: %.2fx, target <= 1.5x)\n' "-f all scheduled" "$sw" "$fw" \
	"$(echo "$sw / $fw" | bc -l)" "$(echo "$sw / $ow" | bc -l)"
printf '%-28s %8ss %8ss %8.2fx\n' "-f CPU until then" "$sc" "$fc" "$(echo "$sc / $fc" | bc -l)"
printf '%-28s %7sMB\n' "-f peak RSS" "$srss"
printf '%-28s %8ss  (target <= 0.050)\n' "-f first status answer" "$(val "$start" first_answer)"
printf '%-28s %8ss  (target <= 0.050)\n' "-f slowest status answer" "$(val "$start" slowest_answer)"
printf '%-28s %8ss  (target < 0.100; %s started)\n' "renew all, nothing due" \
	"$(val "$start" renew_all)" "$(val "$start" renew_all_started)"
printf '%-28s %8ss\n' "show NAME" "$(val "$start" show)"
printf '%-28s %8ss\n' "status (settled)" "$(val "$start" status)"
