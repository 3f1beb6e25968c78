"""Submission with Python's smtplib over 587 (STARTTLS) and 465 (implicit TLS).

Every refusal a user can meet is asked for here and checked by its code: AUTH before TLS,
MAIL before AUTH, wrong password, bad base64, a cancelled exchange, forged envelope senders
and forged authors. Accepted messages go to the remote sink (checked by the Rust side).
"""

import base64
import os
import smtplib
import ssl

HOST = "127.0.0.1"
SUBMISSION = int(os.environ["SUBMISSION_PORT"])
SUBMISSIONS = int(os.environ["SUBMISSIONS_PORT"])
USER = os.environ["USER_ADDRESS"]
PASSWORD = os.environ["PASSWORD"]
APP_PASSWORD = os.environ["APP_PASSWORD"]


def context():
    tls = ssl.create_default_context(cafile=os.environ["CERTIFICATE"])
    tls.check_hostname = False
    return tls


def message(author, subject, extra=""):
    return (
        f"From: {author}\r\nTo: friend@remote.test\r\nSubject: {subject}\r\n{extra}"
        "\r\nbody of " + subject + "\r\n"
    )


def expect_code(code, function, *arguments):
    try:
        result = function(*arguments)
    except smtplib.SMTPResponseException as error:
        assert error.smtp_code == code, (function, error.smtp_code, error.smtp_error)
        return error.smtp_error
    except smtplib.SMTPSenderRefused as error:
        assert error.smtp_code == code, (function, error.smtp_code, error.smtp_error)
        return error.smtp_error
    raise AssertionError(f"{function} succeeded: {result!r}, {code} expected")


# 587 in plain text: no AUTH offered, AUTH refused with 538, MAIL refused with 530.
with smtplib.SMTP(HOST, SUBMISSION, timeout=30) as client:
    client.ehlo("client.test")
    assert not client.has_extn("auth"), client.esmtp_features
    assert client.has_extn("starttls")
    code, text = client.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode())
    assert code == 538, (code, text)
    code, text = client.docmd("MAIL", f"FROM:<{USER}>")
    assert code == 530, (code, text)

    client.starttls(context=context())
    client.ehlo("client.test")
    assert "PLAIN" in client.esmtp_features["auth"] and "LOGIN" in client.esmtp_features["auth"]
    # MAIL before AUTH, then a wrong password, bad base64 and a cancelled exchange.
    code, _ = client.docmd("MAIL", f"FROM:<{USER}>")
    assert code == 530, code
    expect_code(535, client.login, USER, "wrong password")
    code, text = client.docmd("AUTH", "PLAIN !!!notbase64")
    assert code == 501, (code, text)
    code, text = client.docmd("AUTH", "LOGIN")
    assert code == 334 and text == b"VXNlcm5hbWU6", (code, text)
    code, text = client.docmd("*")
    assert code == 501, (code, text)
    code, text = client.docmd("AUTH", "CRAM-MD5")
    assert code == 504, (code, text)

    client.login(USER, PASSWORD)
    # The user's own address and an alias are fine; another user's, or a stranger's, not.
    client.sendmail(USER, ["friend@remote.test"], message(USER, "smtplib-587-own"))
    client.sendmail("alias@example.com", ["friend@remote.test"], message("Alias <alias@example.com>", "smtplib-587-alias"))
    reply = expect_code(550, client.sendmail, "local@example.com", ["friend@remote.test"], message("local@example.com", "forged-envelope"))
    assert b"5.7.1" in reply, reply
    client.rset()
    reply = expect_code(550, client.sendmail, "ceo@elsewhere.test", ["friend@remote.test"], message(USER, "forged-envelope-2"))
    client.rset()
    # A forged author with a good envelope is refused at the end of DATA.
    reply = expect_code(550, client.sendmail, USER, ["friend@remote.test"], message("The Boss <local@example.com>", "forged-from"))
    assert b"5.7.1" in reply and b"local@example.com" in reply, reply
    reply = expect_code(550, client.sendmail, USER, ["friend@remote.test"], message(USER, "forged-sender", "Sender: ceo@elsewhere.test\r\n"))
    assert b"5.7.1" in reply, reply
    reply = expect_code(550, client.sendmail, USER, ["friend@remote.test"], f"From: {USER}\r\nFrom: local@example.com\r\nSubject: two-froms\r\n\r\nx\r\n")
    assert b"5.7.1" in reply, reply
    # An unknown local address is refused at RCPT; a remote one is taken.
    code, _ = client.mail(USER)
    assert code == 250, code
    code, text = client.rcpt("nobody@example.com")
    assert code == 550, (code, text)
    client.rset()

# 465: TLS from the first byte; AUTH LOGIN, with an app password.
with smtplib.SMTP_SSL(HOST, SUBMISSIONS, timeout=30, context=context()) as client:
    client.ehlo("client.test")
    assert not client.has_extn("starttls"), client.esmtp_features
    client.user, client.password = USER, APP_PASSWORD
    code, text = client.auth("LOGIN", client.auth_login)
    assert code == 235, (code, text)
    client.sendmail(USER, ["friend@remote.test", "local@example.com"], message(USER, "smtplib-465-login", "Bcc: hidden@remote.test\r\n"))

print("smtplib submission checks passed")
