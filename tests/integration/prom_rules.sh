#!/usr/bin/env bash
# The alerting rules of contrib/prometheus (issue 22) against a real agent:
# a certsyncd with certificates in the situations the rules are about
# (healthy, failing renewals, a fallback issuer, a failing reload, a failing
# verify, drift, DANE updates failing, CApath problems; prom_lib.bash) has
# its `certsyncctl metrics` captured; every metric the rules query is in
# that capture, and every input series of the promtool unit tests
# (contrib/prometheus/tests/*.yml) is a series of the capture, label for
# label, with the instance and job Prometheus adds: the hand-written time
# series are shaped like the real output. Then `promtool check rules` and
# `promtool test rules`; every rule has a firing and a non-firing case.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/prom_lib.bash"
command -v promtool >/dev/null || { echo "SKIP: promtool is needed (Debian package prometheus)"; exit 77; }

P=$CS_SOURCE_DIR/contrib/prometheus
RULES=$P/certsync.rules.yml
TESTS=("$P"/tests/*.yml)

capture_metrics "$T/metrics.txt"
pass "a real agent's metrics captured in every situation ($(grep -vc '^#' "$T/metrics.txt") samples)"

python3 - "$RULES" >"$T/exprs" <<'PY'
import re, sys
# The expr of each rule: a one-line value or a "|" block.
lines = open(sys.argv[1]).read().split("\n")
for i, l in enumerate(lines):
    m = re.match(r'(\s*)expr: (.*)', l)
    if not m:
        continue
    if m.group(2).strip() != "|":
        print(m.group(2))
        continue
    for b in lines[i + 1:]:
        if b.strip() and len(b) - len(b.lstrip()) <= len(m.group(1)):
            break
        print(b)
PY
n=$(check_queries "$T/metrics.txt" "$RULES" "$T/exprs")
[ "$n" -ge 10 ] || fail "the rules query only $n certsync metrics"
pass "the $n metrics the rules query are all in the agent's output, with the labels they match on"

n=$(check_series_shapes "$T/metrics.txt" "${TESTS[@]}")
pass "the $n input series of the promtool tests are series of the agent's output"

promtool check rules "$RULES" >"$T/check.out" 2>&1 || { cat "$T/check.out" >&2; fail "promtool check rules"; }
pass "promtool check rules: $(grep -o '[0-9]* rules found' "$T/check.out")"

# Every alert has a test where it fires and one where it must not.
python3 - "$RULES" "${TESTS[@]}" <<'PY' || fail "an alert lacks a firing or a non-firing test"
import re, sys
alerts = re.findall(r'^\s*- alert: (\w+)', open(sys.argv[1]).read(), re.M)
fires, quiet = set(), set()
for path in sys.argv[2:]:
    text = open(path).read()
    for m in re.finditer(r'alertname: (\w+)\n\s*exp_alerts:( \[\])?', text):
        (quiet if m.group(2) else fires).add(m.group(1))
for a in alerts:
    if a not in fires or a not in quiet:
        sys.exit(f"{a}: {'no firing case' if a not in fires else 'no non-firing case'}")
unknown = (fires | quiet) - set(alerts)
if unknown:
    sys.exit(f"tests of alerts that do not exist: {sorted(unknown)}")
PY
pass "each of the $(grep -c '^ *- alert:' "$RULES") alerts has a firing and a non-firing test"

(cd "$P/tests" && promtool test rules ./*.yml) >"$T/test.out" 2>&1 ||
	{ cat "$T/test.out" >&2; fail "promtool test rules"; }
[ "$(grep -c SUCCESS "$T/test.out")" = "${#TESTS[@]}" ] || { cat "$T/test.out" >&2; fail "promtool test rules"; }
pass "promtool test rules: ${#TESTS[@]} files, all passed"
