"""mbsync (isync) syncs a mailbox with tme both ways: messages, flags, expunges, folders,
over COMPRESS=DEFLATE (isync uses it when the server offers it).

Run by crates/tme/tests/imap.rs. Environment: IMAPS_PORT, USER_ADDRESS, PASSWORD,
CERTIFICATE (the node's certificate, which mbsync is told to trust), WORK_DIR.
"""

import os
import re
import subprocess

from peers import check, tme

WORK = os.environ["WORK_DIR"]
MAILDIR = os.path.join(WORK, "mail")


config = os.path.join(WORK, "mbsyncrc")
with open(config, "w") as file:
    file.write(f"""IMAPAccount tme
Host 127.0.0.1
Port {os.environ["IMAPS_PORT"]}
User {os.environ["USER_ADDRESS"]}
Pass "{os.environ["PASSWORD"]}"
SSLType IMAPS
CertificateFile {os.environ["CERTIFICATE"]}
PipelineDepth 10

IMAPStore remote
Account tme

MaildirStore local
Path {MAILDIR}/
Inbox {MAILDIR}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Projects
Create Both
Expunge Both
SyncState *
""")


def sync(network_debug=False):
    if os.environ.get("MBSYNC_DEBUG"):
        arguments = ["-D"]
    elif network_debug:
        # The IMAP conversation, as mbsync sees it (after inflating).
        arguments = ["-Dn"]
    else:
        arguments = ["-V"]
    result = subprocess.run(["mbsync", "-c", config, *arguments, "sync"], capture_output=True, text=True, timeout=120)
    print(result.stdout[-6000:], result.stderr[-6000:])
    check(result.returncode == 0, f"mbsync exit status {result.returncode}")
    return result.stdout + result.stderr


def local_files(folder):
    found = []
    for sub in ("cur", "new"):
        path = os.path.join(MAILDIR, folder, sub)
        if os.path.isdir(path):
            found.extend(os.path.join(path, name) for name in sorted(os.listdir(path)))
    return found


remote = tme()
remote.append("INBOX", "(\\Flagged)", None, b"From: far@example.com\r\nSubject: from the server\r\nMessage-ID: <far@example.com>\r\n\r\nfar body\r\n")
remote.create("Projects")
remote.append("Projects", None, None, b"Subject: project plan\r\nMessage-ID: <plan@example.com>\r\n\r\nplan\r\n")

# A local message to upload, in a Maildir mbsync will create the rest of.
os.makedirs(os.path.join(MAILDIR, "INBOX", "cur"))
os.makedirs(os.path.join(MAILDIR, "INBOX", "new"))
os.makedirs(os.path.join(MAILDIR, "INBOX", "tmp"))
with open(os.path.join(MAILDIR, "INBOX", "cur", "1700000000.local.host:2,S"), "wb") as file:
    file.write(b"From: near@example.com\r\nSubject: from the client\r\nMessage-ID: <near@example.com>\r\n\r\nnear body\r\n")

conversation = sync(network_debug=True)
# isync (built with zlib) asks for COMPRESS=DEFLATE when offered: everything after is deflate.
lines = conversation.splitlines()
asked = [index for index, line in enumerate(lines) if re.fullmatch(r">>> \d+ COMPRESS DEFLATE", line)]
check(asked and re.fullmatch(r"\d+ OK DEFLATE active", lines[asked[0] + 1])
      and any(line.startswith(">>> ") for line in lines[asked[0] + 2:]),
      f"mbsync compressed the connection and went on talking: {lines[asked[0]:asked[0] + 4] if asked else lines[:20]}")
inbox = local_files("INBOX")
check(len(inbox) == 2, f"INBOX has both messages locally: {inbox}")
far = [path for path in inbox if b"far body" in open(path, "rb").read()]
check(len(far) == 1 and far[0].endswith("F") and ":2," in far[0], f"the server's message arrived flagged: {far}")
check(len(local_files("Projects")) == 1, "the Projects folder came down")

remote.select("INBOX")
typ, data = remote.search(None, "SUBJECT", '"from the client"')
check(typ == "OK" and data[0] != b"", f"the client's message is on the server: {data}")
uploaded = data[0].split()[0]
typ, data = remote.fetch(uploaded, "(FLAGS)")
check(b"\\Seen" in data[0], f"with its \\Seen flag: {data}")

# Flags both ways: the client marks the server's message seen; the server flags the client's.
# (Maildir: a message read by the client moves to cur/ with the flag in its name.)
os.rename(far[0], os.path.join(MAILDIR, "INBOX", "cur", os.path.basename(far[0]) + "S"))
remote.store(uploaded, "+FLAGS", "(\\Answered)")
sync()
typ, data = remote.search(None, "SUBJECT", '"from the server"', "SEEN")
check(data[0] != b"", f"the client's \\Seen reached the server: {data}")
near = [path for path in local_files("INBOX") if b"near body" in open(path, "rb").read()]
check(len(near) == 1 and "R" in near[0].split(":2,")[1], f"the server's \\Answered reached the client: {near}")

# Expunges both ways.
remote.store(uploaded, "+FLAGS", "(\\Deleted)")
remote.expunge()
projects = local_files("Projects")
os.remove(projects[0])
sync()
check(len(local_files("INBOX")) == 1, f"the server's expunge removed the local copy: {local_files('INBOX')}")
data = remote.status("Projects", "(MESSAGES)")[1]
check(b"MESSAGES 0" in data[0], f"the client's deletion expunged on the server: {data}")

sync()  # a second sync with nothing new changes nothing
check(len(local_files("INBOX")) == 1, "a sync with nothing new changes nothing")
remote.logout()
print("all mbsync checks passed")
