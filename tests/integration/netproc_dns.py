#!/usr/bin/env python3
"""A DANE "resolver" that holds each question for the test to look at.

netproc_dns.py DIR: binds a UDP socket on 127.0.0.1 (a free port, written to
DIR/port), then for each question it receives appends the asker's port to
DIR/asked and, as DIR/mode says at that moment, sends nothing ("hold": the
question times out) or a malformed answer ("garbage": the question's id and
the QR bit, then a question count with no question). No installable DNS
server holds a question open or answers malformed messages on demand, hence
this fixture; the real resolver (Unbound) is in the it_dane_* tests.
"""
import os
import socket
import sys

d = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
with open(os.path.join(d, "port.tmp"), "w") as f:
    f.write("%d\n" % s.getsockname()[1])
os.rename(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
while True:
    q, addr = s.recvfrom(4096)
    with open(os.path.join(d, "asked"), "a") as f:
        f.write("%d\n" % addr[1])
    try:
        with open(os.path.join(d, "mode")) as f:
            mode = f.read().strip()
    except OSError:
        mode = "hold"
    if mode == "garbage" and len(q) >= 2:
        # id, QR + RD, RA + AD, QDCOUNT 1, nothing else: no parse accepts it.
        s.sendto(q[:2] + b"\x81\x20\x00\x01\x00\x00\x00\x00\x00\x00", addr)
