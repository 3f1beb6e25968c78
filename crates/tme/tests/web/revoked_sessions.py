"""Sessions end when their secret is taken away, checked with Python's standard clients: an
app password made in the webmail's settings (urllib) opens a web session, an IMAP session
(imaplib), an IMAP session waiting in IDLE, a POP3 session (poplib) and a submission session
(smtplib, which sends with it); another IMAP session logs in with the account's password.
The app password is revoked in the settings: its web session is logged out at once; within
seconds the IMAP session gets BYE at its next command, the IDLE session gets BYE unasked, the POP3 session an -ERR [AUTH] and the
connection closed (with nothing deleted), the submission session 530 at its next MAIL; the
password's session goes on. The password is then changed in the settings, and the
password's session ends too.

Environment: HTTP_PORT, IMAPS_PORT, POP3S_PORT, SUBMISSIONS_PORT, CERTIFICATE,
USER_ADDRESS, PASSWORD.
"""

import imaplib
import os
import poplib
import re
import smtplib
import ssl
import time
from email.message import EmailMessage

from http_client import Client, csrf_of, settings

ADDRESS = os.environ["USER_ADDRESS"]
PASSWORD = os.environ["PASSWORD"]
NEW_PASSWORD = "another long enough password"
CONTEXT = ssl.create_default_context(cafile=os.environ["CERTIFICATE"])
CONTEXT.check_hostname = False
# The server looks at a session's credential at most every 5 s, through the directory's
# generation, which the node keeps 2 s; a little more than both.
RECHECK_WAIT_SECONDS = 7.5
# How long an IDLE session may take to be told (its poll, plus the recheck).
IDLE_WAIT_SECONDS = 30


def imap_session(password):
    client = imaplib.IMAP4_SSL("127.0.0.1", int(os.environ["IMAPS_PORT"]), ssl_context=CONTEXT)
    client.login(ADDRESS, password)
    status, _ = client.select("INBOX")
    assert status == "OK"
    return client


def message(subject):
    mail = EmailMessage()
    mail["From"] = ADDRESS
    mail["To"] = ADDRESS
    mail["Subject"] = subject
    mail.set_content("Sent with an app password.\n")
    return mail


def start_idle(client):
    """Sends IDLE by hand (imaplib has no IDLE before Python 3.14) and reads `+ idling`."""
    tag = client._new_tag().decode()
    client.send(f"{tag} IDLE\r\n".encode())
    line = client.readline()
    assert line.startswith(b"+"), line
    return tag


def wait_for_bye(client):
    """Lines the server sends unasked until BYE (or the connection ends)."""
    client.sock.settimeout(IDLE_WAIT_SECONDS)
    lines = []
    deadline = time.monotonic() + IDLE_WAIT_SECONDS
    while time.monotonic() < deadline:
        line = client.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(b"* BYE"):
            return lines
    raise AssertionError(f"no BYE while idling: {lines}")


def main():
    user = Client()
    user.login(ADDRESS, PASSWORD)
    csrf = csrf_of(settings(user))
    page = user.request("/settings/app-passwords", {"csrf": csrf, "label": "Phone"},
                        follow=False)[2]
    app_password = re.search(r'<code id="new-app-password">([a-z0-9-]+)</code>', page).group(1)
    revoke = None
    for row in re.findall(r"<tr>.*?</tr>", page, re.S):
        if "Phone" in row:
            revoke = re.search(r'action="(/settings/app-passwords/\d+/revoke)"', row).group(1)
    assert revoke, page

    phone_web = Client()
    phone_web.login(ADDRESS, app_password)
    by_app = imap_session(app_password)
    idling = imap_session(app_password)
    start_idle(idling)
    by_password = imap_session(PASSWORD)
    pop = poplib.POP3_SSL("127.0.0.1", int(os.environ["POP3S_PORT"]), context=CONTEXT)
    pop.user(ADDRESS)
    pop.pass_(app_password)
    count_before, _ = pop.stat()
    submission = smtplib.SMTP_SSL("127.0.0.1", int(os.environ["SUBMISSIONS_PORT"]),
                                  context=CONTEXT, timeout=30)
    submission.login(ADDRESS, app_password)
    submission.send_message(message("Before the revocation"))
    print("app password: IMAP, IDLE, POP3 and submission sessions open")

    status, _, _, _ = user.request(revoke, {"csrf": csrf}, follow=False)
    assert status == 303, status
    # The web session it opened is gone with it, at once; the password's goes on.
    status, _, page, url = phone_web.request("/mail")
    assert url.endswith("/login"), (status, url)
    assert settings(user), "the password's web session goes on"
    time.sleep(RECHECK_WAIT_SECONDS)

    try:
        by_app.noop()
        raise AssertionError("the IMAP session of a revoked app password goes on")
    except imaplib.IMAP4.abort as error:
        assert "revoked" in str(error), error
    lines = wait_for_bye(idling)
    assert b"revoked" in lines[-1], lines
    try:
        pop.stat()
        raise AssertionError("the POP3 session of a revoked app password goes on")
    except poplib.error_proto as error:
        assert str(error).startswith("b'-ERR [AUTH]"), error
    try:
        submission.send_message(message("After the revocation"))
        raise AssertionError("the submission session of a revoked app password sends")
    except smtplib.SMTPSenderRefused as error:
        assert error.smtp_code == 530, error
    submission.close()
    status, _ = by_password.noop()
    assert status == "OK", "the password's session is not concerned"
    print("revoked: IMAP and IDLE got BYE, POP3 -ERR [AUTH], submission 530; "
          "the password's session goes on")

    # Nothing was deleted by the POP3 session that ended without QUIT.
    pop = poplib.POP3_SSL("127.0.0.1", int(os.environ["POP3S_PORT"]), context=CONTEXT)
    pop.user(ADDRESS)
    pop.pass_(PASSWORD)
    count_after, _ = pop.stat()
    assert count_after >= count_before, (count_before, count_after)
    pop.quit()

    # A changed password ends the sessions it opened.
    csrf = csrf_of(settings(user))
    status, headers, page, _ = user.request(
        "/settings/password",
        {"csrf": csrf, "current_password": PASSWORD, "new_password": NEW_PASSWORD,
         "confirm_password": NEW_PASSWORD},
        follow=False)
    assert status == 303 and headers["Location"] == "/settings?done=password", (status, page)
    time.sleep(RECHECK_WAIT_SECONDS)
    try:
        by_password.noop()
        raise AssertionError("the session of a changed password goes on")
    except imaplib.IMAP4.abort as error:
        assert "revoked" in str(error), error
    imap_session(NEW_PASSWORD).logout()
    print("changed password: its session got BYE; the new password logs in")

    # The IMAP sessions ended so are counted as such: the one between commands, the one in
    # IDLE, the password's.
    status, _, metrics, _ = Client().request("/metrics")
    assert status == 200, status
    revoked = [line for line in metrics.splitlines()
               if line.startswith("tme_imap_sessions_ended_total{") and 'outcome="revoked"' in line]
    assert revoked and revoked[0].endswith(" 3"), revoked


if __name__ == "__main__":
    main()
