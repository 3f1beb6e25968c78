#!/usr/bin/env python3
"""Submission load: a mail client's side of RFC 6409 submission, and the sink's tally.

    bench/submission-load.py send HOST:PORT --sessions S --messages N --size BYTES \
        --user A --recipient B --tag T --accepted FILE [--connection-per-message] [--rate R]
    bench/submission-load.py report --dumps DIR --accepted FILE --start UNIX --keys FILE

`send` runs S sessions at once on one asyncio loop. Each connects, reads the greeting,
says EHLO, STARTTLS (certificates not checked: both servers under test present the same
self-signed one), EHLO again, AUTH PLAIN as A (password from the environment variable
SUBMISSION_PASSWORD), then sends its share of N messages back to back, one command at a time
as a mail client does (MAIL FROM A, RCPT TO B, DATA, the message, "."). With
--connection-per-message every message gets a connection of its own (TLS handshake and AUTH
included). With --rate, the messages are paced at R per second in all (message i is sent no
earlier than i / R seconds after every session has authenticated), so that latency is
measured at a load both servers can take; without it, each session sends as fast as it is
answered. A reply other than the expected one fails the run. The time of each 250 to the
final "." is written to FILE as "<message-id> <unix seconds>" lines. Prints one line:
messages, replies that were not 250, connections, and the submission rate (messages / time
from the first connection to the last 250).

The message: From A, To B, Date, Message-ID <T.number.random@load.bench.test>, Subject, an
empty line, then BYTES of body in lines of 70 octets.

`report` reads the message files Postfix's smtp-sink dumped (`smtp-sink -d`) into DIR and
matches each one's Message-ID with FILE. Prints one line: messages received, how many
matched a submission, the DKIM-Signature fields per message (least and most), the time from
START to the last message's arrival, messages/s over that time, and the end-to-end latency
(submission's 250 to the sink having the whole message: the dump file's modification
time, which the kernel keeps at its clock tick, a few milliseconds; a copy whose time is
before the 250 counts as 0) at p50, p90, p99 and max. It also verifies every DKIM signature
of the first --verify (3) messages with dkimpy (Debian's python3-dkim, python3-nacl for
Ed25519), the public keys read from --keys: lines of "<selector>._domainkey.<domain> <TXT
record text>".
"""

import argparse
import asyncio
import base64
import email.utils
import os
import random
import socket
import ssl
import sys
import time


def message_bytes(sender: str, recipient: str, size: int, message_id: str) -> bytes:
    header = (
        f"From: <{sender}>\r\nTo: <{recipient}>\r\n"
        f"Date: {email.utils.formatdate()}\r\n"
        f"Message-ID: {message_id}\r\n"
        f"Subject: submission benchmark\r\n\r\n"
    ).encode()
    line = b"La de da de da " * 5
    body = bytearray()
    while len(body) < size:
        body += line[: min(68, size - len(body))] + b"\r\n"
    return header + bytes(body)


async def reply(reader: asyncio.StreamReader) -> str:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return line.decode("utf-8", "replace").rstrip()


async def command(writer, reader, line: str, expected: str) -> str:
    writer.write(line.encode() + b"\r\n")
    await writer.drain()
    answer = await reply(reader)
    if not answer.startswith(expected):
        raise RuntimeError(f"{line.split(' ')[0]!r} got {answer!r}")
    return answer


class Load:
    def __init__(self, arguments):
        self.arguments = arguments
        self.host, port = arguments.server.rsplit(":", 1)
        self.port = int(port)
        self.tls = ssl.create_default_context()
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE
        password = os.environ.get("SUBMISSION_PASSWORD", "")
        self.auth = base64.b64encode(f"\0{arguments.user}\0{password}".encode()).decode()
        self.accepted = []
        self.failures = []
        self.connections = 0
        self.started = time.monotonic()
        self.sessions_total = min(arguments.sessions, arguments.messages)
        self.sessions_open = 0
        self.all_open = asyncio.Event()

    async def pace(self, number: int):
        if self.arguments.rate:
            delay = self.started + number / self.arguments.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def open(self):
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections += 1
        if not (await reply(reader)).startswith("220"):
            raise RuntimeError("no 220 greeting")
        await command(writer, reader, "EHLO load.bench.test", "250")
        await command(writer, reader, "STARTTLS", "220")
        await writer.start_tls(self.tls)
        await command(writer, reader, "EHLO load.bench.test", "250")
        await command(writer, reader, f"AUTH PLAIN {self.auth}", "235")
        return reader, writer

    async def close(self, reader, writer):
        await command(writer, reader, "QUIT", "221")
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass

    async def send_one(self, reader, writer, number: int):
        arguments = self.arguments
        message_id = f"<{arguments.tag}.{number}.{random.getrandbits(32):08x}@load.bench.test>"
        await command(writer, reader, f"MAIL FROM:<{arguments.user}>", "250")
        await command(writer, reader, f"RCPT TO:<{arguments.recipient}>", "250")
        await command(writer, reader, "DATA", "354")
        # The generated message has no line starting with a dot: nothing to stuff.
        writer.write(message_bytes(arguments.user, arguments.recipient, arguments.size, message_id))
        writer.write(b".\r\n")
        await writer.drain()
        answer = await reply(reader)
        if answer.startswith("250"):
            self.accepted.append((message_id, time.time()))
        else:
            self.failures.append(answer)

    async def session(self, numbers):
        if self.arguments.connection_per_message:
            for number in numbers:
                await self.pace(number)
                reader, writer = await self.open()
                await self.send_one(reader, writer, number)
                await self.close(reader, writer)
        else:
            reader, writer = await self.open()
            if self.arguments.rate:
                # The pace starts once every session is in (TLS and AUTH done).
                self.sessions_open += 1
                if self.sessions_open == self.sessions_total:
                    self.started = time.monotonic()
                    self.all_open.set()
                await self.all_open.wait()
            for number in numbers:
                await self.pace(number)
                await self.send_one(reader, writer, number)
            await self.close(reader, writer)


async def send(arguments):
    load = Load(arguments)
    sessions = arguments.sessions
    shares = [range(index, arguments.messages, sessions) for index in range(sessions)]
    started = time.time()
    load.started = time.monotonic()
    await asyncio.gather(*(load.session(share) for share in shares if len(share) > 0))
    elapsed = max(load.accepted[-1][1] - started, 1e-9) if load.accepted else 0
    with open(arguments.accepted, "w") as file:
        for message_id, when in load.accepted:
            file.write(f"{message_id} {when:.6f}\n")
    rate = len(load.accepted) / elapsed if elapsed else 0
    print(
        f"messages={len(load.accepted)} not_250={len(load.failures)} "
        f"connections={load.connections} start_unix={started:.6f} "
        f"submit_seconds={elapsed:.3f} submit_messages_per_second={rate:.0f}"
    )
    if load.failures:
        print("first refusal:", load.failures[0], file=sys.stderr)
        sys.exit(1)


def dump_fields(path: str):
    """The Message-ID and the number of DKIM-Signature fields of one dump's header."""
    message_id, signatures = None, 0
    with open(path, "rb") as file:
        for line in file:
            if line in (b"\n", b"\r\n"):
                break
            name = line.split(b":", 1)[0].strip().lower()
            if name == b"message-id":
                message_id = line.split(b":", 1)[1].strip().decode("ascii", "replace")
            elif name == b"dkim-signature":
                signatures += 1
    return message_id, signatures


def sent_message(path: str) -> bytes:
    """A dump as the sink received it on the wire: without smtp-sink's own lines (its
    X-Client-*, X-Helo-Args, X-Mail-Args and X-Rcpt-Args lines, then its Received field),
    with CRLF line ends (smtp-sink writes bare LF)."""
    with open(path, "rb") as file:
        lines = file.read().split(b"\n")
    at = 0
    while at < len(lines) and lines[at].split(b":", 1)[0] in (
        b"X-Client-Addr", b"X-Client-Proto", b"X-Helo-Args", b"X-Mail-Args", b"X-Rcpt-Args"
    ):
        at += 1
    if at < len(lines) and lines[at].startswith(b"Received:"):
        at += 1
        while at < len(lines) and lines[at][:1] in (b" ", b"\t"):
            at += 1
    return b"\r\n".join(lines[at:])


def dkim_results(path: str, keys: dict) -> list:
    """Whether each DKIM signature of the dump verifies, with the public keys of `keys`."""
    import dkim

    def lookup(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return keys.get(name.rstrip(".").lower(), "").encode()

    message = sent_message(path)
    signatures = sum(
        1 for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        if line.lower().startswith(b"dkim-signature:")
    )
    verifier = dkim.DKIM(message)
    return [bool(verifier.verify(idx=index, dnsfunc=lookup)) for index in range(signatures)]


def percentile(sorted_values, fraction):
    # Nearest rank: the smallest value with at least `fraction` of the values at or below it.
    rank = max(1, -(-len(sorted_values) * fraction // 1))
    return sorted_values[int(rank) - 1]


def report(arguments):
    accepted = {}
    with open(arguments.accepted) as file:
        for line in file:
            message_id, when = line.split()
            accepted[message_id] = float(when)
    keys = {}
    with open(arguments.keys) as file:
        for line in file:
            if line.strip():
                name, text = line.strip().split(None, 1)
                keys[name.rstrip(".").lower()] = text
    received, latencies, signature_counts, last, verified = 0, [], [], 0.0, []
    for entry in sorted(os.scandir(arguments.dumps), key=lambda entry: entry.name):
        if not entry.is_file():
            continue
        received += 1
        if received <= arguments.verify:
            verified.extend(dkim_results(entry.path, keys))
        arrived = entry.stat().st_mtime_ns / 1e9
        last = max(last, arrived)
        message_id, signatures = dump_fields(entry.path)
        signature_counts.append(signatures)
        if message_id in accepted:
            latencies.append(max(0.0, arrived - accepted[message_id]) * 1000)
    if not received:
        sys.exit("the sink holds no message")
    latencies.sort()
    seconds = last - arguments.start
    line = (
        f"received={received} matched={len(latencies)} "
        f"dkim_signatures={min(signature_counts)}..{max(signature_counts)} "
        f"dkim_verified={sum(verified)}/{len(verified)} "
        f"seconds={seconds:.3f} messages_per_second={received / seconds:.0f}"
    )
    if latencies:
        line += (
            f" e2e_p50_ms={percentile(latencies, 0.50):.0f} e2e_p90_ms={percentile(latencies, 0.90):.0f}"
            f" e2e_p99_ms={percentile(latencies, 0.99):.0f} e2e_max_ms={latencies[-1]:.0f}"
        )
    print(line)


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    sender = commands.add_parser("send")
    sender.add_argument("server")
    sender.add_argument("--sessions", type=int, required=True)
    sender.add_argument("--messages", type=int, required=True)
    sender.add_argument("--size", type=int, required=True)
    sender.add_argument("--user", required=True)
    sender.add_argument("--recipient", required=True)
    sender.add_argument("--tag", required=True)
    sender.add_argument("--accepted", required=True)
    sender.add_argument("--connection-per-message", action="store_true")
    sender.add_argument("--rate", type=float, default=0.0)
    reporter = commands.add_parser("report")
    reporter.add_argument("--dumps", required=True)
    reporter.add_argument("--accepted", required=True)
    reporter.add_argument("--start", type=float, required=True)
    reporter.add_argument("--keys", required=True)
    reporter.add_argument("--verify", type=int, default=3)
    arguments = parser.parse_args()
    if arguments.command == "send":
        asyncio.run(send(arguments))
    else:
        report(arguments)


main()
