"""fetchmail (Debian's package) fetching the INBOX over POP3 with TLS: first with --keep over
STLS (every message delivered to the MDA, none deleted), then over pop3s without --keep (every
message fetched again and deleted). The messages the MDA got are compared with what was sent.
Run by crates/tme/tests/pop3.rs. Environment: see common.py; CERTIFICATE, WORK_DIR.
"""

import os
import pathlib
import subprocess

from common import (POP3_PORT, POP3S_PORT, USER, PASSWORD, check, deliver, login,
                    pop3s_client)

WORK = pathlib.Path(os.environ["WORK_DIR"])
CERTIFICATE = os.environ["CERTIFICATE"]

MESSAGES = [
    b"From: Bob <bob@example.com>\r\nTo: Alice <alice@example.org>\r\nSubject: fetch %d\r\n"
    b"Message-ID: <fetch%d@example.com>\r\n\r\nbody %d\r\n.a line with a dot\r\n" % (n, n, n)
    for n in range(1, 4)
]
for message in MESSAGES:
    deliver(message)

deliveries = WORK / "delivered"
deliveries.mkdir()
mda = WORK / "mda.sh"
mda.write_text(f'#!/bin/sh\nexec cat > "$(mktemp {deliveries}/message.XXXXXX)"\n')
mda.chmod(0o700)


def fetchmail(port, *options):
    rc = WORK / "fetchmailrc"
    rc.write_text(f'poll 127.0.0.1 service {port} protocol pop3 '
                  f'user "{USER}" password "{PASSWORD}"\n')
    rc.chmod(0o600)
    command = ["fetchmail", "-f", str(rc), "--nodetach", "--nosyslog", "-v",
               "--pidfile", str(WORK / "fetchmail.pid"), "--idfile", str(WORK / "fetchids"),
               "--sslcertck", "--sslcertfile", CERTIFICATE, "--sslcommonname", "localhost",
               "--mda", str(mda), *options]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HOME": str(WORK)})
    print(result.stdout[-3000:], result.stderr[-3000:])
    # fetchmail exits 0 when it fetched mail.
    check(result.returncode == 0, f"fetchmail {' '.join(options)} exit {result.returncode}")
    return result


def fetched():
    found = [path.read_bytes() for path in sorted(deliveries.iterdir())]
    for path in deliveries.iterdir():
        path.unlink()
    return found


def check_fetched(found, what):
    check(len(found) == len(MESSAGES), f"{what}: {len(found)} messages delivered to the MDA")
    for message in MESSAGES:
        # fetchmail hands the MDA LF line ends; tme added its trace headers on top.
        expected = message.replace(b"\r\n", b"\n")
        check(any(got.endswith(expected) for got in found), f"{what}: {message[:60]!r}")


# STLS, forced (--sslproto auto), keeping the messages.
result = fetchmail(POP3_PORT, "--sslproto", "auto", "--keep")
trace = result.stdout + result.stderr  # -v traces the protocol, some on each
check("POP3> STLS" in trace and "upgrade to TLS succeeded" in trace,
      "fetchmail started TLS with STLS")
check_fetched(fetched(), "--keep over STLS")
client = login(pop3s_client())
check(client.stat()[0] == len(MESSAGES), "--keep left every message on the server")
client.quit()

# pop3s, without --keep: fetched again (--all: fetchmail remembers what --keep saw) and
# deleted.
fetchmail(POP3S_PORT, "--ssl", "--all", "--nokeep")
check_fetched(fetched(), "--nokeep over pop3s")
client = login(pop3s_client())
check(client.stat() == (0, 0), "the messages fetched without --keep are deleted")
client.quit()
print("fetchmail ok")
