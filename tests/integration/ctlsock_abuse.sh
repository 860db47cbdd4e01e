#!/usr/bin/env bash
# Misbehaving clients never disturb a well-behaved one: while a good client
# sends `list` and `show` in a loop (every answer checked, latency
# measured), other clients send garbage, an oversized request, half a line
# and then nothing, one byte at a time (slow loris), requests without ever
# reading the answers, and a hundred connections that say nothing. The bad
# ones get the documented error answers; the good one never waits long; the
# agent stays up with bounded memory and answers certsyncctl afterwards.
. "$(dirname "$0")/ctlsock_lib.bash"

write_conf
start_agent

cat >"$T/abuse.py" <<'PY'
import json, os, socket, sys, threading, time

path = sys.argv[1]
stop = threading.Event()
problems = []

def conn():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s

def read_line(s, timeout=5):
    s.settimeout(timeout)
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(1 << 20)
        if not d:
            return buf, True
        buf += d
    return buf, False

lat = []
def good():
    s = conn()
    n = 0
    while not stop.is_set():
        for req in (b'{"cmd":"list"}\n', b'{"cmd":"show","name":"mail"}\n'):
            t = time.monotonic()
            s.sendall(req)
            line, eof = read_line(s)
            lat.append(time.monotonic() - t)
            r = json.loads(line)
            if not r.get("ok"):
                problems.append("good client got %r" % line[:200])
            n += 1
        time.sleep(0.005)
    s.close()
    lat.append(n)

results = {}
def garbage():
    s = conn()
    answers = []
    for req in (b"hello\n", b"\x00\xff\xfe\n", b"[1,2,3]\n", b'{"cmd":42}\n',
                b'{"cmd":"nosuch"}\n', b'{"cmd":"show"}\n', b'{"cmd":"list"\n'):
        s.sendall(req)
        line, eof = read_line(s)
        answers.append(json.loads(line))
    # The connection survives garbage: a good request still works on it.
    s.sendall(b'{"cmd":"status"}\n')
    line, eof = read_line(s)
    answers.append(json.loads(line))
    results["garbage"] = answers

def oversized():
    s = conn()
    try:
        s.sendall(b"{" + b"x" * (70 * 1024))
    except OSError:
        pass
    line, eof = read_line(s)
    r = json.loads(line)
    rest, eof2 = read_line(s)
    results["oversized"] = (r, eof2 and rest == b"")

def half_line():
    s = conn()
    s.sendall(b'{"cmd":"li')
    stop.wait()
    s.close()

def slow_loris():
    s = conn()
    req = b'{"cmd":"show","name":"mail"}' + b" " * 200
    i = 0
    while not stop.is_set() and i < len(req):
        s.send(req[i:i + 1])
        i += 1
        time.sleep(0.01)
    s.close()

def no_reader():
    s = conn()
    s.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 3
    chunk = b'{"cmd":"list"}\n' * 1000
    while time.monotonic() < deadline and not stop.is_set():
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            time.sleep(0.05)
    results["no_reader_sent"] = sent
    stop.wait()
    s.close()

silent = [conn() for _ in range(100)]

threads = [threading.Thread(target=f) for f in (good, garbage, oversized, half_line, slow_loris, no_reader)]
for t in threads:
    t.start()
time.sleep(4)
stop.set()
for t in threads:
    t.join(20)
for s in silent:
    s.close()

n = lat.pop()
lat.sort()
print("good client: %d requests, p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (
    n, lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3, lat[-1] * 1e3))
g = results.get("garbage")
if g is None or len(g) != 8:
    problems.append("garbage client: %r" % g)
else:
    for a in g[:7]:
        if a.get("ok") is not False or a.get("code") != "bad_request":
            problems.append("garbage answer: %r" % a)
    if "malformed JSON" not in g[0]["error"] or "unknown command" not in g[4]["error"]:
        problems.append("garbage messages: %r" % g)
    if g[7].get("ok") is not True:
        problems.append("status after garbage: %r" % g[7])
o = results.get("oversized")
if o is None or o[0].get("code") != "too_long" or not o[1]:
    problems.append("oversized: %r" % (o,))
if n < 50:
    problems.append("the good client managed only %d requests in 4 s" % n)
if lat[-1] > 0.5:
    problems.append("the good client waited %.2f s for an answer" % lat[-1])
print("no-reader client pushed %d bytes of requests" % results.get("no_reader_sent", 0))
for p in problems:
    print("PROBLEM:", p)
sys.exit(1 if problems else 0)
PY

"$PY" "$T/abuse.py" "$SOCK" || fail "misbehaving clients disturbed the agent or the good client"
kill -0 "$agent" || fail "the agent died"
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$agent/status")
[ "$rss" -lt 200000 ] || fail "agent RSS ${rss} kB after the abuse"
pass "garbage, oversized, half-line, slow-loris, non-reading and silent clients: the good client was answered throughout (agent RSS ${rss} kB)"

expect 0 show mail
in_out "state  *valid"
grep -q "status socket: dropping\|more than .* clients" "$T/agent.log" && fail "unexpected drops: $(grep dropping "$T/agent.log")"
stop_agent
pass "the agent answers certsyncctl afterwards and stops cleanly"
