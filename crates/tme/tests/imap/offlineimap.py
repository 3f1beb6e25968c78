"""offlineimap (Debian's offlineimap3) syncs a mailbox between tme and a local Maildir both
ways: corpus messages come down byte for byte (after CRLF normalisation), then flags,
new messages and deletions made on either side meet after the next sync, checked on tme's
side with imaplib and on the other in the Maildir's files.

Run by crates/tme/tests/imap.rs. Environment: IMAPS_PORT, USER_ADDRESS, PASSWORD,
CA_CERTIFICATE (the test CA that issued the node's certificate for `localhost`), WORK_DIR,
CORPUS_FILES (a file listing corpus messages, one path a line; may be empty).
"""

import imaplib
import os
import re
import ssl
import subprocess
import sys

PEER_TIMEOUT_SECONDS = 180
WORK = os.environ["WORK_DIR"]
MAILDIR = os.path.join(WORK, "maildir")
CONTEXT = ssl.create_default_context(cafile=os.environ["CA_CERTIFICATE"])


def check(condition, what):
    if not condition:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def crlf(raw):
    """Every line end CRLF, with a final one: a message as IMAP carries it."""
    raw = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


def server():
    session = imaplib.IMAP4_SSL("localhost", int(os.environ["IMAPS_PORT"]), ssl_context=CONTEXT,
                                timeout=PEER_TIMEOUT_SECONDS)
    session.login(os.environ["USER_ADDRESS"], os.environ["PASSWORD"])
    return session


config = os.path.join(WORK, "offlineimaprc")
with open(config, "w") as file:
    file.write(f"""[general]
accounts = tme
metadata = {WORK}/offlineimap-state
ui = basic
socktimeout = 60

[Account tme]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {MAILDIR}

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = {os.environ["IMAPS_PORT"]}
ssl = yes
sslcacertfile = {os.environ["CA_CERTIFICATE"]}
remoteuser = {os.environ["USER_ADDRESS"]}
remotepass = {os.environ["PASSWORD"]}
folderfilter = lambda name: name in ["INBOX", "Projects"]
""")


def sync():
    result = subprocess.run(["offlineimap", "-c", config, "-o", "-u", "basic"], capture_output=True,
                            text=True, timeout=PEER_TIMEOUT_SECONDS, env={**os.environ, "HOME": WORK})
    output = result.stdout + result.stderr
    print(output[-4000:])
    check(result.returncode == 0 and "ERROR" not in output, f"offlineimap exit status {result.returncode}")
    return output


def local_messages(folder):
    """Message file path -> (bytes, flags) in the Maildir folder."""
    found = {}
    for sub in ("cur", "new"):
        path = os.path.join(MAILDIR, folder, sub)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            flags = name.split(":2,", 1)[1] if ":2," in name else ""
            with open(full, "rb") as file:
                found[full] = (file.read(), flags)
    return found


MAILDIR_FLAGS = {"S": "\\Seen", "F": "\\Flagged", "R": "\\Answered", "D": "\\Draft", "T": "\\Deleted"}


def message_id(raw):
    match = re.search(rb"^Message-ID:\s*(<[^>\r\n]*>)", raw, re.IGNORECASE | re.MULTILINE)
    return match.group(1).decode("latin-1") if match else None


def local_state(folder):
    """Message-ID -> set of IMAP flags, from the Maildir."""
    return {message_id(raw): {MAILDIR_FLAGS[letter] for letter in flags if letter in MAILDIR_FLAGS}
            for raw, flags in local_messages(folder).values()}


def server_state(session, folder):
    """Message-ID -> set of system flags, from tme."""
    session.select(folder, readonly=True)
    typ, data = session.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    state = {}
    if typ != "OK" or data == [None]:
        return state
    for item in data:
        if not isinstance(item, tuple):
            continue
        flags = set(re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split())
        state[message_id(item[1])] = {flag for flag in flags if flag in MAILDIR_FLAGS.values()}
    return state


def made(subject, identifier):
    return (f"From: peer@example.com\r\nTo: {os.environ['USER_ADDRESS']}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{identifier}>\r\nDate: Mon, 02 Jan 2023 10:00:00 +0000\r\n\r\n{subject}\r\n").encode()


# ---- the server holds the corpus messages and a few of our own ----
remote = server()
corpus = []
with open(os.environ["CORPUS_FILES"]) as listing:
    for path in filter(None, (line.strip() for line in listing)):
        with open(path, "rb") as file:
            corpus.append(crlf(file.read()))
appended = [remote.append("INBOX", None, None, raw)[0] for raw in corpus]
check(appended == ["OK"] * len(corpus), f"APPEND of {len(corpus)} corpus messages")
remote.append("INBOX", "(\\Flagged)", None, made("kept and flagged", "kept@example.com"))
remote.append("INBOX", None, None, made("read on the client", "read@example.com"))
remote.append("INBOX", None, None, made("deleted on the client", "gone-local@example.com"))
remote.append("INBOX", None, None, made("deleted on the server", "gone-remote@example.com"))
remote.create("Projects")
remote.append("Projects", "(\\Seen)", None, made("project plan", "plan@example.com"))
expected_inbox = len(corpus) + 4

sync()
inbox = local_messages("INBOX")
check(len(inbox) == expected_inbox, f"every INBOX message came down: {len(inbox)} of {expected_inbox}")
check(len(local_messages("Projects")) == 1, "the Projects folder came down")
local_normalised = sorted(crlf(raw) for raw, _ in inbox.values())
for raw in corpus:
    check(raw in local_normalised, f"corpus message of {len(raw)} octets came down byte for byte")
check(local_state("INBOX") == server_state(remote, "INBOX"), "both sides agree after the first sync")
check(local_state("INBOX")["<kept@example.com>"] == {"\\Flagged"}, "the server's \\Flagged came down")

# ---- changes on both sides ----
for path, (raw, flags) in local_messages("INBOX").items():
    identifier = message_id(raw)
    folder, name = os.path.split(path)
    base = name.split(":2,", 1)[0]
    if identifier == "<read@example.com>":
        # Read and answered on the client: the flags go into the file name (cur/).
        os.rename(path, os.path.join(MAILDIR, "INBOX", "cur", base + ":2,RS"))
    elif identifier == "<gone-local@example.com>":
        os.remove(path)
with open(os.path.join(MAILDIR, "INBOX", "new", "1700000000.written-locally.host"), "wb") as file:
    file.write(made("written on the client", "local@example.com"))
remote.select("INBOX")
typ, data = remote.search(None, "HEADER", "Message-ID", "gone-remote@example.com")
check(typ == "OK" and data[0], f"found the message to delete on the server: {data}")
remote.store(data[0], "+FLAGS", "(\\Deleted)")
remote.expunge()
typ, data = remote.search(None, "HEADER", "Message-ID", "kept@example.com")
remote.store(data[0], "+FLAGS", "(\\Seen)")
remote.append("INBOX", None, None, made("new on the server", "remote-new@example.com"))
remote.close()

sync()
sync()  # a second sync with nothing new changes nothing
local = local_state("INBOX")
remote_now = server_state(remote, "INBOX")
check(local == remote_now, f"both sides agree after changes on both:\n{local}\n{remote_now}")
check("<gone-local@example.com>" not in remote_now, "the client's deletion reached the server")
check("<gone-remote@example.com>" not in local, "the server's expunge reached the client")
check(remote_now.get("<read@example.com>") == {"\\Seen", "\\Answered"}, "the client's flags reached the server")
check(local.get("<kept@example.com>") == {"\\Seen", "\\Flagged"}, "the server's \\Seen reached the client")
check("<local@example.com>" in remote_now and "<remote-new@example.com>" in local,
      "new messages went both ways")
typ, data = remote.select("INBOX", readonly=True)
check(len(local_messages("INBOX")) == expected_inbox and int(data[0]) == expected_inbox,
      f"{expected_inbox} messages on each side: {len(local_messages('INBOX'))} and {data}")
typ, data = remote.search(None, "HEADER", "Message-ID", "local@example.com")
typ, data = remote.fetch(data[0], "(BODY.PEEK[TEXT])")
check(data[0][1] == b"written on the client\r\n", f"the client's message body on the server: {data[0][1]!r}")
check(local_state("Projects") == server_state(remote, "Projects") == {"<plan@example.com>": {"\\Seen"}},
      "Projects agrees")
remote.logout()
print("all offlineimap checks passed")
