#!/usr/bin/env python3
"""Measuring half of tests/bench/scale.sh (see there and README.md).

  scale_drive.py once  CERTSYNCD CONF            -> wall, CPU, max RSS of certsyncd --once
  scale_drive.py floor FLOOR_SCAN DIR N          -> wall, CPU, max RSS of floor_scan
  scale_drive.py start CERTSYNCD CONF SOCK N     -> certsyncd -f start-up, polled over the socket

Each prints one line of key=value pairs. Times are seconds (wall from the
start of the process), CPU is user+system, RSS is the peak in MiB.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time


def run_rusage(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=stdout, stderr=stderr)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


def ask(path, req, timeout=600.0):
    """One request on a new connection; returns (seconds, answer dict) or raises OSError."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        t0 = time.monotonic()
        s.connect(path)
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise OSError("connection closed without an answer")
            buf += chunk
        return time.monotonic() - t0, json.loads(buf)
    finally:
        s.close()


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tck


def proc_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def start(certsyncd, conf, sock, n, log):
    if os.path.exists(sock):
        os.unlink(sock)
    t0 = time.monotonic()
    p = subprocess.Popen([certsyncd, "-f", "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=open(log, "w"))
    first = None
    slowest = 0.0
    answers = 0
    scheduled = None
    cpu = rss = None
    deadline = t0 + 3600
    try:
        # Until the first answer, try every 5 ms; then a status request every 50 ms
        # (the next one right away when an answer took longer than that).
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise SystemExit(f"certsyncd -f exited with {p.returncode}; see {log}")
            sent = time.monotonic()
            try:
                lat, a = ask(sock, {"cmd": "status"})
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.005)
                continue
            answers += 1
            now = time.monotonic()
            if first is None:
                first = now - t0
            slowest = max(slowest, lat)
            if a.get("ok") and a.get("certs") == n and a["states"].get("unknown", 1) == 0:
                scheduled = now - t0
                cpu = proc_cpu(p.pid)
                rss = proc_hwm(p.pid)
                break
            time.sleep(max(0.0, 0.05 - (time.monotonic() - sent)))
        if scheduled is None:
            raise SystemExit("not every certificate was scheduled within an hour")
        # Requests on the settled agent: renew all (nothing is due), show, status.
        # Certs still at work right after the start answer "busy": wait until
        # every one answers "not_due" (at most 60 s) before timing.
        settle = time.monotonic()
        for _ in range(600):
            a = ask(sock, {"cmd": "renew", "name": "all"})[1]
            other = sum(1 for r in a.get("results", []) if r.get("result") != "not_due")
            if other == 0:
                break
            time.sleep(0.1)
        settle = time.monotonic() - settle
        renew_all = max(ask(sock, {"cmd": "renew", "name": "all"})[0] for _ in range(3))
        a = ask(sock, {"cmd": "renew", "name": "all"})[1]
        started = sum(1 for r in a.get("results", []) if r.get("result") != "not_due")
        show = max(ask(sock, {"cmd": "show", "name": f"c{n // 2 + 1}"})[0] for _ in range(5))
        status = max(ask(sock, {"cmd": "status"})[0] for _ in range(5))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait()
    print(f"first_answer={first:.3f} slowest_answer={slowest:.3f} answers={answers} "
          f"scheduled={scheduled:.2f} cpu={cpu:.2f} rss_mb={rss:.1f} "
          f"settle={settle:.2f} renew_all={renew_all:.3f} renew_all_started={started} "
          f"show={show:.4f} "
          f"status={status:.4f}")


def main():
    what = sys.argv[1]
    if what == "once":
        rc, wall, cpu, rss = run_rusage([sys.argv[2], "--once", "-c", sys.argv[3]],
                                        stderr=open(sys.argv[4], "w"))
        print(f"rc={rc} wall={wall:.2f} cpu={cpu:.2f} rss_mb={rss:.1f}")
    elif what == "floor":
        rc, wall, cpu, rss = run_rusage(sys.argv[2:5], stdout=None)
        print(f"rc={rc} wall={wall:.2f} cpu={cpu:.2f} rss_mb={rss:.1f}")
    elif what == "start":
        start(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
