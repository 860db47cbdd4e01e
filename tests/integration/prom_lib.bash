# Shared helpers for tests/integration/prom_*.sh and grafana_*.sh (sourced
# after lib.bash, not a test itself): a real certsyncd in the situations the
# alerting rules and the dashboard are about, its `certsyncctl metrics`
# captured, and the checks that what contrib/prometheus and contrib/grafana
# query is shaped like that output.
#
# cert_conf NAME ISSUERS BUNDLE [LINES]: a blank line and [cert "NAME"] for
# NAME.example.test (mail.example.test, www for web, mx for dane), LINES
# added at its end.
cert_conf() {
	local host=$1
	case $1 in web) host=www ;; dane) host=mx ;; esac
	printf '\n[cert "%s"]\nissuer = %s\nnames  = %s.example.test\nbundle = %s\n' "$1" "$2" "$host" "$3"
	[ -z "${4:-}" ] || printf '%s\n' "$4"
}

# capture_metrics OUT: one agent, one configuration, certificates from a
# local CA (validity 1d) each in a situation of its own:
#   mail  healthy, reloaded by an exec reloader that works;
#   web   its bundle's directory is a regular file: every renewal fails;
#   fb    issuer = broken, local: the first issuer's dir is unusable, the
#         renewal falls back to the second (issuer_info fallback="1");
#   rl    reloaded by an exec reloader that exits 3 (last_reload_ok 0);
#   smtp  verified at smtps:// on a port where nothing listens (verify_ok 0);
#   dane  dane = 3 1 1 with a dane_hook that fails and a resolver that does
#         not answer (dane_ok 0, update failures);
#   d1    deployed first by --once, then drift-checked against an openssl
#         s_server serving it (served_match 1);
#   d2    the same against an s_server serving another certificate
#         (served_match 0);
# and a [capath] holding a file that is no certificate (capath_problems 1).
# The exposition (the first `certsyncctl metrics` that shows every
# situation at once) goes to OUT; the agent keeps running until the test exits.
capture_metrics() {
	local out=$1 p1 p2
	mkdir -p "$T/out" "$T/capath"
	: >"$T/notadir"
	echo "not a certificate" >"$T/capath/junk.pem"
	printf '#!/bin/sh\necho "no DNS server here" >&2\nexit 1\n' >"$T/dane-hook"
	chmod 755 "$T/dane-hook"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=other.example.test" -keyout "$T/other.key" -out "$T/other.crt" \
		2>/dev/null || fail "openssl req"
	p1=$(free_port)
	p2=$(free_port)

	# d1 and d2 deployed before the agent runs, so that s_server can serve d1's.
	conf_head "" "validity = 1d" >"$T/once.conf"
	cert_conf d1 local "$T/out/d1.pem" >>"$T/once.conf"
	cert_conf d2 local "$T/out/d2.pem" >>"$T/once.conf"
	timeout 60 "$CERTSYNCD" -f --once -c "$T/once.conf" 2>"$T/once.log" ||
		{ cat "$T/once.log" >&2; fail "certsyncd --once did not deploy d1 and d2"; }
	openssl s_server -quiet -www -accept "127.0.0.1:$p1" -cert "$T/out/d1.pem" \
		-key "$T/out/d1.pem" </dev/null >/dev/null 2>"$T/s1.err" &
	CS_PIDS+=($!)
	openssl s_server -quiet -www -accept "127.0.0.1:$p2" -cert "$T/other.crt" \
		-key "$T/other.key" </dev/null >/dev/null 2>"$T/s2.err" &
	CS_PIDS+=($!)
	wait_port "$p1"
	wait_port "$p2"

	{
		conf_head "metrics_file = $T/metrics.prom
retry_min = 1s
retry_max = 2s
verify_interval = 1s" "validity = 1d"
		printf '\n[issuer "broken"]\ntype = local-ca\ndir  = %s\n' "$T/notadir/ca"
		cert_conf mail local "$T/out/mail.pem" "reload = good"
		cert_conf web local "$T/notadir/web.pem"
		cert_conf fb "broken, local" "$T/out/fb.pem"
		cert_conf rl local "$T/out/rl.pem" "reload = bad"
		cert_conf smtp local "$T/out/smtp.pem" "verify = smtps://127.0.0.1:$(free_port)
verify_timeout = 1s"
		cert_conf dane local "$T/out/dane.pem" "dane = 3 1 1
dane_hook = $T/dane-hook
dane_resolver = 127.0.0.1:$(free_port)
dane_ttl = 1s"
		cert_conf d1 local "$T/out/d1.pem" "verify = smtps://127.0.0.1:$p1"
		cert_conf d2 local "$T/out/d2.pem" "verify = smtps://127.0.0.1:$p2"
		cat <<CONF

[capath "trust"]
dir     = $T/capath
issuers = local

[reload "good"]
type    = exec
command = /bin/true

[reload "bad"]
type    = exec
command = /bin/sh -c 'echo cannot reload >&2; exit 3'
CONF
	} >"$T/certsync.conf"
	spawn_agent
	wait_for "$T/agent.log" "status socket listening on $SOCK" 10
	# Every situation shows in the exposition (series that are only there once
	# something happened: a fallback, a reload, a verify, a drift check).
	local want=(
		'certsync_cert_issuer_info{name="fb",issuer="local",fallback="1"} 1'
		'certsync_cert_issuer_info{name="mail",issuer="local",fallback="0"} 1'
		'certsync_cert_last_reload_ok{name="mail",reloader="good"} 1'
		'certsync_cert_last_reload_ok{name="rl",reloader="bad"} 0'
		'certsync_verify_ok{name="smtp"} 0'
		"certsync_served_match{cert=\"d1\",url=\"smtps://127.0.0.1:$p1\",name=\"d1.example.test\"} 1"
		"certsync_served_match{cert=\"d2\",url=\"smtps://127.0.0.1:$p2\",name=\"d2.example.test\"} 0"
		'certsync_dane_ok{name="dane"} 0'
		'certsync_capath_problems 1'
		'certsync_cert_state{name="web",state="failed"} 1'
	)
	local i w ok
	for ((i = 0; i < 300; i++)); do
		ctl metrics
		ok=1
		for w in "${want[@]}"; do
			grep -qxF -- "$w" "$T/stdout" || { ok=0; break; }
		done
		[ $ok = 1 ] && break
		sleep 0.1
	done
	[ $ok = 1 ] || { log_tail 40; cat "$T/stdout" >&2; fail "no '$w' in the metrics within 30 s"; }
	# That very output: a later one may miss a series a renewal in flight resets.
	cp "$T/stdout" "$out"
	if command -v promtool >/dev/null; then
		promtool check metrics <"$out" >/dev/null 2>"$T/promtool.err" ||
			{ cat "$T/promtool.err" >&2; fail "promtool check metrics rejects the capture"; }
	fi
}

# check_series_shapes EXPOSITION TESTFILE...: every input series of the
# promtool test files is a certsync_* series whose labels, but for the
# instance and job Prometheus adds, are those of a sample of EXPOSITION: the
# same label names, the same values (a url's port aside, a free port in the
# capture). Prints the number of series checked; fails naming the first
# that is not shaped so.
check_series_shapes() {
	python3 - "$@" <<'PY' || fail "promtool test series not shaped like the agent's output"
import re, sys
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

def parse(sel):
    m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?', sel.strip())
    if not m:
        return None, None
    return m.group(1), dict(LABEL.findall(m.group(2) or ""))

def key(labels):
    out = {}
    for k, v in labels.items():
        if k in ("instance", "job"):
            continue
        out[k] = re.sub(r':[0-9]+$', '', v) if k == "url" else v
    return tuple(sorted(out.items()))

real = set()
for line in open(sys.argv[1]):
    if line.startswith("#") or not line.strip():
        continue
    name, labels = parse(line.rsplit(" ", 1)[0])
    real.add((name, key(labels)))
n = 0
for path in sys.argv[2:]:
    for line in open(path):
        m = re.match(r"\s*- series: '(.*)'\s*$", line)
        if not m:
            continue
        name, labels = parse(m.group(1))
        if name is None or not name.startswith("certsync_"):
            sys.exit(f"{path}: {m.group(1)}: not a certsync series")
        if "instance" not in labels or "job" not in labels:
            sys.exit(f"{path}: {m.group(1)}: no instance and job labels (Prometheus adds them)")
        if (name, key(labels)) not in real:
            same = sorted(str(dict(k)) for nm, k in real if nm == name)
            sys.exit(f"{path}: {m.group(1)}: no such series in the agent's output; it has "
                     + (", ".join(same) if same else "no " + name))
        n += 1
if n == 0:
    sys.exit("no input series found")
print(n)
PY
}

# check_queries EXPOSITION WHAT FILE: every certsync_* identifier in the
# PromQL of FILE (queries, one or more a line) is a metric of EXPOSITION,
# and every label a selector of it matches on (but instance and job) is a
# label of that metric there; WHAT says whose queries, in the failure.
# Prints how many metrics the queries use.
check_queries() {
	python3 - "$@" <<'PY' || fail "$2 queries what the agent does not export"
import re, sys
exp, what, queries = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
labels = {}
for line in open(exp):
    m = re.match(r'(certsync_\w+)(?:\{(.*)\})? ', line)
    if m:
        labels.setdefault(m.group(1), set()).update(re.findall(r'(\w+)="', m.group(2) or ""))
used = set(re.findall(r'certsync_\w+', queries))
if not used:
    sys.exit(f"{what}: no certsync metric queried")
for name in sorted(used):
    if name not in labels:
        sys.exit(f"{what} uses {name}, which the agent does not export")
for name, sel in re.findall(r'(certsync_\w+)\{([^}]*)\}', queries):
    for lab in re.findall(r'(\w+)\s*(?:=~|!~|!=|=)', sel):
        if lab not in ("instance", "job") and lab not in labels[name]:
            sys.exit(f"{what}: {name}{{{sel}}}: the agent's {name} has no label {lab}")
print(len(used))
PY
}
