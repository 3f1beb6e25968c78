"""COMPRESS=DEFLATE (RFC 4978) with Python's imaplib over a raw deflate stream of its own
(zlib, wbits -15, a sync flush after every command, as RFC 4978 asks of clients): on imaps
and after STARTTLS; literals both ways; IDLE seeing another client's APPEND at once (the
server flushes every response); a second COMPRESS refused; COMPRESS before login refused;
a client sending garbage once compressed is dropped without harm to others.

Run by crates/tme/tests/imap.rs. Environment: IMAP_PORT, IMAPS_PORT, USER_ADDRESS, PASSWORD.
"""

import imaplib
import os
import socket
import zlib

from peers import CONTEXT, check, tme

HOST = "127.0.0.1"
# imaplib does not know COMPRESS; NONAUTH too, to see the server refuse it there.
imaplib.Commands["COMPRESS"] = ("NONAUTH", "AUTH", "SELECTED")
USER, PASSWORD = os.environ["USER_ADDRESS"], os.environ["PASSWORD"]


class Compressing:
    """imaplib reading and writing through deflate once `compress()` succeeded."""

    compressing = False

    def compress(self):
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ == "OK":
            self.deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.inflater = zlib.decompressobj(-15)
            self.inflated = b""
            self.octets_read = 0
            self.compressing = True
        return typ, data

    def send(self, data):
        if self.compressing:
            data = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)

    def _fill(self):
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise imaplib.IMAP4.abort("connection closed")
            self.octets_read += len(chunk)
            inflated = self.inflater.decompress(chunk)
            if inflated:
                self.inflated += inflated
                return

    def read(self, size):
        if not self.compressing:
            return super().read(size)
        while len(self.inflated) < size:
            self._fill()
        data, self.inflated = self.inflated[:size], self.inflated[size:]
        return data

    def readline(self):
        if not self.compressing:
            return super().readline()
        while b"\n" not in self.inflated:
            self._fill()
        end = self.inflated.index(b"\n") + 1
        line, self.inflated = self.inflated[:end], self.inflated[end:]
        return line


class CompressingSSL(Compressing, imaplib.IMAP4_SSL):
    pass


class CompressingPlain(Compressing, imaplib.IMAP4):
    pass


def message(number, size=0):
    return (f"From: sender{number}@example.org\r\nSubject: message {number}\r\n"
            f"Message-ID: <{number}@example.org>\r\n\r\n").encode() + b"line of text\r\n" * size


# Not before login: COMPRESS is offered to an authenticated session only.
plain = CompressingSSL(HOST, int(os.environ["IMAPS_PORT"]), ssl_context=CONTEXT)
check(not any(capability.startswith("COMPRESS") for capability in plain.capabilities),
      f"no COMPRESS before login: {plain.capabilities}")
try:
    typ, data = plain.compress()
except imaplib.IMAP4.error as error:
    typ, data = "BAD", [str(error)]
check(typ == "BAD", f"COMPRESS before login: {typ} {data}")
plain.logout()

# On imaps.
client = CompressingSSL(HOST, int(os.environ["IMAPS_PORT"]), ssl_context=CONTEXT)
client.login(USER, PASSWORD)
typ, data = client.capability()
check("COMPRESS=DEFLATE" in data[0].decode().split(), f"COMPRESS=DEFLATE after login: {data}")
typ, data = client.compress()
check(typ == "OK" and client.compressing, f"COMPRESS DEFLATE: {typ} {data}")
typ, data = client._simple_command("COMPRESS", "DEFLATE")
check(typ == "NO" and b"COMPRESSIONACTIVE" in data[0], f"a second COMPRESS: {typ} {data}")
# APPEND: the server's "+" continuation and the literal go through deflate.
answers = [client.append("INBOX", None, None, message(number, size=200)) for number in range(1, 21)]
check(all(typ == "OK" for typ, _ in answers), f"20 APPENDs compressed: {answers[-1]}")
typ, data = client.select("INBOX")
check(typ == "OK" and data == [b"20"], f"SELECT compressed: {data}")
before = client.octets_read
typ, data = client.fetch("1:*", "(BODY.PEEK[])")
bodies = [item[1] for item in data if isinstance(item, tuple)]
check(len(bodies) == 20 and bodies[19] == message(20, size=200), "FETCH of every message, byte for byte")
wire = client.octets_read - before
inflated = sum(len(body) for body in bodies)
check(wire * 10 < inflated, f"the answers were compressed on the wire: {wire} octets for {inflated}")
typ, data = client.search(None, "SUBJECT", "message 7")
check(data == [b"7"], f"SEARCH compressed: {data}")

# IDLE: another client's APPEND reaches this one while it idles, flushed through deflate.
client.send(b"I1 IDLE\r\n")
check(client.readline().startswith(b"+ "), "IDLE continuation, compressed")
other = tme()
other.append("INBOX", None, None, message(21))
other.logout()
client.sock.settimeout(30)
line = client.readline()
check(line == b"* 21 EXISTS\r\n", f"IDLE saw the new message through deflate: {line!r}")
client.send(b"DONE\r\n")
line = client.readline()
check(line.startswith(b"I1 OK"), f"IDLE ended: {line!r}")
client.logout()

# After STARTTLS on the imap port: deflate above TLS.
client = CompressingPlain(HOST, int(os.environ["IMAP_PORT"]))
client.starttls(CONTEXT)
client.login(USER, PASSWORD)
typ, data = client.compress()
check(typ == "OK", f"COMPRESS after STARTTLS: {typ} {data}")
typ, data = client.status("INBOX", "(MESSAGES)")
check(typ == "OK" and b"MESSAGES 21" in data[0], f"STATUS compressed over STARTTLS: {data}")
client.logout()

# Garbage where deflate data should be: the connection is closed; the server goes on.
sock = CONTEXT.wrap_socket(socket.create_connection((HOST, int(os.environ["IMAPS_PORT"])), timeout=20))
reader = sock.makefile("rb")
reader.readline()
sock.sendall(b"L LOGIN " + USER.encode() + b" {%d+}\r\n" % len(PASSWORD) + PASSWORD.encode() + b"\r\n")
while not reader.readline().startswith(b"L "):
    pass
sock.sendall(b"C COMPRESS DEFLATE\r\n")
check(reader.readline() == b"C OK DEFLATE active\r\n", "COMPRESS on a raw socket")
sock.sendall(b"\xff" * 64)
try:
    closed = sock.recv(1024) == b""
except OSError:
    closed = True
sock.close()
check(closed, "a corrupt deflate stream closes the connection")
check(tme().noop()[0] == "OK", "the server still serves others")
print("all COMPRESS checks passed")
