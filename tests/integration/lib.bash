# Shared helpers for the integration scripts (sourced, not a test itself).
set -euo pipefail
: "${CS_BUILD_DIR:?run through ctest}"
: "${CS_SOURCE_DIR:?run through ctest}"
CERTSYNCD=$CS_BUILD_DIR/agent/certsyncd
CERTSYNCCTL=$CS_BUILD_DIR/agent/certsyncctl
T=$(mktemp -d /tmp/cs-it.XXXXXX)
CS_PIDS=()
cleanup() {
	for p in "${CS_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	# A server stopped a moment ago may still be writing its queue: try again.
	if [ "${CS_KEEP:-}" = 1 ]; then
		echo "kept $T"
	else
		local i
		for i in 1 2 3 4 5; do
			rm -rf "$T" 2>/dev/null && break
			sleep 1
		done
		[ ! -e "$T" ] || echo "warning: could not remove $T" >&2
	fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }
# wait_for FILE PATTERN [SECONDS]: until grep -q PATTERN FILE, or fail.
wait_for() {
	local f=$1 pat=$2 secs=${3:-10} i
	for ((i = 0; i < secs * 20; i++)); do
		grep -q -- "$pat" "$f" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "--- $f" >&2; cat "$f" >&2 || true
	fail "timed out waiting for '$pat' in $f"
}
