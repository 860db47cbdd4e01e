#!/usr/bin/env bash
# The Grafana dashboard of contrib/grafana (issue 22) against a real agent:
# the JSON parses, has the datasource and instance variables, and every
# query goes through the datasource variable and filters on $instance;
# every certsync_* metric its queries use is in a real certsyncd's
# `certsyncctl metrics` (the situations of prom_lib.bash: healthy, failing,
# fallback, reloads, verify, drift, DANE, CApath), with the labels its
# selectors match on. With promtool, every query is valid PromQL and
# returns data when Prometheus holds the captured output.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/prom_lib.bash"

DASH=$CS_SOURCE_DIR/contrib/grafana/certsync.json

# The queries, one a line (label_values() of the variables too); the layout.
python3 - "$DASH" "$T/exprs" <<'PY' || fail "the dashboard is not as Grafana and the fleet need it"
import json, re, sys
d = json.load(open(sys.argv[1]))
var = {v["name"]: v for v in d["templating"]["list"]}
if var.get("datasource", {}).get("type") != "datasource" or var["datasource"].get("query") != "prometheus":
    sys.exit("no datasource variable of type prometheus")
inst = var.get("instance", {})
if inst.get("type") != "query" or "certsync_" not in json.dumps(inst.get("query")):
    sys.exit("no instance variable taken from a certsync metric")
exprs, ids = [], []
def walk(panels):
    for p in panels:
        ids.append(p["id"])
        walk(p.get("panels", []))
        for t in p.get("targets", []):
            if t.get("datasource", p.get("datasource", {})).get("uid") != "${datasource}":
                sys.exit(f"panel {p['title']!r}: a query not through $datasource")
            e = t["expr"]
            for sel in re.findall(r'certsync_\w+(\{[^}]*\})?', e):
                if 'instance=~"$instance"' not in sel:
                    sys.exit(f"panel {p['title']!r}: {e}: a certsync metric not filtered by $instance")
            exprs.append(e.replace("\n", " "))
walk(d["panels"])
if len(ids) != len(set(ids)):
    sys.exit("panel ids are not unique")
if len(exprs) < 10:
    sys.exit(f"only {len(exprs)} queries")
with open(sys.argv[2], "w") as f:
    for e in exprs:
        print(e, file=f)
with open(sys.argv[2] + ".vars", "w") as f:
    print(json.dumps(inst.get("query")), file=f)
PY
pass "the dashboard: datasource and instance variables, $(wc -l <"$T/exprs") queries through \$datasource, filtered by \$instance"

capture_metrics "$T/metrics.txt"
cat "$T/exprs" "$T/exprs.vars" >"$T/all-queries"
n=$(check_queries "$T/metrics.txt" "$DASH" "$T/all-queries")
pass "the $n metrics the dashboard queries are all in the agent's output, with the labels they match on"

command -v promtool >/dev/null || { echo "SKIP: promtool is needed for the rest (Debian package prometheus)"; exit 77; }
# Prometheus holding the capture (instance and job added, counters rising)
# for 30 minutes; one alert per query, absent(QUERY), that must not fire.
python3 - "$T/metrics.txt" "$T/exprs" "$T/dash.rules.yml" "$T/dash.test.yml" <<'PY'
import json, re, sys
types, series = {}, []
for line in open(sys.argv[1]):
    m = re.match(r'# TYPE (\S+) (\S+)', line)
    if m:
        types[m.group(1)] = m.group(2)
    if line.startswith("#") or not line.strip():
        continue
    sel, value = line.rsplit(" ", 1)
    name, _, labels = sel.partition("{")
    labels = labels.rstrip("}")
    all_labels = 'instance="mx1.example.net:9100",job="node"' + ("," + labels if labels else "")
    values = "0+1x30" if types.get(name) == "counter" else f"{value.strip()}x30"
    series.append({"series": f"{name}{{{all_labels}}}", "values": values})
exprs = [e.strip() for e in open(sys.argv[2]) if e.strip()]
rules = {"groups": [{"name": "dashboard", "rules": [
    {"alert": f"Query{i}", "expr": "absent(" + e.replace("$instance", ".*") + ")"}
    for i, e in enumerate(exprs)]}]}
test = {"rule_files": [sys.argv[3]], "evaluation_interval": "1m", "tests": [{
    "interval": "1m", "input_series": series,
    "alert_rule_test": [{"eval_time": "20m", "alertname": f"Query{i}", "exp_alerts": []}
                        for i in range(len(exprs))]}]}
# JSON is YAML: no YAML module needed.
json.dump(rules, open(sys.argv[3], "w"), indent=1)
json.dump(test, open(sys.argv[4], "w"), indent=1)
PY
promtool check rules "$T/dash.rules.yml" >"$T/check.out" 2>&1 ||
	{ cat "$T/check.out" >&2; fail "a dashboard query is not valid PromQL"; }
promtool test rules "$T/dash.test.yml" >"$T/test.out" 2>&1 || {
	grep -o 'alertname: Query[0-9]*' "$T/test.out" | sort -u | while read -r _ q; do
		echo "empty on the agent's output: $(sed -n "$((${q#Query} + 1))p" "$T/exprs")" >&2
	done
	fail "a dashboard query returns nothing on the agent's output"
}
pass "every query is valid PromQL and returns data on the agent's output"
