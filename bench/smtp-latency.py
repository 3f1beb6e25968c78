#!/usr/bin/env python3
"""Measures the time from the end of DATA to the server's reply, under load.

    bench/smtp-latency.py HOST:PORT --sessions C --messages M --size BYTES --sender A --recipient B

Runs C SMTP sessions at once (one asyncio loop, so no thread waits for a lock to take its
timestamp), each sending its share of M messages back to back over one connection. For each
message the clock starts when the final "." CRLF has been handed to the kernel (the body went
first, with TCP_NODELAY so the dot is not held back by Nagle) and stops when the reply line
has been read. Prints one line: messages, replies that were not 250, the phase's messages/s,
and latency p50, p90, p99 and max in milliseconds.

The message has the shape of Postfix smtp-source's: From, To, Date, Message-Id, an empty
line, then BYTES of body in lines of 70 octets.
"""

import argparse
import asyncio
import email.utils
import socket
import sys
import time


def message_bytes(sender: str, recipient: str, size: int, number: int) -> bytes:
    header = (
        f"From: <{sender}>\r\nTo: <{recipient}>\r\n"
        f"Date: {email.utils.formatdate()}\r\n"
        f"Message-Id: <{number}.{time.time_ns()}@latency.test>\r\n\r\n"
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
        raise RuntimeError(f"{line!r} got {answer!r}")
    return answer


async def session(host, port, count, arguments, latencies, failures, first_number):
    reader, writer = await asyncio.open_connection(host, port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await reply(reader)
    await command(writer, reader, "EHLO latency.test", "250")
    for number in range(first_number, first_number + count):
        await command(writer, reader, f"MAIL FROM:<{arguments.sender}>", "250")
        await command(writer, reader, f"RCPT TO:<{arguments.recipient}>", "250")
        await command(writer, reader, "DATA", "354")
        # The generated body has no line starting with a dot: nothing to stuff.
        writer.write(message_bytes(arguments.sender, arguments.recipient, arguments.size, number))
        await writer.drain()
        started = time.perf_counter()
        writer.write(b".\r\n")
        await writer.drain()
        answer = await reply(reader)
        latencies.append(time.perf_counter() - started)
        if not answer.startswith("250"):
            failures.append(answer)
    await command(writer, reader, "QUIT", "221")
    writer.close()


def percentile(sorted_values, fraction):
    # Nearest rank: the smallest value with at least `fraction` of the values at or below it.
    rank = max(1, -(-len(sorted_values) * fraction // 1))
    return sorted_values[int(rank) - 1]


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("server")
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--sender", required=True)
    parser.add_argument("--recipient", required=True)
    arguments = parser.parse_args()
    host, port = arguments.server.rsplit(":", 1)
    latencies, failures = [], []
    shares = [arguments.messages // arguments.sessions] * arguments.sessions
    for index in range(arguments.messages % arguments.sessions):
        shares[index] += 1
    started = time.perf_counter()
    await asyncio.gather(
        *(
            session(host, int(port), share, arguments, latencies, failures, sum(shares[:index]))
            for index, share in enumerate(shares)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    milliseconds = [value * 1000 for value in latencies]
    print(
        f"messages={len(latencies)} not_250={len(failures)} "
        f"messages_per_second={len(latencies) / elapsed:.0f} "
        f"p50_ms={percentile(milliseconds, 0.50):.1f} p90_ms={percentile(milliseconds, 0.90):.1f} "
        f"p99_ms={percentile(milliseconds, 0.99):.1f} max_ms={milliseconds[-1]:.1f}"
    )
    if failures:
        print("first refusal:", failures[0], file=sys.stderr)
        sys.exit(1)


asyncio.run(main())
