"""SEARCH BODY and TEXT through the full-text index, with Python's imaplib (and smtplib to
deliver): messages are found at once after delivery, by substring and without case, in
their decoded text (quoted-printable ISO-8859-1, base64 UTF-8, a Shift_JIS corpus message),
with CHARSET UTF-8 for non-ASCII strings; expunged messages are not found.

`python3 search.py populate RESULTS` delivers and checks, and writes every query's answer
to RESULTS (JSON); `python3 search.py compare RESULTS` asks the same queries again and
fails unless every answer is the same (the Rust test runs it after deleting the index,
after `tme search reindex`, and with the index turned off).

Run by crates/tme/tests/imap.rs. Environment: IMAPS_PORT, SMTP_PORT, USER_ADDRESS,
PASSWORD, CORPUS_MESSAGE (a corpus message with a Shift_JIS part).
"""

import json
import os
import smtplib
import sys

from peers import tme


def check(condition, what):
    if not condition:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def uid_search(client, *criteria, literal=None):
    """UID SEARCH; a non-ASCII string goes as a literal after CHARSET UTF-8."""
    if literal is not None:
        client.literal = literal.encode()
        typ, data = client.uid("SEARCH", "CHARSET", "UTF-8", *criteria)
    else:
        typ, data = client.uid("SEARCH", *criteria)
    check(typ == "OK", f"UID SEARCH {criteria} {literal!r}: {typ} {data}")
    return sorted(int(uid) for uid in data[0].split())


LATIN1_QP = (b"From: Zo\xeb <zoe@example.net>\r\nTo: alice@example.org\r\n"
             b"Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?=\r\n"
             b"Content-Type: text/plain; charset=ISO-8859-1\r\n"
             b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
             b"Le caf=E9 est CHAUD ce matin, Hello World.\r\n")
UTF8_BASE64 = (b"From: b@example.net\r\nTo: alice@example.org\r\nSubject: german\r\n"
               b"Content-Type: text/plain; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n"
               b"w5xiZXJncsO2w59lIGF1cyBNw7xuY2hlbg==\r\n")
PLAIN = (b"From: c@example.net\r\nTo: alice@example.org\r\nSubject: plain\r\n\r\n"
         b"nothing special, just yellow submarines\r\n")

# Every query the two phases ask: (name, criteria, literal).
QUERIES = [
    ("body hello", ("BODY", "hello"), None),
    ("body ello", ("BODY", "ello"), None),
    ("body HELLO world", ("BODY", '"HELLO WORLD"'), None),
    ("body yellow", ("BODY", "yellow"), None),
    ("body el", ("BODY", "el"), None),
    ("text zoe", ("TEXT", "zoe@example"), None),
    ("body zoe", ("BODY", "zoe@example"), None),
    ("body cafe accent", ("BODY",), "café"),
    ("body CAFE accent", ("BODY",), "CAFÉ EST"),
    ("text creme", ("TEXT",), "crème"),
    ("body creme", ("BODY",), "crème"),
    ("body muenchen", ("BODY",), "MÜNCHEN"),
    ("body grosse", ("BODY",), "größe"),
    ("body japanese", ("BODY",), "ファイルの形式"),
    ("body smtp", ("BODY", '"delivered by smtp"'), None),
    ("not body", ("NOT", "BODY", "submarine"), None),
    ("or body", ("OR", "BODY", "submarine", "BODY", "chaud"), None),
    ("body and subject", ("BODY", "chaud", "SUBJECT", "caf"), None),
    ("nothing", ("BODY", "zzzqqqxxx"), None),
]


def ask_all(client):
    return {name: uid_search(client, *criteria, literal=literal)
            for name, criteria, literal in QUERIES}


def populate(results_path):
    client = tme()
    client.select("INBOX")
    uids = {}
    for name, raw in (("latin1", LATIN1_QP), ("utf8", UTF8_BASE64), ("plain", PLAIN)):
        typ, data = client.append("INBOX", None, None, raw)
        check(typ == "OK", f"APPEND {name}")
        uids[name] = int(data[0].split(b"APPENDUID ")[1].split()[1].rstrip(b"]"))
    with open(os.environ["CORPUS_MESSAGE"], "rb") as file:
        typ, data = client.append("INBOX", None, None, file.read())
    uids["japanese"] = int(data[0].split(b"APPENDUID ")[1].split()[1].rstrip(b"]"))

    # Found as soon as the APPEND is answered: the search catches the index up first.
    check(uid_search(client, "BODY", "hello") == [uids["latin1"]], "BODY hello right after APPEND")
    check(uid_search(client, "BODY", "ello") == sorted([uids["latin1"], uids["plain"]]),
          "a substring inside a word (Hello, yellow)")
    check(uid_search(client, "BODY", '"HELLO WORLD"') == [uids["latin1"]], "case ignored")
    short = uid_search(client, "BODY", "el")
    check(uids["latin1"] in short and uids["plain"] in short and uids["utf8"] not in short,
          "a string shorter than a trigram")
    check(uid_search(client, "TEXT", "zoe@example") == [uids["latin1"]], "TEXT sees the header")
    check(uid_search(client, "BODY", "zoe@example") == [], "BODY does not")
    check(uid_search(client, "BODY", literal="café") == [uids["latin1"]],
          "quoted-printable ISO-8859-1, CHARSET UTF-8")
    check(uid_search(client, "BODY", literal="CAFÉ EST") == [uids["latin1"]],
          "non-ASCII case ignored")
    check(uid_search(client, "TEXT", literal="crème") == [uids["latin1"]],
          "TEXT finds a RFC 2047 encoded subject by its text")
    check(uid_search(client, "BODY", literal="MÜNCHEN") == [uids["utf8"]], "base64 UTF-8")
    check(uid_search(client, "BODY", literal="ファイルの形式") == [uids["japanese"]],
          "a Shift_JIS part")
    check(uid_search(client, "NOT", "BODY", "submarine") ==
          sorted(uid for name, uid in uids.items() if name != "plain"), "NOT BODY")

    # Delivered over SMTP by another connection while this session is selected.
    smtp = smtplib.SMTP("127.0.0.1", int(os.environ["SMTP_PORT"]))
    smtp.sendmail("sender@example.net", [os.environ["USER_ADDRESS"]],
                  b"From: sender@example.net\r\nTo: alice@example.org\r\nSubject: s\r\n\r\n"
                  b"This one was Delivered by SMTP.\r\n")
    smtp.quit()
    client.noop()
    found = uid_search(client, "BODY", '"delivered by smtp"')
    check(len(found) == 1 and found[0] > max(uids.values()), "a message delivered over SMTP")

    # An expunged message is not found; a message that no longer holds nothing matters.
    doomed = client.append("INBOX", None, None,
                           b"Subject: doomed\r\n\r\nthis message will be expunged: chaud\r\n")
    doomed_uid = int(doomed[1][0].split(b"APPENDUID ")[1].split()[1].rstrip(b"]"))
    check(uid_search(client, "BODY", "chaud") == [uids["latin1"], doomed_uid], "before expunge")
    client.uid("STORE", str(doomed_uid), "+FLAGS", "(\\Deleted)")
    client.expunge()
    check(uid_search(client, "BODY", "chaud") == [uids["latin1"]], "expunged: not found")
    # Another session sees the same.
    other = tme()
    other.select("INBOX")
    check(uid_search(other, "BODY", "chaud") == [uids["latin1"]], "expunged, in another session")
    other.logout()

    # ESEARCH, SORT and THREAD go through the same search.
    typ, _ = client.uid("SEARCH", "RETURN", "(COUNT)", "BODY", "hello")
    # imaplib files the answer under its own name, ESEARCH (RFC 4731 §3).
    _, data = client.response("ESEARCH")
    check(typ == "OK" and data[0] is not None and b"COUNT 1" in data[0], f"ESEARCH COUNT: {data}")
    typ, data = client.uid("SORT", "(SUBJECT)", "UTF-8", "BODY", "chaud")
    check(typ == "OK" and data[0].split() == [str(uids["latin1"]).encode()], f"SORT: {data}")
    typ, data = client.uid("THREAD", "ORDEREDSUBJECT", "UTF-8", "BODY", "yellow")
    check(typ == "OK" and data[0] == f"({uids['plain']})".encode(), f"THREAD: {data}")

    results = ask_all(client)
    client.logout()
    with open(results_path, "w") as file:
        json.dump(results, file, indent=1, sort_keys=True)


def compare(results_path):
    with open(results_path) as file:
        expected = json.load(file)
    client = tme()
    client.select("INBOX")
    # Twice: the first search may find the index gone and read the messages, the second
    # uses the index built again.
    for round_number in (1, 2):
        answers = ask_all(client)
        for name, uids in expected.items():
            check(answers[name] == uids, f"round {round_number}: {name}: {answers[name]} == {uids}")
    client.logout()


if __name__ == "__main__":
    {"populate": populate, "compare": compare}[sys.argv[1]](sys.argv[2])
