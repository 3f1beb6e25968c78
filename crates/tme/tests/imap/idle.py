"""IDLE (RFC 2177) reports what happens while the client waits: a message delivered over
SMTP by swaks (EXISTS), a flag change and an expunge by another client.

The node's poll for other processes' changes is set to an hour by the test, so whatever
arrives here came through the store's in-process change notification.
Run by crates/tme/tests/imap.rs. Environment: IMAPS_PORT, SMTP_PORT, USER_ADDRESS, PASSWORD.
"""

import os
import subprocess
import time

from peers import check, tme


def read_until(session, marker):
    """Reads untagged lines until one contains `marker` (the socket times out otherwise)."""
    lines = []
    while True:
        line = session.readline()
        check(line != b"", f"connection open while waiting for {marker!r}: {lines}")
        lines.append(line)
        if marker in line:
            return lines


idler = tme()
idler.select("INBOX")
idler.sock.settimeout(60)
tag = idler._new_tag()
idler.send(tag + b" IDLE\r\n")
check(idler.readline().startswith(b"+"), "IDLE continuation")

started = time.monotonic()
swaks = subprocess.run(
    ["swaks", "--server", "127.0.0.1", "--port", os.environ["SMTP_PORT"],
     "--from", "bob@example.com", "--to", os.environ["USER_ADDRESS"],
     "--helo", "client.example.com", "--header", "Subject: while idling", "--body", "hello"],
    capture_output=True, text=True)
check(swaks.returncode == 0, f"swaks delivered: {swaks.stdout[-300:]} {swaks.stderr[-300:]}")
lines = read_until(idler, b"EXISTS")
print(f"EXISTS {time.monotonic() - started:.3f} s after swaks started (informational)")
check(lines[-1] == b"* 1 EXISTS\r\n", f"IDLE reports the delivery: {lines}")

other = tme()
other.select("INBOX")
other.store("1", "+FLAGS", "(\\Flagged)")
lines = read_until(idler, b"FETCH")
check(b"FLAGS (\\Flagged)" in lines[-1], f"IDLE reports another client's flag change: {lines}")
other.store("1", "+FLAGS", "(\\Deleted)")
other.expunge()
lines = read_until(idler, b"EXPUNGE")
check(lines[-1] == b"* 1 EXPUNGE\r\n", f"IDLE reports an expunge: {lines}")

idler.send(b"DONE\r\n")
lines = read_until(idler, tag)
check(lines[-1].startswith(tag + b" OK"), f"DONE ends IDLE: {lines}")
typ, data = idler.noop()
check(typ == "OK", "the session goes on after IDLE")
idler.logout()
other.logout()
print("all IDLE checks passed")
