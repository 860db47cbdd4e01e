#!/usr/bin/env bash
# Shell completion (issue 22): contrib/completion/certsyncctl and certsyncd
# under the real bash-completion, in a fresh bash as the Tab key runs them
# (COMP_WORDS, COMP_CWORD, COMP_LINE, COMP_POINT, then the function):
# bash-completion finds each by its command's name; certsyncctl completes
# every command --help lists and no other, commands from a prefix, each
# command's options as its own --help names them, option values, files and
# directories; certificate names come from a real running agent (through -s,
# -c, --socket=, or -s after the command), `renew` adds `all`, and `rehash`
# completes the [capath] sections of the configuration and its drop-ins.
# With the agent stopped, or one that never answers, names complete to
# nothing, print nothing and take at most a few seconds. Skipped (77)
# without bash-completion (the Debian package bash-completion).
. "$(dirname "$0")/lib.bash"

BC=/usr/share/bash-completion/bash_completion
[ -r "$BC" ] || { echo "SKIP: bash-completion is not installed ($BC)"; exit 77; }
C=$CS_SOURCE_DIR/contrib/completion

# compl PROGRAM LINE: what Tab offers at the end of LINE, typed to PROGRAM
# (certsyncctl or certsyncd; its first word is the program to run), one a
# line in $T/compl; what the completion printed in $T/printed. Words are
# split as bash splits them ('=' is a word of its own); runs in $T/files.
compl() {
	(cd "$T/files" && bash --norc --noprofile -c '
		. "$1"
		. "$2"
		line=$3
		read -ra COMP_WORDS <<<"${line//=/ = }"
		[[ $line == *" " ]] && COMP_WORDS+=("")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE=$line
		COMP_POINT=${#line}
		COMPREPLY=()
		"$4" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}" >"$5" 2>&1
		for w in "${COMPREPLY[@]}"; do printf "%s\n" "$w"; done
	' _ "$BC" "$C/$1" "$2" "_$1" "$T/printed" | sort >"$T/compl") ||
		fail "completing '$2' failed"
}
# offers LINE WORD...: Tab at the end of LINE offers exactly the WORDs
# (none: nothing), and prints nothing.
offers() {
	local line=$1 prog=certsyncctl
	shift
	[[ $line == certsyncd* ]] && prog=certsyncd
	compl "$prog" "$line"
	printf '%s\n' "$@" | sed '/^$/d' | sort >"$T/want"
	diff -u "$T/want" "$T/compl" >&2 || fail "Tab after '$line' offers other words than $*"
	[ ! -s "$T/printed" ] || { cat "$T/printed" >&2; fail "Tab after '$line' printed something"; }
}
# includes LINE WORD...: Tab at the end of LINE offers at least the WORDs.
includes() {
	local line=$1 w
	shift
	compl certsyncctl "$line"
	for w in "$@"; do
		grep -qxF -- "$w" "$T/compl" || { cat "$T/compl" >&2; fail "Tab after '$line' does not offer $w"; }
	done
}

mkdir -p "$T/files/sub/deeper" "$T/files/other" "$T/out" "$T/conf.d"
: >"$T/files/leaf.pem"
: >"$T/files/leaf.key"
: >"$T/files/notes.txt"

# bash-completion loads each script by the command's name from a
# completions/ directory (the package's /usr/share/bash-completion/completions).
mkdir -p "$T/bcuser/completions"
cp "$C/certsyncctl" "$C/certsyncd" "$T/bcuser/completions/"
for p in certsyncctl certsyncd; do
	BASH_COMPLETION_USER_DIR=$T/bcuser bash --norc --noprofile -c '
		. "$1"
		if declare -F _comp_load >/dev/null; then _comp_load "$2"; else __load_completion "$2"; fi
		complete -p "$2"' _ "$BC" "$p" >"$T/spec" 2>&1 || { cat "$T/spec" >&2; fail "bash-completion does not load $p"; }
	grep -qx "complete -F _$p $p" "$T/spec" || { cat "$T/spec" >&2; fail "$p: $(cat "$T/spec")"; }
done
pass "bash-completion loads certsyncctl and certsyncd from completions/ by name"

# The commands: those --help lists, no more and no fewer.
"$CERTSYNCCTL" --help >"$T/help"
mapfile -t cmds < <(awk '/^(Agent|Offline) commands/ {on=1; next} /^$/ {on=0} on {print $1}' "$T/help")
[ "${#cmds[@]}" -ge 16 ] || fail "certsyncctl --help lists ${#cmds[@]} commands"
offers "certsyncctl " "${cmds[@]}"
offers "certsyncctl --json -s /run/x.sock " "${cmds[@]}"
offers "certsyncctl ce"
offers "certsyncctl sh" show
offers "certsyncctl re" renew rehash reload revoke rehash-dir
offers "certsyncctl -c /etc/certsync/certsync.conf rehash-" rehash-dir
offers "certsyncctl --" --socket --config --json --help --version
includes "certsyncctl -" -s -c
pass "certsyncctl: the ${#cmds[@]} commands of --help, from a prefix; the global options"

# Each command's options: every one its --help names is offered.
for c in "${cmds[@]}"; do
	"$CERTSYNCCTL" "$c" --help >"$T/chelp" 2>&1 || true
	mapfile -t o < <(grep -oE -- '--[a-z][a-z-]*' "$T/chelp" | sort -u)
	[ "${#o[@]}" -gt 0 ] || fail "certsyncctl $c --help names no option"
	includes "certsyncctl $c --" "${o[@]}"
done
offers "certsyncctl renew --" --force --wait --timeout --json --help
offers "certsyncctl -s /x renew mail --f" --force
offers "certsyncctl revoke --" --reason --json --help
offers "certsyncctl probe smtp://mx --ti" --timeout
pass "each command offers the options its --help names; renew: --force --wait --timeout"

offers "certsyncd --log-level " error warning notice info debug
offers "certsyncd --log-level=de" debug
offers "certsyncd -f --lo" --log-level
offers "certsyncd --" --config --foreground --once --check-config --log-level --help --version
offers "certsyncctl revoke mail --reason key" keyCompromise
offers "certsyncctl convert a.pem b.pem --to f" fullchain
offers "certsyncctl convert a.pem --to=" bundle fullchain cert chain key
offers "certsyncctl fingerprint --digest " sha256 sha1 md5
offers "certsyncctl tlsa --selector " 0 1
offers "certsyncctl renew mail --timeout "
offers "certsyncctl probe smtp://mx --wait "
offers "certsyncctl probe imap" imap:// imaps://
pass "option values: --log-level, --reason, --to (also --to=), --digest, --selector; none for numbers"

offers "certsyncctl inspect le" leaf.key leaf.pem
offers "certsyncctl inspect leaf.pem n" notes.txt
offers "certsyncctl inspect --password-file le" leaf.key leaf.pem
offers "certsyncctl convert --to bundle leaf.pem le" leaf.key leaf.pem
offers "certsyncctl tlsa le" leaf.key leaf.pem
offers "certsyncctl tlsa leaf.pem le"
offers "certsyncctl rehash-dir " other sub
offers "certsyncctl probe smtp://mx --expect l" leaf.key leaf.pem
offers "certsyncctl -c l" leaf.key leaf.pem
offers "certsyncd -c l" leaf.key leaf.pem
pass "files where a FILE is expected (inspect, convert, tlsa, --password-file, -c), directories for rehash-dir"

# A real agent with two certificates and a [capath] in a drop-in.
conf_head "include = conf.d/*.conf" >"$T/certsync.conf"
{ echo; conf_mail; echo; conf_mail | sed 's/"mail"/"web"/; s/mail\.pem/web.pem/'; } >>"$T/certsync.conf"
conf_capath >"$T/conf.d/trust.conf"
spawn_agent
wait_for "$T/agent.log" "status socket listening on $SOCK" 10
wait_for "$T/agent.log" "web: renewed: serial" 10
offers "$CERTSYNCCTL -s $SOCK show " mail web
offers "$CERTSYNCCTL -s $SOCK show w" web
offers "$CERTSYNCCTL -c $T/certsync.conf dane " mail web
offers "$CERTSYNCCTL --socket=$SOCK reload " mail web
offers "$CERTSYNCCTL --json -s $SOCK revoke " mail web
offers "$CERTSYNCCTL adopt -s $SOCK " mail web
offers "$CERTSYNCCTL -s $SOCK renew " all mail web
offers "$CERTSYNCCTL -s $SOCK renew --force " all mail web
offers "$CERTSYNCCTL -s $SOCK show mail "
offers "$CERTSYNCCTL -s $SOCK list "
offers "$CERTSYNCCTL -c $T/certsync.conf rehash " trust
offers "$CERTSYNCCTL -c $T/certsync.conf rehash trust "
pass "names from the running agent: show, dane, reload, revoke, adopt, renew (with all); rehash: the drop-in's [capath]"

stop_agent
offers "$CERTSYNCCTL -s $SOCK show "
offers "$CERTSYNCCTL -c $T/certsync.conf renew " all
offers "$CERTSYNCCTL -s $T/nosuch/certsync.sock show "
pass "no agent: no names, nothing printed"

# An agent that takes the connection and never answers: nothing, in time.
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
print("listening", flush=True)
time.sleep(120)' "$T/hung.sock" >"$T/hung.log" 2>&1 &
hung=$!
CS_PIDS+=($hung)
wait_for "$T/hung.log" listening 10
start=$(date +%s%N)
offers "$CERTSYNCCTL -s $T/hung.sock show "
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -lt 5000 ] || fail "completing against a silent socket took $ms ms"
kill "$hung"
wait "$hung" 2>/dev/null || true
pass "an agent that never answers: no names, nothing printed, $ms ms"
