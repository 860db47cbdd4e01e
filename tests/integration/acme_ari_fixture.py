#!/usr/bin/env python3
"""ARI fixture for tests/integration/acme_ari.sh: Debian's Pebble (2.4) serves
no renewalInfo and no profiles, so this HTTPS server stands in front of it.
It serves Pebble's directory with "renewalInfo" and meta.profiles added,
answers GET /renewalInfo/CERTID with the RFC 9773 window given on the command
line (and Retry-After: 21600), logs every CERTID asked for and every newOrder
payload, and forwards everything else to Pebble unchanged, keeping the Host
header so that Pebble's URLs and JWS url checks name this server.

With FIXTURE_ORDER_FAILS="CODE:SECONDS,..." in the environment, the first
newOrder requests are answered with those statuses, a rateLimited problem
document and Retry-After: SECONDS (one entry per request) instead of being
forwarded (tests/integration/acme_retry_after.sh). With
FIXTURE_POLL_RETRY_AFTER=SECONDS, answers that carry an order or an
authorization still "pending" or "processing" get Retry-After: SECONDS.

The window can change while it runs: when LOGDIR/window.json exists, each
renewalInfo answer is read from it ({"start": ..., "end": ..., "retry_after":
SECONDS or null for no header}) instead of the command line
(tests/integration/acme_ari_window.sh). Every renewalInfo request and every
newOrder is also written, in the order they came, to LOGDIR/seq.log ("ari
CERTID", "order PAYLOAD"), so that a test can tell which came first.

usage: acme_ari_fixture.py PORT CERT KEY PEBBLE_PORT PEBBLE_CA START END LOGDIR
"""
import base64
import http.client
import http.server
import json
import os
import ssl
import sys

port, cert, key, pebble_port, pebble_ca, start, end, logdir = sys.argv[1:9]
pebble_ctx = ssl.create_default_context(cafile=pebble_ca)
order_fails = [f.split(":") for f in os.environ.get("FIXTURE_ORDER_FAILS", "").split(",") if f]


def window():
    """The window to answer with, and the Retry-After (None: no header)."""
    try:
        with open(os.path.join(logdir, "window.json")) as f:
            w = json.load(f)
        return w["start"], w["end"], w.get("retry_after")
    except FileNotFoundError:
        return start, end, 21600


def seq(line):
    with open(os.path.join(logdir, "seq.log"), "a") as f:
        f.write(line + "\n")


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        with open(os.path.join(logdir, "fixture.log"), "a") as f:
            f.write("%s\n" % (fmt % args))

    def send(self, code, body, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def forward(self, body=None):
        conn = http.client.HTTPSConnection("127.0.0.1", int(pebble_port), context=pebble_ctx)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        hdrs = [(k, v) for k, v in r.getheaders()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        conn.close()
        return r.status, data, hdrs

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if self.path.startswith("/renewalInfo/"):
            certid = self.path[len("/renewalInfo/"):]
            with open(os.path.join(logdir, "certids.log"), "a") as f:
                f.write(certid + "\n")
            seq("ari " + certid)
            w_start, w_end, retry = window()
            body = json.dumps({"suggestedWindow": {"start": w_start, "end": w_end},
                               "explanationURL": "https://ca.example/ari"}).encode()
            hdrs = [("Content-Type", "application/json")]
            if retry is not None:
                hdrs.append(("Retry-After", str(retry)))
            self.send(200, body, hdrs)
            return
        status, data, hdrs = self.forward()
        if self.path == "/dir" and status == 200:
            d = json.loads(data)
            d["renewalInfo"] = "https://%s/renewalInfo" % self.headers["Host"]
            d.setdefault("meta", {})["profiles"] = {
                "classic": "the usual", "shortlived": "six days"}
            data = json.dumps(d).encode()
        self.send(status, data, hdrs)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/order-plz"):
            payload = b64url_decode(json.loads(body)["payload"]).decode()
            with open(os.path.join(logdir, "orders.log"), "a") as f:
                f.write(payload + "\n")
            seq("order " + payload)
            if order_fails:
                code, secs = order_fails.pop(0)
                problem = json.dumps({"type": "urn:ietf:params:acme:error:rateLimited",
                                      "detail": "fixture: slow down (%s s)" % secs,
                                      "status": int(code)}).encode()
                self.send(int(code), problem, [("Content-Type", "application/problem+json"),
                                               ("Retry-After", secs)])
                return
        status, data, hdrs = self.forward(body)
        poll = os.environ.get("FIXTURE_POLL_RETRY_AFTER")
        if poll and data.startswith(b"{"):
            try:
                st = json.loads(data).get("status")
            except ValueError:
                st = None
            if st in ("pending", "processing"):
                hdrs = [h for h in hdrs if h[0].lower() != "retry-after"] + [("Retry-After", poll)]
        self.send(status, data, hdrs)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening", flush=True)
srv.serve_forever()
