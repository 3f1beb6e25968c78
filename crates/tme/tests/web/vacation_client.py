"""The vacation auto-reply, set through the webmail's settings form with Python's standard
HTTP client (urllib), exercised with the standard SMTP client (smtplib, to the MX port) and
checked with the standard IMAP client (imaplib) in the senders' mailboxes: the form is
refused without its CSRF token; once on, a message from another account gets exactly one
reply (to the envelope sender, from the null sender, `Auto-Submitted: auto-replied`, the
user's subject, `In-Reply-To` the original); a second message from the same sender gets
none (one reply per sender per week); a message to an alias of the account is answered (the
alias names the account); so is one sent by a user of this node through submission
(smtplib with AUTH, stored locally by the submission pipeline); a `Precedence: bulk` message gets none; turned off, nothing is
answered.

Environment: HTTP_PORT, SMTP_PORT, IMAPS_PORT, CERTIFICATE, USER_ADDRESS, PASSWORD,
OTHER_ADDRESS, THIRD_ADDRESS, FOURTH_ADDRESS, FIFTH_ADDRESS, OTHERS_PASSWORD, ALIAS_ADDRESS
(an alias of USER_ADDRESS), SUBMISSIONS_PORT.
"""

import email
import email.policy
import imaplib
import os
import smtplib
import ssl
import time
from email.message import EmailMessage

from http_client import Client, csrf_of, settings

ADDRESS = os.environ["USER_ADDRESS"]
PASSWORD = os.environ["PASSWORD"]
OTHER = os.environ["OTHER_ADDRESS"]
THIRD = os.environ["THIRD_ADDRESS"]
FOURTH = os.environ["FOURTH_ADDRESS"]
FIFTH = os.environ["FIFTH_ADDRESS"]
ALIAS = os.environ["ALIAS_ADDRESS"]
OTHERS_PASSWORD = os.environ["OTHERS_PASSWORD"]
CONTEXT = ssl.create_default_context(cafile=os.environ["CERTIFICATE"])
CONTEXT.check_hostname = False
SUBJECT = "Away until Monday"
BODY = "I am away until Monday.\nÀ bientôt."
REPLY_WAIT_SECONDS = 30
# How long to watch for a reply that must not come.
QUIET_SECONDS = 4


def set_vacation(client, fields, with_csrf=True):
    if with_csrf:
        fields = dict(fields, csrf=csrf_of(settings(client)))
    status, headers, page, _ = client.request("/settings/vacation", fields, follow=False)
    return status, headers, page


def send(sender, subject, message_id, extra=None, to=ADDRESS):
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id
    for name, value in (extra or {}).items():
        message[name] = value
    message.set_content("Are you there?\n")
    with smtplib.SMTP("127.0.0.1", int(os.environ["SMTP_PORT"]), timeout=30) as client:
        client.send_message(message, from_addr=sender, to_addrs=[to])


def submit(sender, subject, message_id):
    """Sent by a user of this node through the submission port, as a mail program would."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ADDRESS
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content("Are you in the office?\n")
    with smtplib.SMTP_SSL("127.0.0.1", int(os.environ["SUBMISSIONS_PORT"]), context=CONTEXT,
                          timeout=30) as client:
        client.login(sender, OTHERS_PASSWORD)
        client.send_message(message)


def replies(address):
    """The auto-replies in `address`'s INBOX, parsed."""
    client = imaplib.IMAP4_SSL("127.0.0.1", int(os.environ["IMAPS_PORT"]), ssl_context=CONTEXT)
    try:
        client.login(address, OTHERS_PASSWORD)
        client.select("INBOX", readonly=True)
        status, data = client.uid("SEARCH", None, "HEADER", "Auto-Submitted", "auto-replied")
        assert status == "OK", data
        found = []
        for uid in data[0].split():
            status, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
            assert status == "OK", fetched
            found.append(email.message_from_bytes(fetched[0][1], policy=email.policy.default))
        return found
    finally:
        client.logout()


def wait_for_replies(address, count):
    deadline = time.monotonic() + REPLY_WAIT_SECONDS
    while True:
        found = replies(address)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def main():
    user = Client()
    user.login(ADDRESS, PASSWORD)
    page = settings(user)
    assert ">Vacation reply</h2>" in page, page
    for field in ["vacation_enabled", "vacation_subject", "vacation_body",
                  "vacation_first_day", "vacation_last_day"]:
        assert f'label for="{field}"' in page and f'id="{field}"' in page, (field, page)
    assert 'id="vacation-state" role="status">Off.' in page, page

    on = {"enabled": "on", "subject": SUBJECT, "body": BODY, "first_day": "", "last_day": ""}
    status, _, _ = set_vacation(user, dict(on, csrf="0" * 64), with_csrf=False)
    assert status == 403, status
    assert 'id="vacation-state" role="status">Off.' in settings(user)
    status, _, _ = set_vacation(user, dict(on, first_day="2030-02-01", last_day="2030-01-01"))
    assert status == 303
    assert 'id="vacation-state" role="status">Off.' in settings(user), "bad dates change nothing"
    status, headers, page = set_vacation(user, on)
    assert status == 303 and headers["Location"] == "/settings?done=vacation", (status, page)
    _, _, page, _ = user.request(headers["Location"])
    assert "Vacation reply saved." in page, page
    assert 'id="vacation-state" role="status">On: ' in page, page
    assert f'value="{SUBJECT}"' in page and "À bientôt." in page, page

    # The first message from a sender is answered, once.
    send(OTHER, "Question 1", "<question-1@example.org>")
    found = wait_for_replies(OTHER, 1)
    assert len(found) == 1, [str(reply) for reply in found]
    reply = found[0]
    assert reply["Auto-Submitted"] == "auto-replied", str(reply)
    assert reply["Subject"] == SUBJECT, str(reply)
    assert reply["In-Reply-To"] == "<question-1@example.org>", str(reply)
    assert "<question-1@example.org>" in reply["References"], str(reply)
    assert reply["From"].addresses[0].addr_spec == ADDRESS, str(reply)
    assert reply["To"].addresses[0].addr_spec == OTHER, str(reply)
    assert reply["Return-Path"] == "<>", str(reply)
    assert reply.get_content().strip() == BODY.replace("\n", "\r\n").strip() or \
        reply.get_content().replace("\r\n", "\n").strip() == BODY, reply.get_content()

    # A second message from the same sender within the week: no second reply.
    send(OTHER, "Question 2", "<question-2@example.org>")
    time.sleep(QUIET_SECONDS)
    assert len(replies(OTHER)) == 1, "one reply per sender per week"

    # Mail to an alias of the account names the account: it is answered too.
    send(FOURTH, "Question to the desk", "<desk-1@example.org>", to=ALIAS)
    found = wait_for_replies(FOURTH, 1)
    assert len(found) == 1, [str(reply) for reply in found]
    assert found[0]["In-Reply-To"] == "<desk-1@example.org>", str(found[0])
    assert found[0]["To"].addresses[0].addr_spec == FOURTH, str(found[0])

    # A user of this node writing through submission: the pipeline's local copy is answered.
    submit(FIFTH, "From the office", "<office-1@example.org>")
    found = wait_for_replies(FIFTH, 1)
    assert len(found) == 1, [str(reply) for reply in found]
    assert found[0]["In-Reply-To"] == "<office-1@example.org>", str(found[0])

    # Bulk mail is never answered.
    send(THIRD, "Newsletter", "<newsletter-1@example.org>", {"Precedence": "bulk"})
    time.sleep(QUIET_SECONDS)
    assert replies(THIRD) == [], "no reply to Precedence: bulk"

    # Turned off (the checkbox left out): nothing is answered.
    status, headers, _ = set_vacation(user, {"subject": SUBJECT, "body": BODY})
    assert status == 303 and headers["Location"] == "/settings?done=vacation", status
    assert 'id="vacation-state" role="status">Off.' in settings(user)
    send(THIRD, "Question 3", "<question-3@example.org>")
    time.sleep(QUIET_SECONDS)
    assert replies(THIRD) == [], "no reply once turned off"
    print("vacation reply: ok")


if __name__ == "__main__":
    main()
