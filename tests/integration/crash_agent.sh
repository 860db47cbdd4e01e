#!/usr/bin/env bash
# The running agent SIGKILLed at random moments while it renews in a loop,
# and started again each time: a local CA issuing one-minute certificates,
# renew_before = 99% (each certificate is due a second after it was issued),
# three certs with a bundle, a fullchain and key file pair, and all three,
# and a [capath] the CA is published in. After every kill:
#   - each bundle starts with the key and that key matches its leaf;
#   - a fullchain and key file pair holds the same public key, or (the one
#     window the deploy order leaves: the fullchain is renamed before the key
#     file) the fullchain is the newest generation in state_dir and the key
#     file the one before; the restarted agent then repairs the pair first;
#   - every CApath hash bucket counts up from .0 without a gap, and no link
#     dangles;
#   - every state_dir/certs/*.json parses; no run logs an error or an
#     unreadable state;
#   - the live directory ([agent] live_dir, every cert): LIVE/NAME, once it
#     exists, is a link to a complete generation directory (all five files)
#     named after its leaf, whose privkey.pem matches its fullchain.pem (read
#     through one open of the link): 0 mismatched pairs in all the kills;
#     after the last run no temporary link or directory is left.
# CRASH_KILLS (default 200) kills, 50-300 ms after each start.
. "$(dirname "$0")/lib.bash"

KILLS=${CRASH_KILLS:-200}
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "SKIP: $PY is needed"; exit 77; }
mkdir -p "$T/out" "$T/dove" "$T/web" "$T/capath"
{ conf_head "$EVERY_SECOND
live_dir     = $T/live" "validity = 1m"; cat <<CONF

[cert "mail"]
renew_before = 99%
issuer = local
names  = mail.example.test, smtp.example.test
bundle = $T/out/mail.pem

[cert "imap"]
renew_before = 99%
issuer    = local
names     = imap.example.test
fullchain = $T/dove/imap.crt
keyfile   = $T/dove/imap.key

[cert "web"]
renew_before = 99%
issuer    = local
names     = www.example.test
bundle    = $T/web/web.pem
fullchain = $T/web/web.crt
keyfile   = $T/web/web.key
CONF
conf_capath; } >"$T/certsync.conf"

"$PY" - "$CERTSYNCD" "$CERTSYNCCTL" "$T" "$KILLS" <<'PY'
import glob, json, os, random, re, signal, subprocess, sys, time

certsyncd, ctl, T, kills = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
conf = f"{T}/certsync.conf"
bundles = {"mail": f"{T}/out/mail.pem", "web": f"{T}/web/web.pem"}
pairs = {"imap": (f"{T}/dove/imap.key", f"{T}/dove/imap.crt"),
         "web": (f"{T}/web/web.key", f"{T}/web/web.crt")}

def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)

def inspect(data, what):
    """certsyncctl inspect --json on data: (key_matches_leaf, leaf serial)."""
    tmp = f"{T}/inspect.pem"
    with open(tmp, "wb") as f:
        f.write(data)
    r = subprocess.run([ctl, "inspect", "--json", tmp], capture_output=True)
    # 1: the key does not match (or the chain is out of order); 2 and up: usage.
    if r.returncode not in (0, 1) or not r.stdout:
        fail(f"{what}: inspect exited {r.returncode}: {r.stderr.decode()}")
    j = json.loads(r.stdout)["files"][0]
    if "error" in j:
        fail(f"{what}: {j['error']}")
    certs = j["certificates"]
    return j["key_matches_leaf"], certs[0]["serial"] if certs else None

def generations(name):
    """Serials of state_dir/generations/NAME/*.pem, newest first."""
    gens = []
    for p in glob.glob(f"{T}/state/generations/{name}/*.pem"):
        n = int(os.path.basename(p)[:-4])
        r = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", p],
                           capture_output=True, text=True)
        gens.append((n, r.stdout.strip().split("=")[-1]))
    return [s for _, s in sorted(gens, reverse=True)]

def read(p):
    with open(p, "rb") as f:
        return f.read()

def check(i):
    """The invariants after kill i; returns the names of pairs in the deploy window."""
    window = []
    for name, p in bundles.items():
        if not os.path.exists(p):
            continue  # not issued yet: only before its first renewal
        data = read(p)
        if not re.match(rb"-----BEGIN (EC |RSA )?PRIVATE KEY-----", data):
            fail(f"kill {i}: {p} does not start with the key: {data[:60]!r}")
        ok, serial = inspect(data, p)
        if ok is not True:
            fail(f"kill {i}: {p}: key does not match the leaf ({ok})")
        seen.add((name, serial))
    for name, (kf, fc) in pairs.items():
        if not os.path.exists(fc) and not os.path.exists(kf):
            continue
        if not os.path.exists(kf) or not os.path.exists(fc):
            # The first deploy: the fullchain is written before the key file.
            if os.path.exists(fc) and len(generations(name)) == 1:
                window.append(name)
                continue
            fail(f"kill {i}: only one of {kf}, {fc} exists")
        kd, fd = read(kf), read(fc)
        if not re.match(rb"-----BEGIN (EC |RSA )?PRIVATE KEY-----", kd) or b"CERTIFICATE" in kd:
            fail(f"kill {i}: {kf} is not a key file: {kd[:60]!r}")
        ok, serial = inspect(kd + fd, f"{kf} + {fc}")
        if ok is True:
            seen.add((name, serial))
            continue
        # The deploy window: the fullchain already renamed, the key file not yet.
        gens = generations(name)
        if len(gens) >= 2 and serial == gens[0]:
            prev = read(f"{T}/state/generations/{name}/{max_gen(name) - 1}.pem")
            certs = prev[prev.index(b"-----BEGIN CERTIFICATE-----"):]
            kok, _ = inspect(kd + certs, kf)
            if kok is True:
                window.append(name)
                continue
        fail(f"kill {i}: {kf} and {fc} ({serial}) hold different keys; generations {gens}")
    # CApath: each bucket H.0 .. H.n without a gap, no dangling link.
    buckets = {}
    for e in os.listdir(f"{T}/capath"):
        m = re.fullmatch(r"([0-9a-f]{8})\.(r?)([0-9]+)", e)
        if not m:
            continue
        p = f"{T}/capath/{e}"
        if not os.path.exists(p):
            fail(f"kill {i}: dangling link {p} -> {os.readlink(p)}")
        buckets.setdefault((m[1], m[2]), set()).add(int(m[3]))
    for (h, r), ns in buckets.items():
        if ns != set(range(len(ns))):
            fail(f"kill {i}: capath bucket {h}.{r} has a gap: {sorted(ns)}")
    # state_dir loads.
    for p in glob.glob(f"{T}/state/certs/*.json"):
        try:
            json.loads(read(p))
        except ValueError as e:
            fail(f"kill {i}: {p} does not parse: {e}")
    return window

LIVE_FILES = ("privkey.pem", "fullchain.pem", "cert.pem", "chain.pem", "bundle.pem")

def check_live(i):
    """LIVE/NAME of every cert: absent (before the first deploy) or complete and matching."""
    global live_checked
    for name in ("mail", "imap", "web"):
        link = f"{T}/live/{name}"
        if not os.path.lexists(link):
            if any(os.path.exists(p) for p in list(bundles.get(name, ())) + list(pairs.get(name, ()))) \
                    and len(generations(name)) > 1:
                fail(f"kill {i}: {link} is missing after a deploy")
            continue
        target = os.readlink(link)
        m = re.fullmatch(rf"\.gen/{name}/([0-9a-f]{{16}})", target)
        if not m:
            fail(f"kill {i}: {link} -> {target}: not a generation directory")
        dfd = os.open(link, os.O_RDONLY | os.O_DIRECTORY)
        try:
            got = {}
            for f in LIVE_FILES:
                try:
                    fd = os.open(f, os.O_RDONLY, dir_fd=dfd)
                except FileNotFoundError:
                    fail(f"kill {i}: {link} -> {target} lacks {f}")
                with os.fdopen(fd, "rb") as fh:
                    got[f] = fh.read()
        finally:
            os.close(dfd)
        ok, serial = inspect(got["privkey.pem"] + got["fullchain.pem"], f"{link}/privkey.pem + fullchain.pem")
        if ok is not True:
            live_bad.append(f"kill {i}: {link} -> {target}: key does not match the leaf {serial}")
            continue
        ok, _ = inspect(got["bundle.pem"], f"{link}/bundle.pem")
        if ok is not True or not got["fullchain.pem"].startswith(got["cert.pem"]) \
                or got["fullchain.pem"] != got["cert.pem"] + got["chain.pem"]:
            live_bad.append(f"kill {i}: {link} -> {target}: the five files disagree")
            continue
        fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
                            input=got["cert.pem"], capture_output=True).stdout.decode()
        if fp.split("=")[-1].replace(":", "").strip().lower()[:16] != m[1]:
            fail(f"kill {i}: {link} -> {target} holds another leaf ({fp.strip()})")
        live_checked += 1

def max_gen(name):
    return max(int(os.path.basename(p)[:-4])
               for p in glob.glob(f"{T}/state/generations/{name}/*.pem"))

def paired(name):
    kf, fc = pairs[name]
    try:
        ok, _ = inspect(read(kf) + read(fc), name)
    except FileNotFoundError:
        return False
    return ok is True

seen = set()
live_bad = []
live_checked = 0
windows = 0
pending = []
killed = 0
logs = []
random.seed(int(os.environ.get("CRASH_SEED", str(os.getpid()))))
t0 = time.time()
for i in range(kills):
    log = f"{T}/agent.{i}.log"
    logs.append(log)
    with open(log, "wb") as lf:
        agent = subprocess.Popen([certsyncd, "-f", "-c", conf], stderr=lf, stdout=lf)
    if pending:
        # A pair left in the deploy window is repaired by the next start.
        deadline = time.time() + 5
        while not all(paired(n) for n in pending):
            if time.time() > deadline or agent.poll() is not None:
                fail(f"start {i}: {pending} not repaired: {read(log).decode()}")
            time.sleep(0.02)
        pending = []
    time.sleep(random.uniform(0.05, 0.3))
    if agent.poll() is not None:
        fail(f"start {i}: the agent exited ({agent.returncode}): {read(log).decode()}")
    agent.send_signal(signal.SIGKILL)
    agent.wait()
    killed += 1
    pending = check(i)
    check_live(i)
    windows += len(pending)

# One last clean run: --once over what the kills left.
r = subprocess.run([certsyncd, "--once", "-c", conf], capture_output=True, text=True)
if r.returncode != 0:
    fail(f"--once after the kills exited {r.returncode}: {r.stderr}")
check(kills)
check_live(kills)
for e in os.listdir(f"{T}/live"):
    if e.startswith(".") and e != ".gen":
        fail(f"a temporary link is left in {T}/live: {e}")
for name in ("mail", "imap", "web"):
    for e in os.listdir(f"{T}/live/.gen/{name}"):
        if e.startswith("."):
            fail(f"a temporary directory is left in {T}/live/.gen/{name}: {e}")
if live_bad:
    fail(f"{len(live_bad)} mismatched live pairs: {live_bad[:5]}")
for n in pairs:
    if not paired(n):
        fail(f"{n}: key file and fullchain differ after --once")
renewed = 0
live_swept = 0
for log in logs:
    text = read(log).decode(errors="replace")
    renewed += text.count(": renewed: serial")
    live_swept += text.count(f"left by an interrupted write in {T}/live")
    for line in text.splitlines():
        if " error: " in line or "unreadable state" in line:
            fail(f"{log}: {line}")
print(f"ok - {killed} SIGKILLs in {time.time() - t0:.0f} s: {renewed} renewals logged, "
      f"{len(seen)} distinct (cert, serial) seen deployed; every bundle key-first and matching, "
      f"every key file and fullchain of one generation ({windows} time(s) in the deploy window, "
      f"repaired by the next start), capath buckets without gaps or dangling links, state parses; "
      f"{live_checked} live links checked after the kills, 0 mismatched pairs through them "
      f"({live_swept} start(s) swept what a killed swap left)")
if renewed < kills // 2:
    fail(f"only {renewed} renewals in {kills} runs: the kills did not hit renewals")
if windows == 0 and killed >= 200:
    print("note: no kill landed between the fullchain and the key file")
PY
