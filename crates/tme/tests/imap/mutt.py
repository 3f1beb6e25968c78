"""mutt (Debian's, built with GnuTLS) reads a mailbox on tme over IMAPS, its certificate
checked against the test CA: the message list shows the subjects of delivered messages, a
message opens, one is deleted and the mailbox synced; imaplib then checks the server.

mutt needs a terminal: it runs under a pseudo-terminal (pexpect), every wait bounded.
Run by crates/tme/tests/imap.rs. Environment: IMAPS_PORT, SMTP_PORT, USER_ADDRESS, PASSWORD,
CA_CERTIFICATE (the test CA that issued the node's certificate for `localhost`), WORK_DIR.
"""

import imaplib
import os
import smtplib
import ssl
import sys

import pexpect

STEP_TIMEOUT_SECONDS = 30
WORK = os.environ["WORK_DIR"]
CONTEXT = ssl.create_default_context(cafile=os.environ["CA_CERTIFICATE"])
SUBJECTS = ["mutt-alpha", "mutt-bravo", "mutt-charlie"]


def check(condition, what):
    if not condition:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def server():
    session = imaplib.IMAP4_SSL("localhost", int(os.environ["IMAPS_PORT"]), ssl_context=CONTEXT,
                                timeout=STEP_TIMEOUT_SECONDS)
    session.login(os.environ["USER_ADDRESS"], os.environ["PASSWORD"])
    return session


# Delivered over SMTP, as mail arrives.
with smtplib.SMTP("127.0.0.1", int(os.environ["SMTP_PORT"]), timeout=STEP_TIMEOUT_SECONDS) as smtp:
    for day, subject in enumerate(SUBJECTS, start=2):
        smtp.sendmail("bob@example.com", [os.environ["USER_ADDRESS"]],
                      (f"From: bob@example.com\r\nTo: {os.environ['USER_ADDRESS']}\r\n"
                       f"Subject: {subject}\r\nMessage-ID: <{subject}@example.com>\r\n"
                       f"Date: Mon, {day:02} Jan 2023 10:00:00 +0000\r\n\r\n"
                       f"body-of-{subject}\r\n").encode())

muttrc = os.path.join(WORK, "muttrc")
with open(muttrc, "w") as file:
    file.write(f"""set folder = "imaps://localhost:{os.environ["IMAPS_PORT"]}/"
set spoolfile = "+INBOX"
set imap_user = "{os.environ["USER_ADDRESS"]}"
set imap_pass = "{os.environ["PASSWORD"]}"
set ssl_ca_certificates_file = "{os.environ["CA_CERTIFICATE"]}"
set certificate_file = "{WORK}/mutt-certificates"
set ssl_verify_host = yes
set ssl_force_tls = yes
set header_cache = ""
set message_cachedir = ""
set sort = date-sent
set index_format = "%4C %s"
set delete = yes
set quit = yes
set move = no
set mark_old = no
set wait_key = no
set pager_stop = yes
set imap_keepalive = 60
set timeout = 5
""")

mutt = pexpect.spawn("mutt", ["-n", "-F", muttrc], cwd=WORK, timeout=STEP_TIMEOUT_SECONDS,
                     dimensions=(40, 160), env={**os.environ, "TERM": "vt100", "HOME": WORK},
                     encoding="utf-8", codec_errors="replace")
mutt.logfile_read = open(os.path.join(WORK, "mutt-screen.log"), "w")


def expect(pattern, what):
    # A certificate prompt would mean the CA was not used: fail rather than wait.
    index = mutt.expect([pattern, r"\(r\)eject", pexpect.EOF, pexpect.TIMEOUT])
    check(index == 0, f"{what} (matched {['it', 'a certificate prompt', 'EOF', 'timeout'][index]})")


try:
    # The index: every subject on the screen (the certificate verified without a question).
    for subject in SUBJECTS:
        expect(subject, f"the message list shows {subject}")
    # Open mutt-bravo: search for it, display it.
    mutt.send("/")
    expect("Search for", "the search prompt")
    mutt.send("mutt-bravo\r")
    mutt.send("\r")
    expect("body-of-mutt-bravo", "mutt-bravo opens and shows its body")
    mutt.send("q")
    # Delete mutt-charlie and sync the mailbox ($): mutt stores \Deleted and expunges.
    mutt.send("/")
    expect("Search for", "the search prompt again")
    mutt.send("mutt-charlie\r")
    mutt.send("d")
    mutt.send("$")
    expect(r"[Ss]orting mailbox|Mailbox|[Pp]urg|2 (msgs|messages)|mutt-alpha", "the sync ran")
    mutt.send("q")
    index = mutt.expect([pexpect.EOF, pexpect.TIMEOUT])
    check(index == 0, "mutt quits")
finally:
    mutt.close(force=True)

remote = server()
typ, data = remote.select("INBOX", readonly=True)
check(data == [b"2"], f"two messages left on the server: {data}")
typ, data = remote.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
answers = {item[1].decode().split(":", 1)[1].strip(): item[0].decode() for item in data if isinstance(item, tuple)}
check(set(answers) == {"mutt-alpha", "mutt-bravo"}, f"mutt-charlie was deleted on the server: {answers}")
check("\\Seen" in answers["mutt-bravo"], f"the message mutt opened is \\Seen: {answers}")
check("\\Seen" not in answers["mutt-alpha"], f"the one it did not open is not: {answers}")
remote.logout()
print("all mutt checks passed")
