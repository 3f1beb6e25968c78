"""Helpers shared by the POP3 test scripts (run by crates/tme/tests/pop3.rs).

Environment: POP3_PORT, POP3S_PORT, IMAPS_PORT, SMTP_PORT, USER_ADDRESS, PASSWORD,
APP_PASSWORD, SESSION_ERRORS_MAX.
"""

import imaplib
import os
import poplib
import smtplib
import socket
import ssl
import sys

HOST = "127.0.0.1"
POP3_PORT = int(os.environ["POP3_PORT"])
POP3S_PORT = int(os.environ["POP3S_PORT"])
IMAPS_PORT = int(os.environ["IMAPS_PORT"])
SMTP_PORT = int(os.environ["SMTP_PORT"])
USER = os.environ["USER_ADDRESS"]
PASSWORD = os.environ["PASSWORD"]
APP_PASSWORD = os.environ.get("APP_PASSWORD", "")

# Corpus messages have lines far longer than poplib's default limit of 2048 octets.
poplib._MAXLINE = 100_000_000

CONTEXT = ssl.create_default_context()
CONTEXT.check_hostname = False
CONTEXT.verify_mode = ssl.CERT_NONE


def check(condition, what):
    if not condition:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def refused(call):
    """The error text of a poplib call expected to get -ERR."""
    try:
        answer = call()
    except poplib.error_proto as error:
        return str(error.args[0].decode() if isinstance(error.args[0], bytes) else error.args[0])
    return f"accepted: {answer!r}"


def deliver(message, sender="bob@example.com"):
    with smtplib.SMTP(HOST, SMTP_PORT, timeout=60) as smtp:
        smtp.sendmail(sender, [USER], message)


def stls_client():
    client = poplib.POP3(HOST, POP3_PORT, timeout=60)
    client.stls(CONTEXT)
    return client


def pop3s_client():
    return poplib.POP3_SSL(HOST, POP3S_PORT, context=CONTEXT, timeout=60)


def login(client=None, password=PASSWORD):
    client = client or pop3s_client()
    client.user(USER)
    client.pass_(password)
    return client


def imap_client():
    client = imaplib.IMAP4_SSL(HOST, IMAPS_PORT, ssl_context=CONTEXT)
    typ, _ = client.login(USER, PASSWORD)
    check(typ == "OK", "IMAP login")
    return client


def imap_inbox_bodies():
    """UID -> the stored bytes, as IMAP sends them (BODY[])."""
    client = imap_client()
    client.select("INBOX")
    typ, data = client.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    check(typ == "OK", "IMAP FETCH BODY[]")
    bodies = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(item[0].split(b"UID ")[1].split()[0])
            bodies[uid] = item[1]
    client.logout()
    return bodies


def retrieved(client, number):
    """RETR: the message as the client holds it (stuffing off, CRLF line ends) and octets."""
    response, lines, octets = client.retr(number)
    return b"".join(line + b"\r\n" for line in lines), octets, response


def wire_form(raw):
    """What tme sends for stored bytes `raw`: every line end CRLF, a final one added."""
    out = bytearray()
    rest = raw
    while rest:
        end = rest.find(b"\n")
        if end < 0:
            content, rest = rest, b""
        else:
            content, rest = rest[:end], rest[end + 1:]
        if content.endswith(b"\r"):
            content = content[:-1]
        out += content + b"\r\n"
    return bytes(out)


class Raw:
    """A POP3 session on a raw socket, for what poplib will not send."""

    def __init__(self, tls=True, port=None):
        port = port or (POP3S_PORT if tls else POP3_PORT)
        self.sock = socket.create_connection((HOST, port), timeout=60)
        if tls:
            self.sock = CONTEXT.wrap_socket(self.sock)
        self.reader = self.sock.makefile("rb")
        self.greeting = self.line()

    def line(self):
        return self.reader.readline()

    def send(self, data):
        self.sock.sendall(data)

    def command(self, data):
        self.send(data + b"\r\n")
        return self.line()

    def multiline(self):
        lines = []
        while True:
            line = self.line()
            if line in (b".\r\n", b""):
                return lines
            lines.append(line)

    def login(self, password=PASSWORD):
        check(self.command(b"USER " + USER.encode()).startswith(b"+OK"), "raw USER")
        answer = self.command(b"PASS " + password.encode())
        check(answer.startswith(b"+OK"), f"raw PASS: {answer!r}")

    def close(self):
        self.sock.close()
