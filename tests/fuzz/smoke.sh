#!/usr/bin/env bash
# smoke.sh [BUILD_DIR] [SECONDS] - build every libFuzzer target with clang in
# BUILD_DIR (default build-fuzz at the top of the tree) and run each for
# SECONDS (default 20) on a scratch copy of its seed corpus. Exits non-zero
# when a target does not build or the fuzzer finds a crash, leak or timeout.
# CI calls it; so can you. CS_FUZZ_ONLY="frame chain" runs only those targets.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build-fuzz}
secs=${2:-20}
jobs=${CS_FUZZ_JOBS:-2}
only=${CS_FUZZ_ONLY:-}

CC=clang cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_FUZZ=ON \
	-DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" \
	-DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null

rc=0
for src in "$top"/tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	target=${name#fuzz_}
	if [ -n "$only" ] && [[ " $only " != *" $target "* ]]; then
		continue
	fi
	make -C "$build" -j"$jobs" "$name" >/dev/null
	work=$(mktemp -d)
	mkdir "$work/corpus" "$work/artifacts"
	seeds=$top/tests/fuzz/corpus/$target
	echo "== $name: ${secs}s from $(find "$seeds" -type f 2>/dev/null | wc -l) seeds"
	# New inputs go to the scratch directory (first), never into the repository.
	if ! "$build/tests/fuzz/$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$work/artifacts/" \
		"$work/corpus" "$seeds" 2>"$work/log"; then
		rc=1
		tail -n 60 "$work/log" >&2
		echo "FAIL: $name; reproducers kept in $work/artifacts" >&2
		continue
	fi
	grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$work/log" || true
	rm -rf "$work"
done
exit $rc
