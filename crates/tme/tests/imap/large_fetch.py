"""FETCH of large messages through imaplib: each message's BODY[] alone, then FETCH 1:*
BODY[] of all of them in one command, every one byte for byte as stored.

Run by crates/tme/tests/imap.rs, which imported the messages with `tme import` (another
process, so the node's peak memory is only what serving them cost) and reads the node's
peak memory afterwards. Environment: IMAPS_PORT, USER_ADDRESS, PASSWORD, LARGE_FILES (a
file listing the imported messages, one path a line).
"""

import hashlib
import imaplib
import os
import ssl
import sys

CONTEXT = ssl.create_default_context()
CONTEXT.check_hostname = False
CONTEXT.verify_mode = ssl.CERT_NONE


def check(condition, what):
    if not condition:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


expected = {}
with open(os.environ["LARGE_FILES"]) as listing:
    for path in filter(None, (line.strip() for line in listing)):
        with open(path, "rb") as file:
            raw = file.read()
        expected[hashlib.sha256(raw).hexdigest()] = len(raw)

client = imaplib.IMAP4_SSL("127.0.0.1", int(os.environ["IMAPS_PORT"]), ssl_context=CONTEXT, timeout=300)
client.login(os.environ["USER_ADDRESS"], os.environ["PASSWORD"])
typ, data = client.select("INBOX", readonly=True)
count = int(data[0])
check(count == len(expected), f"{count} large messages in INBOX")


def digests(data):
    return [hashlib.sha256(item[1]).hexdigest() for item in data if isinstance(item, tuple)]


seen = []
for number in range(1, count + 1):
    typ, data = client.fetch(str(number), "(BODY.PEEK[])")
    check(typ == "OK", f"FETCH {number} BODY[]")
    seen.extend(digests(data))
check(sorted(seen) == sorted(expected), "each message alone came back byte for byte")

typ, data = client.fetch("1:*", "(RFC822.SIZE BODY.PEEK[])")
check(typ == "OK", "FETCH 1:* BODY[]")
check(sorted(digests(data)) == sorted(expected), "FETCH 1:* BODY[] gave every message byte for byte")
total = sum(expected.values())
print(f"fetched {total} octets in one FETCH of {count} messages")
client.logout()
print("all large FETCH checks passed")
