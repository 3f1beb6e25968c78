"""The IMAP peers the Python tests talk to: tme over implicit TLS, and a private Dovecot
(Debian's dovecot-imapd: its `imap` binary run pre-authenticated over a pipe, with a
Maildir in a temporary folder, no daemon) to compare tme's answers with.

Environment: IMAPS_PORT, USER_ADDRESS, PASSWORD, WORK_DIR.
"""

import imaplib
import os
import ssl
import subprocess
import sys

CONTEXT = ssl.create_default_context()
CONTEXT.check_hostname = False
CONTEXT.verify_mode = ssl.CERT_NONE


def check(condition, what):
    """Prints `ok: what`, or fails the script with `FAILED: what`."""
    if not condition:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def tme(timeout=None):
    session = imaplib.IMAP4_SSL("127.0.0.1", int(os.environ["IMAPS_PORT"]), ssl_context=CONTEXT,
                                timeout=timeout)
    session.login(os.environ["USER_ADDRESS"], os.environ["PASSWORD"])
    return session


def dovecot(name="dovecot"):
    """A fresh Dovecot session on its own empty Maildir under WORK_DIR/name."""
    work = os.environ["WORK_DIR"]
    home = os.path.join(work, name)
    mail = os.path.join(home, "mail")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(mail, sub), exist_ok=True)
    config = os.path.join(home, "dovecot.conf")
    with open(config, "w") as file:
        file.write(f"""mail_location = maildir:{mail}:LAYOUT=fs:INBOX={mail}
base_dir = {home}/run
log_path = {home}/log
ssl = no
mail_uid = nobody
mail_gid = nogroup
""")
    subprocess.run(["chown", "-R", "nobody:nogroup", home], check=True)
    os.chmod(work, 0o755)
    os.chmod(home, 0o755)
    return imaplib.IMAP4_stream(f"env USER=tester HOME={home} /usr/lib/dovecot/imap -c {config}")
