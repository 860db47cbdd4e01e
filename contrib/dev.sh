#!/usr/bin/env bash
# contrib/dev.sh - the developer's entry point.
#
#   contrib/dev.sh demo   install what is missing, build, run the agent once on a
#                         throwaway configuration (local CA, one mail certificate,
#                         a Postfix-style bundle) and show the result
#   contrib/dev.sh test   install what the tests need, build, run the whole suite
#                         with ctest, once plain and once under ASan+UBSan
#   contrib/dev.sh build  install build dependencies and build into ./build
#
# Runs as root on Debian 12 (it calls apt-get); as another user it only builds
# with what is installed.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

build_pkgs=(build-essential cmake pkg-config libssl-dev libcurl4-openssl-dev libuv1-dev
	libjansson-dev libinih-dev libseccomp-dev libsystemd-dev check openssl ca-certificates)
test_pkgs=(postfix dovecot-imapd dovecot-pop3d pebble clang libclang-rt-14-dev procps
	iproute2 util-linux psmisc python3 python3-cryptography debhelper lintian man-db prometheus socat valgrind faketime
	dovecot-managesieved bind9 bind9-utils bind9-dnsutils unbound bash-completion)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_pkgs() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages (run as root to install): ${missing[*]}" >&2
		return 1
	fi
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Postfix asks how to configure itself; a test machine wants no system mailer.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build DIR [cmake options...]
build() {
	local dir=$1
	shift
	say "building in $dir $*"
	cmake -S "$top" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
	cmake --build "$dir" -j "$jobs"
}

cmd_build() {
	install_pkgs "${build_pkgs[@]}"
	build "$top/build"
}

cmd_test() {
	install_pkgs "${build_pkgs[@]}" "${test_pkgs[@]}"
	local rc=0
	build "$top/build-test"
	say "test suite (plain)"
	(cd "$top/build-test" && ctest --output-on-failure -j "$jobs") || rc=1
	say "valgrind memcheck on the agent (tests/bench/valgrind_agent.sh)"
	bash "$top/tests/bench/valgrind_agent.sh" "$top/build-test" || rc=1
	build "$top/build-asan" -DCS_ASAN=ON -DCS_UBSAN=ON
	say "test suite (AddressSanitizer + UndefinedBehaviorSanitizer)"
	(cd "$top/build-asan" &&
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j "$jobs") || rc=1
	if [ -x "$top/tests/fuzz/smoke.sh" ] || [ -f "$top/tests/fuzz/smoke.sh" ]; then
		say "fuzz smoke"
		bash "$top/tests/fuzz/smoke.sh" "$top/build-fuzz" || rc=1
	fi
	if [ $rc -ne 0 ]; then
		say "FAILED"
	else
		say "all tests passed"
	fi
	return $rc
}

cmd_demo() {
	install_pkgs "${build_pkgs[@]}"
	build "$top/build"
	local d
	d=$(mktemp -d /tmp/certsync-demo.XXXXXX)
	mkdir -p "$d/etc/postfix" "$d/state"
	cat >"$d/certsync.conf" <<CONF
# A throwaway certsync configuration made by contrib/dev.sh demo.
[agent]
state_dir = $d/state
socket    = $d/certsync.sock

[issuer "local"]
type     = local-ca
dir      = $d/ca
subject  = /C=US/ST=Minnesota/L=Saint Paul/O=The Milly Server/CN=Milly Demo CA
key      = ec:P-256
validity = 90d

[cert "mail"]
issuer = local
names  = mail.demo.example, smtp.demo.example
key    = ec:P-256
bundle = $d/etc/postfix/mail.pem
mode   = 0600
CONF
	say "configuration: $d/certsync.conf"
	cat "$d/certsync.conf"
	say "certsyncd --check-config"
	"$top/build/agent/certsyncd" --check-config -c "$d/certsync.conf"
	say "certsyncd -f --once (one full pass in the foreground)"
	local rc=0
	"$top/build/agent/certsyncd" -f --once -c "$d/certsync.conf" || rc=$?
	say "result (exit status $rc)"
	if [ -f "$d/etc/postfix/mail.pem" ]; then
		ls -l "$d/etc/postfix/mail.pem"
		"$top/build/agent/certsyncctl" inspect "$d/etc/postfix/mail.pem" || true
	else
		echo "no bundle was written yet: $d/etc/postfix/mail.pem"
	fi
	if [ -S "$d/certsync.sock" ]; then
		"$top/build/agent/certsyncctl" -s "$d/certsync.sock" status || true
	fi
	say "demo files left in $d (remove with: rm -rf $d)"
	return $rc
}

case "${1:-}" in
demo) cmd_demo ;;
test) cmd_test ;;
build) cmd_build ;;
*)
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
