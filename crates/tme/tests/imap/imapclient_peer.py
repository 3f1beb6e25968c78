"""IMAPClient (PyPI `imapclient`) against tme: login over TLS with the certificate checked
against the test CA, LIST/SELECT, APPEND with flags and dates, FETCH of ENVELOPE,
BODYSTRUCTURE and BODY[] as IMAPClient parses them, SEARCH, SORT, THREAD, IDLE seeing a
delivery over SMTP as EXISTS, MOVE, CONDSTORE and QRESYNC as IMAPClient exposes them,
QUOTA, NAMESPACE and ID.

Run by crates/tme/tests/imap.rs. Environment: IMAPS_PORT, SMTP_PORT, USER_ADDRESS, PASSWORD,
CA_CERTIFICATE (the test CA that issued the node's certificate for `localhost`).
"""

import base64
import datetime
import os
import smtplib
import ssl
import sys

import imapclient
from imapclient.exceptions import IMAPClientError

PEER_TIMEOUT_SECONDS = 60
ATTACHMENT = b"binary \xff\xfe data"


def check(condition, what):
    if not condition:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def connect():
    # The certificate is checked: the test CA, and the name `localhost` (ssl's defaults).
    context = ssl.create_default_context(cafile=os.environ["CA_CERTIFICATE"])
    client = imapclient.IMAPClient("localhost", port=int(os.environ["IMAPS_PORT"]), ssl=True,
                                   ssl_context=context, timeout=PEER_TIMEOUT_SECONDS)
    client.login(os.environ["USER_ADDRESS"], os.environ["PASSWORD"])
    # Dates as the server gave them (with their offset), not turned into local time.
    client.normalise_times = False
    return client


def message(subject, message_id, body, references=None, date="Mon, 02 Jan 2023 10:00:00 +0000"):
    lines = [
        "From: Bob Example <bob@example.com>",
        f"To: {os.environ['USER_ADDRESS']}",
        f"Subject: {subject}",
        f"Message-ID: <{message_id}>",
        f"Date: {date}",
    ]
    if references:
        lines.append(f"References: {' '.join('<' + id + '>' for id in references)}")
        lines.append(f"In-Reply-To: <{references[-1]}>")
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


# A client that does not trust the test CA is refused by its own certificate check.
try:
    untrusting = imapclient.IMAPClient("localhost", port=int(os.environ["IMAPS_PORT"]), ssl=True,
                                       ssl_context=ssl.create_default_context(),
                                       timeout=PEER_TIMEOUT_SECONDS)
    untrusting.logout()
    check(False, "a client without the test CA refuses the certificate")
except ssl.SSLError:
    check(True, "a client without the test CA refuses the certificate")

client = connect()
capabilities = client.capabilities()
for wanted in (b"IMAP4REV2", b"IDLE", b"MOVE", b"CONDSTORE", b"QRESYNC", b"QUOTA", b"SORT",
               b"THREAD=REFERENCES", b"UIDPLUS"):
    check(wanted in capabilities, f"capability {wanted.decode()}")
check(client.has_capability("IDLE"), "has_capability")

namespace = client.namespace()
check(namespace.personal and namespace.personal[0][1] == "/", f"NAMESPACE: {namespace}")
server_id = client.id_({"name": "imapclient-test"})
check(server_id is not None, f"ID: {server_id}")

# ---- folders ----
client.create_folder("Projects")
check(client.folder_exists("Projects"), "CREATE and folder_exists")
folders = {name: flags for flags, delimiter, name in client.list_folders()}
check("INBOX" in folders and "Projects" in folders, f"LIST: {sorted(folders)}")
sent = client.find_special_folder(imapclient.imapclient.SENT)
check(sent is not None, f"a \\Sent folder by SPECIAL-USE: {sent}")

# ---- APPEND with flags and dates ----
when = datetime.datetime(2023, 1, 2, 10, 0, 0, tzinfo=datetime.timezone.utc)
raws = {
    "a": message("Plan", "a@example.com", "the plan"),
    "b": message("Re: Plan", "b@example.com", "looks good", references=["a@example.com"],
                 date="Mon, 02 Jan 2023 11:00:00 +0000"),
    "c": message("Re: Plan", "c@example.com", "one more thought",
                 references=["a@example.com", "b@example.com"],
                 date="Mon, 02 Jan 2023 12:00:00 +0000"),
    "d": message("Another topic", "d@example.com", "unrelated text",
                 date="Sun, 01 Jan 2023 09:00:00 +0000"),
}
appended = {}
for index, (key, raw) in enumerate(raws.items()):
    flags = (imapclient.SEEN,) if key == "a" else ((imapclient.FLAGGED, b"$Important") if key == "d" else ())
    response = client.append("INBOX", raw, flags=flags, msg_time=when + datetime.timedelta(hours=index))
    check(b"APPENDUID" in response, f"APPEND {key} answers APPENDUID: {response}")
    appended[key] = int(response.split(b"]")[0].split()[-1])

selected = client.select_folder("INBOX")
check(selected[b"EXISTS"] == 4 and b"UIDVALIDITY" in selected, f"SELECT: {selected}")
check(b"HIGHESTMODSEQ" in selected, f"SELECT reports HIGHESTMODSEQ (CONDSTORE): {selected}")

data = client.fetch([appended["a"], appended["d"]], ["FLAGS", "INTERNALDATE", "RFC822.SIZE"])
check(imapclient.SEEN in data[appended["a"]][b"FLAGS"], f"APPEND kept \\Seen: {data}")
check(set(data[appended["d"]][b"FLAGS"]) >= {imapclient.FLAGGED, b"$Important"},
      f"APPEND kept \\Flagged and a keyword: {data}")
internal = data[appended["d"]][b"INTERNALDATE"]
check(internal == when + datetime.timedelta(hours=3), f"APPEND kept the date as INTERNALDATE: {internal}")
check(data[appended["d"]][b"RFC822.SIZE"] == len(raws["d"]), "RFC822.SIZE is the appended size")

# ---- FETCH ENVELOPE, BODYSTRUCTURE, BODY[] ----
data = client.fetch(appended["b"], ["ENVELOPE", "BODYSTRUCTURE", "BODY.PEEK[]", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
item = data[appended["b"]]
envelope = item[b"ENVELOPE"]
check(envelope.subject == b"Re: Plan" and envelope.message_id == b"<b@example.com>"
      and envelope.in_reply_to == b"<a@example.com>", f"ENVELOPE fields: {envelope}")
check(envelope.from_[0].mailbox == b"bob" and envelope.from_[0].host == b"example.com"
      and envelope.from_[0].name == b"Bob Example", f"ENVELOPE From: {envelope.from_}")
check(envelope.date == datetime.datetime(2023, 1, 2, 11, 0, tzinfo=datetime.timezone.utc),
      f"ENVELOPE date: {envelope.date}")
structure = item[b"BODYSTRUCTURE"]
check(structure[0].lower() == b"text" and structure[1].lower() == b"plain" and not structure.is_multipart,
      f"BODYSTRUCTURE: {structure}")
check(item[b"BODY[]"] == raws["b"], "BODY[] byte for byte")
check(item[b"BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: Re: Plan\r\n\r\n",
      f"BODY[HEADER.FIELDS]: {item[b'BODY[HEADER.FIELDS (SUBJECT)]']!r}")
flags = client.get_flags(appended["b"])
check(imapclient.SEEN not in flags[appended["b"]], "BODY.PEEK leaves \\Seen alone")

# A multipart message's structure.
multipart = (b"From: bob@example.com\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
             b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
             b"--XX\r\nContent-Type: application/octet-stream; name=data.bin\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(ATTACHMENT)
             + b"\r\n--XX--\r\n")
response = client.append("Projects", multipart)
multipart_uid = int(response.split(b"]")[0].split()[-1])
client.select_folder("Projects")
structure = client.fetch(multipart_uid, ["BODYSTRUCTURE"])[multipart_uid][b"BODYSTRUCTURE"]
check(structure.is_multipart and structure[1].lower() == b"mixed" and len(structure[0]) == 2
      and structure[0][1][0].lower() == b"application", f"multipart BODYSTRUCTURE: {structure}")
# (8-bit octets but no NUL: IMAPClient does not parse the literal8 a NUL would need.)
binary = client.fetch(multipart_uid, ["BINARY.PEEK[2]", "BINARY.SIZE[2]"])[multipart_uid]
check(binary.get(b"BINARY[2]") == ATTACHMENT and binary.get(b"BINARY.SIZE[2]") == len(ATTACHMENT),
      f"BINARY[2] and BINARY.SIZE[2] undo base64: {binary}")
client.select_folder("INBOX")

# ---- SEARCH, SORT, THREAD ----
found = client.search(["SUBJECT", "Plan"])
check(sorted(found) == sorted([appended["a"], appended["b"], appended["c"]]), f"SEARCH SUBJECT: {found}")
found = client.search(["FLAGGED"])
check(found == [appended["d"]], f"SEARCH FLAGGED: {found}")
found = client.search(["UNSEEN", "BODY", "thought"])
check(found == [appended["c"]], f"SEARCH UNSEEN BODY: {found}")
found = client.search(["SINCE", datetime.date(2023, 1, 2)])
check(len(found) == 4, f"SEARCH SINCE (internal dates): {found}")
ordered = client.sort(["DATE"])
check(ordered == [appended["d"], appended["a"], appended["b"], appended["c"]], f"SORT DATE: {ordered}")
ordered = client.sort(["REVERSE", "SUBJECT"])
check(ordered[0] in (appended["a"], appended["b"], appended["c"]) and ordered[-1] == appended["d"],
      f"SORT REVERSE SUBJECT puts 'Another topic' last: {ordered}")
threads = client.thread("REFERENCES")
check(tuple(threads) == ((appended["d"],), (appended["a"], appended["b"], appended["c"])),
      f"THREAD REFERENCES: {threads}")
threads = client.thread("ORDEREDSUBJECT")
check(len(threads) == 2, f"THREAD ORDEREDSUBJECT: {threads}")

# ---- CONDSTORE / QRESYNC ----
status = client.folder_status("INBOX", ["MESSAGES", "UIDNEXT", "HIGHESTMODSEQ"])
modseq_before = status[b"HIGHESTMODSEQ"]
check(status[b"MESSAGES"] == 4, f"STATUS: {status}")
client.add_flags(appended["c"], [imapclient.ANSWERED])
changed = client.fetch(client.search(["ALL"]), ["FLAGS"], modifiers=[f"CHANGEDSINCE {modseq_before}"])
check(list(changed) == [appended["c"]] and imapclient.ANSWERED in changed[appended["c"]][b"FLAGS"]
      and b"MODSEQ" in changed[appended["c"]], f"FETCH CHANGEDSINCE reports only the change: {changed}")
found = client.search(["MODSEQ", str(modseq_before + 1)])
check(found == [appended["c"]], f"SEARCH MODSEQ: {found}")
# QRESYNC is ENABLEd in the authenticated state (RFC 7162 §3.2.3), before a SELECT.
qresync = connect()
enabled = qresync.enable("QRESYNC")
check([item.upper() for item in enabled] == [b"QRESYNC"], f"ENABLE QRESYNC: {enabled}")
selected = qresync.select_folder("INBOX")
check(selected[b"HIGHESTMODSEQ"] > modseq_before, f"SELECT after ENABLE QRESYNC: {selected}")
qresync.delete_messages(appended["c"])
qresync.expunge([appended["c"]])
check(qresync.folder_status("Projects", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"] > 0, "STATUS HIGHESTMODSEQ")
qresync.logout()
# The other session learns of the expunge (EXPUNGE, since it did not enable QRESYNC).
client.noop()
check(client.search(["ALL"]) == [appended["a"], appended["b"], appended["d"]],
      f"another session's expunge is seen: {client.search(['ALL'])}")

# ---- IDLE: a delivery over SMTP is seen as EXISTS ----
idler = connect()
idler.select_folder("INBOX")
idler.idle()
with smtplib.SMTP("127.0.0.1", int(os.environ["SMTP_PORT"]), timeout=PEER_TIMEOUT_SECONDS) as smtp:
    smtp.sendmail("carol@example.com", [os.environ["USER_ADDRESS"]],
                  message("while idling", "idle@example.com", "arrived during IDLE"))
responses = []
for _ in range(10):
    responses.extend(idler.idle_check(timeout=PEER_TIMEOUT_SECONDS / 10))
    if any(len(response) > 1 and response[1] == b"EXISTS" for response in responses):
        break
check((4, b"EXISTS") in responses, f"IDLE reports the delivery as EXISTS: {responses}")
text, done_responses = idler.idle_done()
check(idler.noop() is not None, f"the session goes on after IDLE ({text})")
idler.logout()

# ---- MOVE, delete, expunge ----
client.noop()
delivered = client.search(["SUBJECT", "while idling"])
check(len(delivered) == 1, f"the delivered message is there: {delivered}")
client.move(delivered, "Projects")
check(client.search(["SUBJECT", "while idling"]) == [], "MOVE removed it from INBOX")
projects = client.folder_status("Projects", ["MESSAGES"])
check(projects[b"MESSAGES"] == 2, f"MOVE put it in Projects: {projects}")
client.delete_messages(appended["d"])
client.expunge([appended["d"]])
check(client.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 2, "UID EXPUNGE of one message")

# ---- QUOTA ----
roots, quotas = client.get_quota_root("INBOX")
check(roots.mailbox == "INBOX" and roots.quota_roots == [""], f"GETQUOTAROOT: {roots}")
check(quotas and quotas[0].resource == "STORAGE" and quotas[0].limit > 0 and quotas[0].usage > 0,
      f"the account's STORAGE quota: {quotas}")
try:
    client.set_quota([imapclient.imapclient.Quota("", "STORAGE", 0, 1)])
    check(False, "SETQUOTA is refused")
except IMAPClientError as error:
    check(True, f"SETQUOTA is refused: {error}")

client.unselect_folder()
client.logout()
print("all imapclient checks passed")
