"""SORT (RFC 5256, with RFC 5957's DISPLAYFROM/DISPLAYTO) and THREAD (ORDEREDSUBJECT,
REFERENCES) through Python's imaplib: known answers for a hand-made mailbox, worked out
from the RFC's algorithms, and every command's answer compared with a private Dovecot's
for the same messages (same internal dates, same UIDs).

Run by crates/tme/tests/imap.rs. Environment: IMAPS_PORT, USER_ADDRESS, PASSWORD, WORK_DIR.
"""

import imaplib
import sys

from peers import check, dovecot, tme


def message(headers, body="text"):
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode()


# (internal date, message). Message 8 has no Date: its internal date stands in (RFC 5256
# §2.2). Internal dates run backwards, so ARRIVAL is not mailbox order.
MESSAGES = [
    ("07-Feb-2024 12:00:00 +0000", message([
        'From: "Zed Alpha" <zed@example.org>', "To: bob@example.org", "Subject: Project plan",
        "Date: Tue, 2 Jan 2024 10:00:00 +0000", "Message-ID: <p1@example.org>"])),
    ("06-Feb-2024 12:00:00 +0000", message([
        "From: Zoe <amy@example.org>", "To: zed@example.org", "Cc: team@example.org",
        "Subject: Re: Project plan", "Date: Wed, 3 Jan 2024 10:00:00 +0000",
        "Message-ID: <p2@example.org>", "In-Reply-To: <p1@example.org>",
        "References: <p1@example.org>"])),
    ("05-Feb-2024 12:00:00 +0000", message([
        "From: =?utf-8?q?=C3=88ve?= <eve@example.org>", "To: all@example.org", "Subject: Lunch",
        "Date: Mon, 1 Jan 2024 12:00:00 +0100", "Message-ID: <l1@example.org>"], "longer text " * 20)),
    ("04-Feb-2024 12:00:00 +0000", message([
        "From: bob@example.org", "To: Zed <zed@example.org>", "Subject: Re: [team] Re: project plan",
        "Date: Thu, 4 Jan 2024 10:00:00 +0000", "Message-ID: <p3@example.org>",
        "References: <p1@example.org> <p2@example.org>"])),
    ("03-Feb-2024 12:00:00 +0000", message([
        "From: carl@example.org", "To: eve@example.org", "Subject: Fwd: Lunch",
        "Date: Fri, 5 Jan 2024 10:00:00 +0000", "Message-ID: <l2@example.org>"])),
    ("02-Feb-2024 12:00:00 +0000", message([
        "From: dan@example.org", "To: undisclosed-recipients:;", "Subject: Re: Budget",
        "Date: Sat, 6 Jan 2024 10:00:00 +0000", "Message-ID: <b2@example.org>",
        "References: <b1@example.org>"])),
    ("01-Feb-2024 12:00:00 +0000", message([
        "From: dan@example.org", "Subject: Re: Budget", "Date: Sun, 7 Jan 2024 10:00:00 +0000",
        "Message-ID: <b3@example.org>", "References: <b1@example.org>"])),
    ("31-Dec-2023 12:00:00 +0000", message([
        'From: "quoted"@example.org', "To: Team: a@example.org, b@example.org;"])),
]

# Command (as imaplib sends it) and the answer the RFC's algorithms give.
KNOWN = [
    (("SORT", "(SUBJECT)", "UTF-8", "ALL"), "8 6 7 3 5 1 2 4"),
    (("SORT", "(DATE)", "UTF-8", "ALL"), "8 3 1 2 4 5 6 7"),
    (("SORT", "(REVERSE DATE)", "UTF-8", "ALL"), "7 6 5 4 2 1 3 8"),
    (("SORT", "(ARRIVAL)", "UTF-8", "ALL"), "8 7 6 5 4 3 2 1"),
    (("SORT", "(FROM)", "UTF-8", "ALL"), "2 4 5 6 7 3 8 1"),
    (("SORT", "(DISPLAYFROM)", "UTF-8", "ALL"), "4 5 6 7 3 8 1 2"),
    (("SORT", "(SUBJECT REVERSE DATE)", "US-ASCII", "ALL"), "8 7 6 5 3 4 2 1"),
    (("SORT", "(SUBJECT)", "UTF-8", "FROM", "dan"), "6 7"),
    (("THREAD", "REFERENCES", "UTF-8", "ALL"), "(8)(3 5)(1 2 4)((6)(7))"),
    (("THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL"), "(8)(3 5)(1 (2)(4))(6 7)"),
    (("THREAD", "ORDEREDSUBJECT", "UTF-8", "SUBJECT", "lunch"), "(3 5)"),
]
# Answered alike by tme and Dovecot (with the known answers above, and these).
COMPARED = [command for command, _ in KNOWN] + [
    ("SORT", "(SIZE)", "UTF-8", "ALL"),
    ("SORT", "(REVERSE SIZE)", "UTF-8", "ALL"),
    ("SORT", "(TO)", "UTF-8", "ALL"),
    ("SORT", "(CC DATE)", "UTF-8", "ALL"),
    ("SORT", "(DISPLAYTO)", "UTF-8", "ALL"),
    ("SORT", "(REVERSE DISPLAYTO ARRIVAL)", "UTF-8", "ALL"),
    ("SORT", "(REVERSE ARRIVAL)", "UTF-8", "2:6"),
    ("THREAD", "REFERENCES", "UTF-8", "NOT", "FROM", "bob"),
    ("THREAD", "REFERENCES", "UTF-8", "2:*"),
]


def answer(session, command, uid=False):
    """The SORT or THREAD data line for `command`."""
    name, *arguments = command
    if uid:
        typ, data = session.uid(name, *arguments)
    else:
        typ, data = session._simple_command(name, *arguments)
        typ, data = session._untagged_response(typ, data, name)
    if typ != "OK":
        return f"{typ} {data}"
    return b" ".join(item for item in data if item).decode()


def fill(session):
    # One message appended and expunged first, so UIDs are not sequence numbers.
    session.append("INBOX", None, None, message(["Subject: gone"]))
    session.select("INBOX")
    session.store("1", "+FLAGS", "(\\Deleted)")
    session.expunge()
    for date, raw in MESSAGES:
        typ, data = session.append("INBOX", None, f'"{date}"', raw)
        if typ != "OK":
            sys.exit(f"APPEND: {typ} {data}")
    session.noop()


ours, theirs = tme(), dovecot()
fill(ours)
fill(theirs)
typ, data = ours.capability()
capabilities = data[0].decode().split()
for capability in ["SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"]:
    check(capability in capabilities, f"capability {capability}")

for command, expected in KNOWN:
    check(answer(ours, command) == expected, f"{' '.join(command)}: {answer(ours, command)!r}, expected {expected!r}")
for command in COMPARED:
    for uid in (False, True):
        mine, dove = answer(ours, command, uid), answer(theirs, command, uid)
        label = ("UID " if uid else "") + " ".join(command)
        check(mine == dove, f"{label} as Dovecot answers: tme {mine!r}, Dovecot {dove!r}")
check(answer(ours, ("SORT", "(SUBJECT)", "UTF-8", "ALL"), uid=True) == "9 7 8 4 6 2 3 5",
      "UID SORT answers UIDs")

# Errors.
def status(*arguments):
    try:
        return ours._simple_command(*arguments)
    except imaplib.IMAP4.error as error:
        return "BAD", [str(error).encode()]


typ, data = status("SORT", "(SUBJECT)", "KOI8-R", "ALL")
check(typ == "NO" and b"BADCHARSET" in data[0], f"SORT with an unknown charset: {typ} {data}")
typ, data = status("THREAD", "NOSUCHALGORITHM", "UTF-8", "ALL")
check(typ == "BAD", f"THREAD with an unknown algorithm: {typ} {data}")
typ, data = status("SORT", "(NOSUCHKEY)", "UTF-8", "ALL")
check(typ == "BAD", f"SORT with an unknown key: {typ} {data}")
ours.logout()
theirs.logout()
print("all SORT and THREAD checks passed")
