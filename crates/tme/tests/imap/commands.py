"""Every IMAP command tme serves, through Python's imaplib, and bad input on a raw socket.

Run by crates/tme/tests/imap.rs against a fresh node; exits non-zero on the first failure.
Environment: IMAP_PORT, IMAPS_PORT, USER, PASSWORD, APP_PASSWORD.
"""

import base64
import imaplib
import os
import socket

from peers import CONTEXT, check

HOST = "127.0.0.1"
IMAP_PORT = int(os.environ["IMAP_PORT"])
IMAPS_PORT = int(os.environ["IMAPS_PORT"])
USER = os.environ["USER_ADDRESS"]
PASSWORD = os.environ["PASSWORD"]
APP_PASSWORD = os.environ["APP_PASSWORD"]

MESSAGE = (
    b"From: Bob Sender <bob@example.com>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Cc: carol@example.net\r\n"
    b"Subject: Quarterly report\r\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <report@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"The numbers are up: caf=C3=A9 revenue.\r\n"
    b"--b1\r\n"
    b"Content-Type: application/octet-stream; name=data.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=data.bin\r\n"
    b"\r\n"
    b"AAECAwQ=\r\n"
    b"--b1--\r\n"
)


def ok(response, what):
    typ, data = response
    check(typ == "OK", f"{what}: {typ} {data}")
    return data


def login(port=IMAP_PORT, password=PASSWORD):
    if port == IMAPS_PORT:
        client = imaplib.IMAP4_SSL(HOST, port, ssl_context=CONTEXT)
    else:
        client = imaplib.IMAP4(HOST, port)
        ok(client.starttls(CONTEXT), "STARTTLS")
    ok(client.login(USER, password), "LOGIN")
    return client


def raw_session(lines, tls=True, read_until=b"Z OK"):
    """Sends raw bytes after STARTTLS and LOGIN; returns everything read up to read_until."""
    sock = socket.create_connection((HOST, IMAPS_PORT), timeout=20)
    sock = CONTEXT.wrap_socket(sock)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(b"L LOGIN " + USER.encode() + b" {%d+}\r\n" % len(PASSWORD) + PASSWORD.encode() + b"\r\n")
    while not reader.readline().startswith(b"L "):
        pass
    transcript = b""
    for line in lines:
        sock.sendall(line)
    sock.sendall(b"Z NOOP\r\n")
    while True:
        line = reader.readline()
        if not line:
            break
        transcript += line
        if line.startswith(read_until):
            break
    sock.close()
    return transcript


# --- not authenticated ---
plain = imaplib.IMAP4(HOST, IMAP_PORT)
check("LOGINDISABLED" in plain.capabilities and "STARTTLS" in plain.capabilities,
      f"LOGINDISABLED and STARTTLS before TLS: {plain.capabilities}")
try:
    plain.login(USER, PASSWORD)
    check(False, "LOGIN before STARTTLS is refused")
except imaplib.IMAP4.error as error:
    check("PRIVACYREQUIRED" in str(error), f"LOGIN before STARTTLS: {error}")
typ, data = plain._simple_command("NOOP")
check(typ == "OK", "NOOP before login")
# imaplib refuses to send commands in the wrong state, so a raw socket sends them.
early = socket.create_connection((HOST, IMAP_PORT), timeout=20)
early_reader = early.makefile("rb")
early_reader.readline()
early.sendall(b"s1 SELECT INBOX\r\ns2 AUTHENTICATE PLAIN AGFAYg==\r\ns3 LOGOUT\r\n")
early_transcript = early_reader.read()
early.close()
check(b"s1 BAD" in early_transcript, f"SELECT before login: {early_transcript!r}")
check(b"s2 NO [PRIVACYREQUIRED]" in early_transcript, f"AUTHENTICATE before STARTTLS: {early_transcript!r}")
check(b"* BYE" in early_transcript and b"s3 OK" in early_transcript, f"LOGOUT: {early_transcript!r}")
ok(plain.starttls(CONTEXT), "STARTTLS")
check("AUTH=PLAIN" in plain.capabilities and "LOGINDISABLED" not in plain.capabilities,
      f"after STARTTLS: {plain.capabilities}")
try:
    plain.login(USER, "wrong password")
    check(False, "a wrong password is refused")
except imaplib.IMAP4.error as error:
    check("AUTHENTICATIONFAILED" in str(error), f"wrong password: {error}")
# AUTHENTICATE PLAIN without SASL-IR (imaplib waits for the continuation).
ok(plain.authenticate("PLAIN", lambda _: f"\0{USER}\0{APP_PASSWORD}".encode()),
   "AUTHENTICATE PLAIN with an app password")
ok(plain.logout() if False else ("OK", None), "(logout below)")
plain.logout()

# AUTHENTICATE PLAIN with SASL-IR, on imaps (implicit TLS).
raw = CONTEXT.wrap_socket(socket.create_connection((HOST, IMAPS_PORT), timeout=20))
reader = raw.makefile("rb")
greeting = reader.readline()
check(b"AUTH=PLAIN" in greeting and b"STARTTLS" not in greeting, f"imaps greeting: {greeting!r}")
ir = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
raw.sendall(b"A AUTHENTICATE PLAIN " + ir + b"\r\n")
reply = reader.readline()
check(reply.startswith(b"A OK"), f"AUTHENTICATE PLAIN with SASL-IR: {reply!r}")
raw.close()

# --- authenticated ---
client = login(IMAPS_PORT)
typ, data = client.capability()
caps = data[0].decode()
for capability in ["IMAP4rev2", "IDLE", "UIDPLUS", "MOVE", "CONDSTORE", "ESEARCH", "LIST-STATUS",
                   "SPECIAL-USE", "CREATE-SPECIAL-USE", "BINARY", "STATUS=SIZE", "APPENDLIMIT="]:
    check(capability in caps, f"capability {capability}")
ok(client.xatom("ID", '("name" "imaplib")'), "ID")
check(b"tme" in client.untagged_responses.pop("ID", [b""])[0], "ID names tme")
ok(client._simple_command("NAMESPACE"), "NAMESPACE")
check(client.untagged_responses.pop("NAMESPACE")[0] == b'(("" "/")) NIL NIL', "NAMESPACE personal")
ok(client._simple_command("ENABLE", "CONDSTORE"), "ENABLE CONDSTORE")
check(client.untagged_responses.pop("ENABLED")[0] == b"CONDSTORE", "ENABLED CONDSTORE")

data = ok(client.list(), "LIST")
check(any(b"\\Sent" in line and line.endswith(b"Sent") for line in data), f"LIST special use: {data}")
ok(client.create("Projects/2024"), "CREATE")
ok(client._simple_command("CREATE", "Receipts", "(USE (\\Archive))"), "CREATE-SPECIAL-USE")
typ, data = client._simple_command("CREATE", "Bad", "(USE (\\Bogus))")
check(typ == "NO", f"CREATE-SPECIAL-USE with an unknown use: {typ}")
typ, data = client.create("INBOX")
check(typ == "NO", "CREATE INBOX is refused")
data = ok(client.list('""', "%"), "LIST %")
check(any(line.startswith(b"(\\Noselect \\HasChildren)") and line.endswith(b"Projects") for line in data),
      f"LIST % shows the parent that only exists as a level: {data}")
ok(client.rename("Projects/2024", "Projects/2025"), "RENAME")
ok(client.subscribe("Projects/2025"), "SUBSCRIBE")
data = ok(client.lsub('""', "*"), "LSUB")
check(any(line.endswith(b"Projects/2025") for line in data), f"LSUB: {data}")
typ, data = client._simple_command("LIST", "(SUBSCRIBED)", '""', '"*"', "RETURN", "(SPECIAL-USE STATUS (MESSAGES UIDNEXT))")
check(typ == "OK", f"LIST-EXTENDED with LIST-STATUS: {typ}")
statuses = client.untagged_responses.pop("STATUS", [])
check(any(b"Projects/2025 (MESSAGES 0 UIDNEXT 1)" in line for line in statuses), f"LIST-STATUS: {statuses}")
lists = client.untagged_responses.pop("LIST", [])
check(any(b"\\Subscribed" in line for line in lists), f"LIST (SUBSCRIBED): {lists}")
ok(client.unsubscribe("Projects/2025"), "UNSUBSCRIBE")
ok(client.delete("Projects/2025"), "DELETE")
typ, _ = client.delete("INBOX")
check(typ == "NO", "DELETE INBOX is refused")
typ, data = client.select("Nowhere")
check(typ == "NO", "SELECT of a missing mailbox")

# APPEND with flags and a date; APPENDUID.
data = ok(client.append("INBOX", "(\\Flagged $Important)", imaplib.Time2Internaldate(1700000000), MESSAGE), "APPEND")
check(data[0].startswith(b"[APPENDUID "), f"APPENDUID: {data}")
uid_validity, first_uid = data[0].split(b"]")[0].split()[1:3]
ok(client.append("INBOX", None, None, b"Subject: second\r\nFrom: x@y\r\n\r\nsecond body\r\n"), "APPEND a second")
typ, data = client.append("Missing", None, None, b"Subject: x\r\n\r\nx\r\n")
check(typ == "NO" and b"TRYCREATE" in data[0], f"APPEND to a missing mailbox: {data}")

data = ok(client.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY SIZE HIGHESTMODSEQ DELETED)"), "STATUS")
SECOND = b"Subject: second\r\nFrom: x@y\r\n\r\nsecond body\r\n"
check(b"MESSAGES 2 UNSEEN 2" in data[0] and b"SIZE %d" % (len(MESSAGE) + len(SECOND)) in data[0], f"STATUS: {data}")

typ, data = client.select("INBOX")
check(typ == "OK" and data == [b"2"], f"SELECT: {data}")
check(client.untagged_responses.get("UIDVALIDITY") == [uid_validity], "SELECT UIDVALIDITY")
check(client.untagged_responses.get("UIDNEXT") == [b"3"], "SELECT UIDNEXT")
check(b"\\*" in client.untagged_responses.get("PERMANENTFLAGS", [b""])[0], "SELECT PERMANENTFLAGS")
check(client.untagged_responses.get("HIGHESTMODSEQ") is not None, "SELECT HIGHESTMODSEQ")
check(client.untagged_responses.get("READ-WRITE") is not None, "SELECT READ-WRITE")

# FETCH.
typ, data = client.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE UID MODSEQ)")
line = data[0]
check(b"FLAGS (\\Flagged $Important)" in line, f"FETCH FLAGS: {line}")
check(b'INTERNALDATE "14-Nov-2023 22:13:20 +0000"' in line, f"FETCH INTERNALDATE: {line}")
check(b"RFC822.SIZE %d" % len(MESSAGE) in line, f"FETCH RFC822.SIZE: {line}")
check(b'ENVELOPE ("Mon, 1 Jan 2024 10:00:00 +0000" "Quarterly report" (("Bob Sender" NIL "bob" "example.com"))' in line, f"FETCH ENVELOPE: {line}")
check(b'(("Alice" NIL "alice" "example.org")) ((NIL NIL "carol" "example.net")) NIL NIL "<report@example.com>")' in line, f"FETCH ENVELOPE addresses: {line}")
check(b"MODSEQ (" in line and b"UID 1" in line, f"FETCH UID MODSEQ: {line}")
typ, data = client.fetch("1", "(BODYSTRUCTURE)")
check(b'BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 38 0 NIL NIL NIL NIL)'
      b'("application" "octet-stream" ("name" "data.bin") NIL NIL "base64" 8 NIL ("attachment" ("filename" "data.bin")) NIL NIL)'
      b' "mixed" ("boundary" "b1") NIL NIL NIL)' in data[0], f"FETCH BODYSTRUCTURE: {data}")
typ, data = client.fetch("1", "(BODY)")
check(b'BODY (("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 38 0)' in data[0], f"FETCH BODY: {data}")
typ, data = client.fetch("1", "(BODY.PEEK[] BODY.PEEK[HEADER.FIELDS (Subject From)] BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[TEXT]<4.6>)")
parts = {item[0].split(b" ")[-2] if False else item[0]: item[1] for item in data if isinstance(item, tuple)}
values = [item[1] for item in data if isinstance(item, tuple)]
check(values[0] == MESSAGE, "BODY.PEEK[] is the message byte for byte")
check(values[1] == b"From: Bob Sender <bob@example.com>\r\nSubject: Quarterly report\r\n\r\n", f"HEADER.FIELDS: {values[1]!r}")
check(values[2] == b"The numbers are up: caf=C3=A9 revenue.", f"BODY[1]: {values[2]!r}")
check(values[3].startswith(b"Content-Type: application/octet-stream"), f"BODY[2.MIME]: {values[3]!r}")
check(values[4] == b"\r\nCont", f"BODY[TEXT]<4.6>: {values[4]!r}")
typ, data = client.fetch("1", "(FLAGS)")
check(b"\\Seen" not in data[0], f"PEEK does not set \\Seen: {data}")
typ, data = client.fetch("1", "(BINARY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[2])")
values = [item[1] for item in data if isinstance(item, tuple)]
check(values[0] == "The numbers are up: café revenue.".encode(), f"BINARY[1]: {values[0]!r}")
check(values[1] == b"\x00\x01\x02\x03\x04", f"BINARY[2]: {values[1]!r}")
check(b"BINARY.SIZE[2] 5" in data[-1], f"BINARY.SIZE: {data}")
typ, data = client.fetch("1", "(BODY[1])")
check(b"FLAGS (\\Seen" in b"".join(part if isinstance(part, bytes) else part[0] for part in data), f"BODY[1] sets \\Seen and reports it: {data}")
typ, data = client.uid("FETCH", "2", "(FLAGS)")
check(data[0].startswith(b"2 (UID 2 FLAGS ()"), f"UID FETCH: {data}")
typ, data = client.fetch("1:*", "FAST")
check(typ == "OK" and len(data) == 2, f"FETCH FAST: {data}")

# SEARCH.
for criteria, expected in [
    (("ALL",), b"1 2"),
    (("FROM", "bob"), b"1"),
    (("SUBJECT", "second"), b"2"),
    (("FLAGGED",), b"1"),
    (("UNSEEN",), b"2"),
    (("KEYWORD", "$Important"), b"1"),
    (("NOT", "KEYWORD", "$Important"), b"2"),
    (("OR", "FROM", "bob", "SUBJECT", "second"), b"1 2"),
    (("LARGER", "500"), b"1"),
    (("SMALLER", "500"), b"2"),
    (("SENTBEFORE", "2-Jan-2024"), b"1"),
    (("SENTON", "1-Jan-2024"), b"1"),
    (("BEFORE", "1-Jan-2000"), b""),
    (("HEADER", "Message-ID", "report@"), b"1"),
    (("BODY", "numbers"), b"1"),
    (("TEXT", '"second body"'), b"2"),
    (("CC", "carol"), b"1"),
    (("TO", "alice"), b"1"),
    (("2",), b"2"),
    (("UID", "1"), b"1"),
    (("1:*", "SEEN"), b"1"),
]:
    typ, data = client.search(None, *criteria)
    check(typ == "OK" and data == [expected], f"SEARCH {criteria}: {data}")
client.literal = "café".encode()
typ, data = client.search("UTF-8", "BODY")
check(typ == "OK" and data == [b"1"], f"SEARCH CHARSET UTF-8 BODY with a literal finds decoded text: {data}")
typ, data = client.uid("SEARCH", "UNSEEN")
check(data == [b"2"], f"UID SEARCH: {data}")
typ, data = client._simple_command("SEARCH", "RETURN", "(MIN MAX COUNT)", "ALL")
esearch = client.untagged_responses.pop("ESEARCH", [b""])[0]
check(b"MIN 1 MAX 2 COUNT 2" in esearch, f"ESEARCH: {esearch}")
typ, data = client.uid("SEARCH", "RETURN", "(ALL)", "1:*")
esearch = client.untagged_responses.pop("ESEARCH", [b""])[0]
check(b"UID ALL 1:2" in esearch, f"UID ESEARCH ALL: {esearch}")
typ, data = client.search("KOI8-R", "ALL")
check(typ == "NO", f"SEARCH with an unknown charset: {data}")

# STORE.
typ, data = client.store("2", "+FLAGS", "(\\Answered)")
check(b"FLAGS (\\Answered)" in data[0], f"STORE +FLAGS: {data}")
typ, data = client.store("2", "+FLAGS.SILENT", "(\\Draft)")
check(data == [None] or all(b"FLAGS" not in (d or b"") for d in data), f"STORE .SILENT: {data}")
typ, data = client.store("2", "-FLAGS", "(\\Draft)")
check(b"FLAGS (\\Answered)" in data[0], f"STORE -FLAGS: {data}")
typ, data = client.store("2", "FLAGS", "(\\Seen custom)")
check(b"FLAGS (\\Seen custom)" in data[0], f"STORE FLAGS: {data}")
typ, data = client.fetch("2", "(MODSEQ)")
modseq = int(data[0].split(b"MODSEQ (")[1].split(b")")[0])
typ, data = client._simple_command("STORE", "2", f"(UNCHANGEDSINCE {modseq - 1})", "+FLAGS", "(\\Flagged)")
check(typ == "OK" and b"MODIFIED 2" in client.untagged_responses.pop("OK", [b""])[-1] + b"".join(data), f"UNCHANGEDSINCE fails: {data}")
typ, data = client._simple_command("STORE", "2", f"(UNCHANGEDSINCE {modseq})", "+FLAGS", "(\\Flagged)")
check(typ == "OK", "UNCHANGEDSINCE holds")
typ, data = client.fetch("1:*", "(UID FLAGS)", )
typ, data = client._simple_command("UID", "FETCH", "1:*", "(FLAGS)", f"(CHANGEDSINCE {modseq})")
fetched = client.untagged_responses.pop("FETCH", [])
check(len(fetched) == 1 and b"UID 2" in fetched[0], f"CHANGEDSINCE: {fetched}")

# COPY, MOVE, EXPUNGE, UID EXPUNGE.
ok(client.create("Archive/2024"), "CREATE Archive/2024")
typ, data = client.copy("1:2", "Archive/2024")
check(typ == "OK" and data[0].startswith(b"[COPYUID ") and data[0].split(b"]")[0].endswith(b" 1:2 1:2"), f"COPY: {data}")
typ, data = client.copy("1", "Nowhere")
check(typ == "NO" and b"TRYCREATE" in data[0], f"COPY to a missing mailbox: {data}")
ok(client.append("INBOX", None, None, b"Subject: third\r\n\r\nthree\r\n"), "APPEND a third")
typ, data = client.uid("MOVE", "3", "Archive/2024")
check(typ == "OK", f"UID MOVE: {data}")
check(b"COPYUID" in b" ".join(client.untagged_responses.pop("OK", [])), "MOVE sends COPYUID untagged")
check(client.untagged_responses.pop("EXPUNGE", []) == [b"3"], "MOVE expunges the source")
ok(client.store("1:2", "+FLAGS.SILENT", "(\\Deleted)"), "STORE \\Deleted")
typ, data = client.uid("EXPUNGE", "2")
check(typ == "OK" and client.untagged_responses.pop("EXPUNGE", []) == [b"2"], f"UID EXPUNGE only expunges the set: {data}")
typ, data = client.expunge()
check(data == [b"1"], f"EXPUNGE: {data}")
typ, data = client.select("INBOX")
check(data == [b"0"], f"INBOX is empty: {data}")
typ, data = client.select("Archive/2024", readonly=True)
check(typ == "OK" and data == [b"3"] and client.untagged_responses.get("READ-ONLY") is not None, f"EXAMINE: {data}")
typ, data = client.store("1", "+FLAGS", "(\\Seen)")
check(typ == "NO", f"STORE in a read-only mailbox: {data}")
ok(client.unselect(), "UNSELECT")
client.state = "SELECTED"  # imaplib would not send it otherwise
try:
    client.fetch("1", "FLAGS")
    check(False, "FETCH without a selected mailbox is refused")
except imaplib.IMAP4.error as error:
    check("no mailbox selected" in str(error), f"FETCH without a selected mailbox: {error}")
client.state = "AUTH"
ok(client.select("Archive/2024"), "SELECT Archive/2024")
ok(client.store("1", "+FLAGS.SILENT", "(\\Deleted)"), "STORE \\Deleted")
ok(client.close(), "CLOSE")
data = ok(client.status("Archive/2024", "(MESSAGES)"), "STATUS after CLOSE")
check(b"MESSAGES 2" in data[0], f"CLOSE expunged silently: {data}")
ok(client.logout() if False else ("OK", None), "")
client.logout()

# --- bad input, on a raw socket ---
transcript = raw_session([
    b"b1 SELECT INBOX\r\n",
    b"b2 FETCH 99 FLAGS\r\n",                     # past the last message
    b"b3 FETCH 1:x FLAGS\r\n",                    # invalid sequence set
    b"b4 SEARCH (FROM bob\r\n",                   # unbalanced parenthesis
    b"b5 FETCH 1 (FLAGS))\r\n",                   # unbalanced the other way
    b"\xff\xfe\x00garbage \x80\x81\r\n",           # 8-bit garbage
    b"b6 NOSUCHCOMMAND\r\n",
    b"b7 LOGIN a b\r\n",                          # wrong state
    b"b8 APPEND INBOX {999999999999}\r\n",         # synchronising literal over the limit
])
check(b"b1 OK" in transcript, f"SELECT: {transcript!r}")
for tag in [b"b2 BAD", b"b3 BAD", b"b4 BAD", b"b5 BAD", b"* BAD", b"b6 BAD", b"b7 BAD", b"b8 NO [TOOBIG]"]:
    check(tag in transcript, f"{tag!r} in {transcript!r}")

# A literal larger than announced: the extra bytes are the next command's, which fails alone.
transcript = raw_session([
    b"c1 APPEND INBOX {10+}\r\nSubject: x\r\n\r\nmore than ten\r\n",
])
check(b"c1 OK [APPENDUID" in transcript, f"the announced 10 octets are the message: {transcript!r}")
check(b"* BAD" in transcript or b"BAD" in transcript.split(b"c1 OK")[1], f"the rest is a bad command: {transcript!r}")

# A non-synchronising literal over the limit is read and thrown away, the connection stays in step.
limit = int(os.environ["LITERAL_LIMIT"])
body = b"x" * (limit + 100)
transcript = raw_session([
    b"d1 APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n",
    b"d2 NOOP\r\n",
])
check(b"d1 NO [TOOBIG]" in transcript and b"d2 OK" in transcript, f"LITERAL+ over the limit: {transcript[:300]!r}")
# A line over the limit.
transcript = raw_session([b"e1 NOOP " + b"a" * 70000 + b"\r\n", b"e2 NOOP\r\n"])
check(b"e1 BAD" in transcript and b"e2 OK" in transcript, f"line too long: {transcript[:300]!r}")

print("all IMAP command checks passed")
