"""Corpus messages back over POP3, byte for byte. Run by crates/tme/tests/pop3.rs in two
phases against one account:

`smtp`: a sample of the corpus (the files listed in SMTP_FILES), each sent over SMTP with
CRLF line ends as an MTA sends it; every INBOX message RETR gives is the stored message byte
for byte (IMAP's BODY[]) and ends with what was sent; LIST sizes are the octets RETR sent.
Then every message is deleted (DELE all, QUIT).

`import`: the corpus files listed in CORPUS_FILES, imported by `tme import` as they are on
disk (many with bare LF line ends); RETR gives each file with CRLF line ends, and LIST sizes
count those.

Environment: see common.py.
"""

import collections
import hashlib
import os
import sys

from common import check, deliver, imap_inbox_bodies, login, pop3s_client, retrieved, wire_form


def crlf_line_ends(raw):
    """As tme-testkit's crlf_line_ends: every CR, LF or CRLF becomes CRLF, a final one added."""
    out = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return out if out.endswith(b"\r\n") else out + b"\r\n"


def files(variable):
    with open(os.environ[variable]) as listing:
        return [line.strip() for line in listing if line.strip()]


def retrieve_all(client):
    """Every message: (number, wire bytes), checking each size against LIST."""
    _, listing, _ = client.list()
    sizes = [int(line.split()[1]) for line in listing]
    messages = []
    for number, size in enumerate(sizes, start=1):
        message, octets, response = retrieved(client, number)
        if octets != size or len(message) != size:
            check(False, f"message {number}: LIST said {size}, RETR sent {octets} ({len(message)})")
        messages.append(message)
    check(True, f"{len(sizes)} LIST sizes are the octets RETR sent")
    return messages


phase = sys.argv[1]
if phase == "smtp":
    sent = []
    for path in files("SMTP_FILES"):
        with open(path, "rb") as file:
            message = crlf_line_ends(file.read())
        deliver(message)
        sent.append(message)
    bodies = imap_inbox_bodies()
    # The filter may file some in Junk; the INBOX holds the rest.
    check(len(bodies) > len(sent) // 2, f"{len(bodies)} of {len(sent)} sent are in the INBOX")
    client = login(pop3s_client())
    messages = retrieve_all(client)
    stored = [bodies[uid] for uid in sorted(bodies)]
    check(len(messages) == len(stored), "one POP3 message per INBOX message")
    for number, (message, body) in enumerate(zip(messages, stored), start=1):
        if message != body:
            check(False, f"message {number} differs from the stored bytes")
        if not any(message.endswith(original) for original in sent):
            check(False, f"message {number} does not end with a message sent")
    check(True, "every RETR is the stored message byte for byte, ending with what SMTP sent")
    for number in range(1, len(messages) + 1):
        client.dele(number)
    check(client.quit().startswith(b"+OK"), "QUIT deletes them all")
    client = login(pop3s_client())
    check(client.stat() == (0, 0), "the INBOX is empty")
    client.quit()
elif phase == "import":
    expected = collections.Counter()
    for path in files("CORPUS_FILES"):
        with open(path, "rb") as file:
            expected[hashlib.sha256(wire_form(file.read())).hexdigest()] += 1
    client = login(pop3s_client())
    count, _ = client.stat()
    check(count == sum(expected.values()), f"{count} imported messages in the maildrop")
    got = collections.Counter(hashlib.sha256(message).hexdigest()
                              for message in retrieve_all(client))
    check(got == expected, "every imported file comes back with CRLF line ends, byte for byte")
    client.quit()
print(phase, "ok")
