#!/usr/bin/env python3
"""
journald_check.py - what tests/integration/journald*.sh read from the
journal (journalctl -o json, one entry per line), checked.

  journald_check.py cert JSON CERT SERIAL ISSUER
      every entry is CERT's; the last "renewed" event (its MESSAGE_ID of
      agent/cs_journal.c) has CERTSYNC_EVENT, CERTSYNC_ISSUER,
      CERTSYNC_SERIAL (SERIAL, hex as openssl prints it), PRIORITY info and
      SYSLOG_IDENTIFIER certsyncd; an ordinary "CERT: ..." line (no
      MESSAGE_ID) is there too.
  journald_check.py failed JSON CERT ISSUER TEXT
      a "failed" event of CERT: priority warning, CERTSYNC_EVENT,
      CERTSYNC_ISSUER, its MESSAGE_ID, and TEXT (the reason) in MESSAGE.
  journald_check.py nocert JSON
      the agent's "certsyncd ... started" line is there, without CERTSYNC_CERT.
"""
import json
import sys

RENEWED_ID = "e44168237c754367aafb3e838f6f81e3"
FAILED_ID = "f93cacfa9f0a4e94af0b8729bf0fcb49"


def entries(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def check_cert(path, cert, serial, issuer):
    es = entries(path)
    assert es, f"no entry with CERTSYNC_CERT={cert}"
    assert all(e.get("CERTSYNC_CERT") == cert for e in es), "an entry of another cert"
    ev = [e for e in es if e.get("MESSAGE_ID") == RENEWED_ID]
    assert ev, "no renewed event"
    e = ev[-1]
    for k, want in (("CERTSYNC_EVENT", "renewed"), ("CERTSYNC_ISSUER", issuer),
                    ("SYSLOG_IDENTIFIER", "certsyncd"), ("PRIORITY", "6")):
        assert e.get(k) == want, f"{k}={e.get(k)!r}, expected {want!r}: {e}"
    got = e.get("CERTSYNC_SERIAL", "").replace(":", "").lower().lstrip("0")
    assert got == serial.lower().lstrip("0"), \
        f"CERTSYNC_SERIAL={e.get('CERTSYNC_SERIAL')!r}, the deployed serial is {serial}"
    plain = [e for e in es if "MESSAGE_ID" not in e and e["MESSAGE"].startswith(cert + ": ")]
    assert plain, f"no ordinary '{cert}: ...' line carries CERTSYNC_CERT={cert}"
    print(f"{len(es)} entries for {cert}: {len(ev)} renewed, {len(plain)} ordinary lines")


def check_failed(path, cert, issuer, text):
    es = [e for e in entries(path) if e.get("MESSAGE_ID") == FAILED_ID]
    assert es, f"no failed event of {cert}"
    e = es[-1]
    for k, want in (("CERTSYNC_CERT", cert), ("CERTSYNC_EVENT", "failed"),
                    ("CERTSYNC_ISSUER", issuer), ("PRIORITY", "4")):
        assert e.get(k) == want, f"{k}={e.get(k)!r}, expected {want!r}: {e}"
    assert text in e["MESSAGE"], f"the reason ({text}) is not in {e['MESSAGE']!r}"
    print(f"failed: {e['MESSAGE']}")


def check_nocert(path):
    es = entries(path)
    started = [e for e in es
               if e.get("MESSAGE", "").startswith("certsyncd ") and "started" in e["MESSAGE"]]
    assert started, "no 'certsyncd ... started' entry"
    assert all("CERTSYNC_CERT" not in e for e in started), started


if __name__ == "__main__":
    try:
        if sys.argv[1] == "cert":
            check_cert(*sys.argv[2:6])
        elif sys.argv[1] == "failed":
            check_failed(*sys.argv[2:6])
        else:
            check_nocert(sys.argv[2])
    except AssertionError as e:
        print(f"journald_check: {e}", file=sys.stderr)
        sys.exit(1)
