"""MULTIAPPEND (RFC 3502): several messages in one APPEND, over a raw TLS socket (imaplib
sends one literal per command), checked back through imaplib.

Run by crates/tme/tests/imap.rs against a fresh node; exits non-zero on the first failure.
Environment: IMAPS_PORT, USER_ADDRESS, PASSWORD, LITERAL_LIMIT.
"""

import imaplib
import os
import re
import socket

from peers import CONTEXT, check

HOST = "127.0.0.1"
IMAPS_PORT = int(os.environ["IMAPS_PORT"])
USER = os.environ["USER_ADDRESS"]
PASSWORD = os.environ["PASSWORD"]
LITERAL_LIMIT = int(os.environ["LITERAL_LIMIT"])

def message(subject):
    return (f"From: Bob <bob@example.com>\r\nTo: {USER}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.com>\r\n\r\nBody of {subject}.\r\n").encode()


class Raw:
    """A logged-in session on a raw TLS socket."""

    def __init__(self):
        sock = socket.create_connection((HOST, IMAPS_PORT), timeout=20)
        self.sock = CONTEXT.wrap_socket(sock)
        self.reader = self.sock.makefile("rb")
        self.reader.readline()
        self.sock.sendall(b"L LOGIN " + USER.encode() + b" {%d+}\r\n" % len(PASSWORD) + PASSWORD.encode() + b"\r\n")
        self.until(b"L ")

    def until(self, tag):
        transcript = b""
        while True:
            line = self.reader.readline()
            if not line:
                return transcript
            transcript += line
            if line.startswith(tag):
                return transcript

    def synchronising(self, tag, head, parts):
        """APPEND with synchronising literals: each sent after the server's `+`. parts is a
        list of (prefix, message); returns the transcript to the tagged response."""
        line = tag + b" " + head
        for prefix, body in parts:
            line += b" " + prefix + b"{%d}\r\n" % len(body)
            self.sock.sendall(line)
            answer = self.reader.readline()
            if answer.startswith(tag + b" "):
                return answer
            if not answer.startswith(b"+"):
                return answer + self.until(tag)
            line = body
        self.sock.sendall(line + b"\r\n")
        return self.until(tag)

    def send(self, tag, data):
        self.sock.sendall(data)
        return self.until(tag)

    def close(self):
        self.sock.sendall(b"Z LOGOUT\r\n")
        self.until(b"Z ")
        self.sock.close()


raw = Raw()
# Three messages with synchronising literals, flags and a date on some.
transcript = raw.synchronising(b"m1", b"APPEND INBOX", [
    (b"(\\Seen) ", message("first")),
    (b"", message("second")),
    (b"(\\Flagged $Work) \"01-Jan-2024 10:00:00 +0000\" ", message("third")),
])
found = re.search(rb"m1 OK \[APPENDUID (\d+) 1:3\]", transcript)
check(found is not None, f"MULTIAPPEND of three, APPENDUID 1:3: {transcript!r}")
validity = found.group(1)
# Two more with LITERAL+: one round trip.
data = b"m2 APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s\r\n" % (
    len(message("fourth")), message("fourth"), len(message("fifth")), message("fifth"))
transcript = raw.send(b"m2", data)
check(b"m2 OK [APPENDUID " + validity + b" 4:5]" in transcript, f"MULTIAPPEND with LITERAL+: {transcript!r}")

# Failures in the middle leave nothing appended.
# The second literal over the limit (non-synchronising, so it is read and thrown away).
big = b"x" * (LITERAL_LIMIT + 10)
data = b"f1 APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(message("lost a")), message("lost a"), len(big), big)
transcript = raw.send(b"f1", data)
check(b"f1 NO [TOOBIG]" in transcript, f"a literal over the limit in the middle: {transcript!r}")
# The same, synchronising: the server never says `+` to the big one.
transcript = raw.synchronising(b"f2", b"APPEND INBOX", [(b"", message("lost b")), (b"", big)])
check(b"f2 NO [TOOBIG]" in transcript, f"a synchronising literal over the limit in the middle: {transcript!r}")
# An invalid flag on the second message.
data = b"f3 APPEND INBOX {%d+}\r\n%s (\\Nonsense) {%d+}\r\n%s\r\n" % (
    len(message("lost c")), message("lost c"), len(message("lost d")), message("lost d"))
transcript = raw.send(b"f3", data)
check(b"f3 BAD" in transcript, f"an invalid flag in the middle: {transcript!r}")
# A mailbox that does not exist.
data = b"f4 APPEND Nowhere {%d+}\r\n%s {%d+}\r\n%s\r\n" % (
    len(message("lost e")), message("lost e"), len(message("lost f")), message("lost f"))
transcript = raw.send(b"f4", data)
check(b"f4 NO [TRYCREATE]" in transcript, f"MULTIAPPEND to a missing mailbox: {transcript!r}")
transcript = raw.send(b"n1", b"n1 NOOP\r\n")
check(b"n1 OK" in transcript, f"the session is still in step: {transcript!r}")
raw.close()

# What imaplib sees: exactly the five messages, in order, with their flags.
client = imaplib.IMAP4_SSL(HOST, IMAPS_PORT, ssl_context=CONTEXT)
check("MULTIAPPEND" not in client.capabilities, f"not offered before login: {client.capabilities}")
typ, _ = client.login(USER, PASSWORD)
typ, data = client.capability()
check(b"MULTIAPPEND" in data[0].split(), f"MULTIAPPEND offered after login: {data}")
typ, data = client.select("INBOX")
check(typ == "OK" and data == [b"5"], f"five messages: {data}")
typ, data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
subjects = [part[1].strip() for part in data if isinstance(part, tuple)]
check(subjects == [b"Subject: " + name for name in [b"first", b"second", b"third", b"fourth", b"fifth"]],
      f"the messages in order: {subjects}")
flags = [part[0] for part in data if isinstance(part, tuple)]
check(b"\\Seen" in flags[0] and b"\\Flagged" in flags[2] and b"$Work" in flags[2], f"flags: {flags}")
typ, data = client.fetch("3", "INTERNALDATE")
check(b"01-Jan-2024 10:00:00 +0000" in data[0], f"the date given: {data}")
typ, data = client.search(None, "SUBJECT", "lost")
check(data == [b""], f"nothing of the failed commands was kept: {data}")
client.logout()
print("all MULTIAPPEND checks passed")
