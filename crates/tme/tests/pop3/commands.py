"""Every POP3 command tme serves, through Python's poplib over STLS and pop3s, what IMAP
(imaplib) sees of it, and bad input on a raw socket.

Run by crates/tme/tests/pop3.rs against a fresh node with an empty INBOX; exits non-zero on
the first failure. Environment: see common.py.
"""

import base64
import os
import time

from common import (APP_PASSWORD, PASSWORD, USER, Raw, check, deliver, imap_client,
                    imap_inbox_bodies, login, pop3s_client, refused, retrieved, stls_client,
                    wire_form)

SESSION_ERRORS_MAX = int(os.environ["SESSION_ERRORS_MAX"])

M1 = (b"From: Bob <bob@example.com>\r\nTo: Alice <alice@example.org>\r\nSubject: one\r\n"
      b"Message-ID: <one@example.com>\r\n\r\nfirst line\r\n.hidden dot line\r\n"
      b"..two dots\r\n.\r\nlast line\r\n")
# Bare line feeds: SMTP keeps them as sent; POP3 sends CRLF. (smtplib ends the content with
# the CRLF that DATA needs.)
M2 = (b"From: Bob <bob@example.com>\nTo: Alice <alice@example.org>\nSubject: two (bare LF)\n"
      b"Message-ID: <two@example.com>\n\nbody with\nbare line feeds")
M3 = (b"From: Bob <bob@example.com>\r\nTo: Alice <alice@example.org>\r\nSubject: three\r\n"
      b"Message-ID: <three@example.com>\r\n\r\n"
      + b"".join(b"line %d\r\n" % number for number in range(1, 11)))


def plain_response(authzid, authcid, password):
    return base64.b64encode(b"%s\0%s\0%s" % (authzid, authcid, password))


def login_when_free(password=PASSWORD):
    """Logs in; retries while the server has not yet seen a dropped session go (its maildrop
    lock is released when the server notices the close)."""
    for _ in range(600):
        client = pop3s_client()
        try:
            return login(client, password)
        except Exception as error:  # poplib.error_proto
            client.close()
            if "IN-USE" not in str(error):
                raise
            time.sleep(0.05)
    check(False, "the maildrop lock of a dropped session is released")


# ---- before TLS ----
raw = Raw(tls=False)
check(raw.greeting.startswith(b"+OK") and b"POP3 ready" in raw.greeting, "greeting")
check(raw.command(b"CAPA").startswith(b"+OK"), "CAPA before TLS")
caps = raw.multiline()
check(b"STLS\r\n" in caps, "STLS offered before TLS")
check(b"USER\r\n" not in caps and not any(c.startswith(b"SASL") for c in caps),
      "no USER or SASL before TLS")
for capability in (b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING",
                   b"IMPLEMENTATION tme"):
    check(capability + b"\r\n" in caps, f"CAPA lists {capability.decode()}")
check(raw.command(b"USER " + USER.encode()).startswith(b"-ERR [AUTH]"), "USER refused before TLS")
check(raw.command(b"PASS " + PASSWORD.encode()).startswith(b"-ERR [AUTH]"), "PASS refused before TLS")
check(raw.command(b"AUTH PLAIN " + plain_response(b"", USER.encode(), PASSWORD.encode()))
      .startswith(b"-ERR [AUTH]"), "AUTH refused before TLS")
check(raw.command(b"STAT").startswith(b"-ERR"), "STAT before login")
check(raw.command(b"QUIT").startswith(b"+OK"), "QUIT before login")
raw.close()

# STLS: what the client sent after STLS in the same packet is thrown away (RFC 2595 §4).
raw = Raw(tls=False)
raw.send(b"STLS\r\nCAPA\r\n")
check(raw.line().startswith(b"+OK"), "STLS")
from common import CONTEXT  # noqa: E402
tls = CONTEXT.wrap_socket(raw.sock)
tls.sendall(b"QUIT\r\n")
reader = tls.makefile("rb")
rest = reader.read()
check(rest == b"+OK bye\r\n", f"nothing sent before the handshake was answered: {rest!r}")
tls.close()

# ---- poplib over STLS ----
client = stls_client()
caps = client.capa()
check("USER" in caps and caps.get("SASL") == ["PLAIN"] and "STLS" not in caps,
      f"CAPA after STLS: {caps}")
check("TLS is already active" in refused(lambda: client._shortcmd("STLS")), "STLS twice")
check("[AUTH]" in refused(lambda: login(client, "not the password")), "wrong password: [AUTH]")
check("USER first" in refused(lambda: client.pass_(PASSWORD)), "PASS without USER")
login(client)
check(client.stat() == (0, 0), "empty maildrop")
client.quit()

deliver(M1)
deliver(M2)
deliver(M3)

imap = imap_client()
imap.select("INBOX")
uid_validity = int(imap.response("UIDVALIDITY")[1][0])
typ, data = imap.uid("SEARCH", "ALL")
uids = [int(uid) for uid in data[0].split()]
check(len(uids) == 3, "three messages delivered")
bodies = imap_inbox_bodies()

client = login(stls_client())
count, octets = client.stat()
check(count == 3, f"STAT counts: {count}")
response, listing, _ = client.list()
sizes = {int(line.split()[0]): int(line.split()[1]) for line in listing}
check(sorted(sizes) == [1, 2, 3] and sum(sizes.values()) == octets, "LIST matches STAT")
check(response.startswith(b"+OK"), "LIST")
for number, uid in zip((1, 2, 3), uids):
    message, received_octets, response = retrieved(client, number)
    check(received_octets == sizes[number] and len(message) == sizes[number],
          f"RETR {number}: {len(message)} octets as LIST said ({sizes[number]})")
    check(response == b"+OK %d octets" % sizes[number], f"RETR {number} answer")
    check(message == wire_form(bodies[uid]), f"RETR {number} is the stored message")
    check(client.list(number) == b"+OK %d %d" % (number, sizes[number]), f"LIST {number}")
message, _, _ = retrieved(client, 1)
check(message.endswith(M1), "dot-stuffed lines come back as sent")
message, _, _ = retrieved(client, 2)
check(message.endswith(M2.replace(b"\n", b"\r\n") + b"\r\n"), "bare LF lines come back with CRLF")
check(bodies[uids[1]].endswith(M2 + b"\r\n"), "and are stored as sent")

response, listing, _ = client.uidl()
unique_ids = [line.split()[1].decode() for line in listing]
check(unique_ids == [f"{uid_validity:08x}{uid:08x}" for uid in uids],
      f"UIDL is UIDVALIDITY and UID: {unique_ids}")
check(client.uidl(2) == b"+OK 2 " + unique_ids[1].encode(), "UIDL 2")

response, lines, _ = client.top(3, 0)
header = bodies[uids[2]].split(b"\r\n\r\n")[0].split(b"\r\n")
check(lines == header + [b""], "TOP 3 0: the header and the blank line")
response, lines, _ = client.top(3, 2)
check(lines == header + [b"", b"line 1", b"line 2"], "TOP 3 2: two body lines")
response, lines, _ = client.top(1, 100)
check(b"".join(line + b"\r\n" for line in lines) == wire_form(bodies[uids[0]]),
      "TOP with more lines than the body: the whole message")
check(client.noop().startswith(b"+OK"), "NOOP")

check(client.dele(1) == b"+OK message 1 deleted", "DELE 1")
check(client.stat() == (2, octets - sizes[1]), "STAT leaves a deleted message out")
check("already deleted" in refused(lambda: client.list(1)), "LIST of a deleted message")
check("already deleted" in refused(lambda: client.retr(1)), "RETR of a deleted message")
check("already deleted" in refused(lambda: client.dele(1)), "DELE twice")
check("already deleted" in refused(lambda: client.top(1, 0)), "TOP of a deleted message")
check([line.split()[0] for line in client.uidl()[1]] == [b"2", b"3"], "UIDL leaves it out")
check(client.rset().startswith(b"+OK 3 messages"), "RSET")
check(client.stat() == (3, octets), "RSET unmarks")
check(client.quit().startswith(b"+OK"), "QUIT")

typ, data = imap.uid("FETCH", "1:*", "(FLAGS)")
check(all(b"\\Seen" in item for item in data), f"RETR marks \\Seen at QUIT: {data}")

# ---- pop3s: the same maildrop, the same unique ids ----
client = login(pop3s_client())
check(client.stat() == (3, octets), "nothing was deleted by DELE then RSET then QUIT")
check([line.split()[1].decode() for line in client.uidl()[1]] == unique_ids,
      "UIDL stable across sessions")
# RFC 1939 §4: one session at a time holds the maildrop.
check("[IN-USE]" in refused(lambda: login(pop3s_client())), "a second session gets [IN-USE]")
client.quit()
client = login(pop3s_client())
check(client.stat()[0] == 3, "the lock goes with QUIT")

# A dropped connection deletes nothing.
client.dele(1)
client.dele(2)
client.close()  # no QUIT
client = login_when_free()
check(client.stat() == (3, octets), "a dropped connection deletes nothing")

# DELE then QUIT deletes, and an IMAP session sees it go.
client.dele(1)
answer = client.quit()
check(b"(1 deleted, 2 left)" in answer, f"QUIT in UPDATE: {answer!r}")
typ, _ = imap.noop()
expunged = imap.response("EXPUNGE")[1]
check(expunged == [b"1"], f"IMAP sees the expunge: {expunged}")
typ, data = imap.uid("SEARCH", "ALL")
check([int(uid) for uid in data[0].split()] == uids[1:], "IMAP: the first message is gone")

# A message IMAP expunges during a POP3 session: RETR refuses it cleanly.
client = login(pop3s_client())
check(client.stat()[0] == 2, "two messages left")
imap.uid("STORE", str(uids[1]), "+FLAGS", "(\\Deleted)")
imap.expunge()
check("removed by another session" in refused(lambda: client.retr(1)), "RETR of a message IMAP expunged")
check("removed by another session" in refused(lambda: client.top(1, 0)), "TOP of it too")
check(client.list(1).startswith(b"+OK 1 "), "its number stays until the session ends")
message, _, _ = retrieved(client, 2)
check(message == wire_form(bodies[uids[2]]), "the other message is still served")
check(client.dele(1).startswith(b"+OK"), "DELE of it")
check(client.quit().startswith(b"+OK"), "QUIT expunges what is left to expunge")
client = login(pop3s_client())
check(client.stat() == (1, sizes[3]), "one message left")
client.quit()

# ---- AUTH (RFC 5034) ----
raw = Raw()
check(raw.command(b"AUTH").startswith(b"+OK") and raw.multiline() == [b"PLAIN\r\n"],
      "AUTH lists PLAIN")
check(raw.command(b"AUTH LOGIN").startswith(b"-ERR"), "AUTH LOGIN is not offered")
check(raw.command(b"AUTH PLAIN").startswith(b"+ "), "AUTH PLAIN without initial response")
check(raw.command(b"*").startswith(b"-ERR"), "AUTH cancelled with *")
check(raw.command(b"AUTH PLAIN").startswith(b"+ "), "AUTH PLAIN again")
check(raw.command(b"!!not base64!!").startswith(b"-ERR"), "AUTH: bad base64")
check(raw.command(b"AUTH PLAIN =").startswith(b"-ERR [AUTH]"), "AUTH PLAIN with an empty response")
check(raw.command(b"AUTH PLAIN " + plain_response(b"bob@example.org", USER.encode(), PASSWORD.encode()))
      .startswith(b"-ERR [AUTH]"), "AUTH PLAIN as another user")
check(raw.command(b"AUTH PLAIN " + plain_response(b"", USER.encode(), b"wrong"))
      .startswith(b"-ERR [AUTH] Authentication failed"), "AUTH PLAIN with a wrong password")
check(raw.command(b"AUTH PLAIN " + base64.b64encode(b"no nul")).startswith(b"-ERR [AUTH]"),
      "AUTH PLAIN malformed")
check(raw.command(b"AUTH PLAIN").startswith(b"+ "), "AUTH PLAIN, then the response")
answer = raw.command(plain_response(b"", USER.encode(), PASSWORD.encode()))
check(answer.startswith(b"+OK"), f"AUTH PLAIN by continuation: {answer!r}")
check(raw.command(b"QUIT").startswith(b"+OK"), "QUIT")
raw.close()
raw = Raw()
answer = raw.command(b"auth plain " + plain_response(USER.encode(), USER.encode(), PASSWORD.encode()))
check(answer.startswith(b"+OK"), f"AUTH PLAIN with initial response and authzid: {answer!r}")
raw.command(b"QUIT")
raw.close()
client = login(pop3s_client(), APP_PASSWORD)
check(client.stat()[0] == 1, "an app password works in place of the password")
client.quit()

# ---- bad input ----
raw = Raw()
check(raw.command(b"NOOP " + b"x" * 300).startswith(b"-ERR line too long"), "a line over 255 octets")
raw.send(b"CAPA " + b"y" * 100_000)
raw.send(b"\r\n")
check(raw.line().startswith(b"-ERR line too long"), "a 100 KB line")
check(raw.command(b"CAPA").startswith(b"+OK"), "the session goes on after a long line")
raw.multiline()
check(raw.command(b"FOO").startswith(b"-ERR unknown command"), "unknown command")
check(raw.command(b"\xff\xfe\x00garbage").startswith(b"-ERR"), "8-bit garbage")
check(raw.command(b"APOP alice 0123456789abcdef").startswith(b"-ERR"), "APOP is not offered")
for command in (b"STAT", b"LIST", b"RETR 1", b"DELE 1", b"NOOP", b"RSET", b"TOP 1 1", b"UIDL"):
    check(b"not valid in this state" in raw.command(command),
          f"{command.decode()} before login")
raw.login()
for command in (b"USER x", b"PASS x", b"AUTH PLAIN", b"STLS"):
    check(raw.command(command).startswith(b"-ERR"), f"{command.decode()} after login")
check(raw.command(b"RETR 0").startswith(b"-ERR no such message"), "RETR 0")
check(raw.command(b"RETR 99999999999999999999999").startswith(b"-ERR no such message"), "RETR huge")
check(raw.command(b"RETR abc").startswith(b"-ERR syntax"), "RETR abc")
check(raw.command(b"RETR").startswith(b"-ERR syntax"), "RETR without a number")
check(raw.command(b"TOP 1").startswith(b"-ERR syntax"), "TOP without lines")
check(raw.command(b"TOP 1 -1").startswith(b"-ERR syntax"), "TOP with negative lines")
check(raw.command(b"LIST 1 2").startswith(b"-ERR syntax"), "LIST with two numbers")
check(raw.command(b"stat").startswith(b"+OK 1 "), "lower-case keywords")
# PIPELINING (RFC 2449 §6.6): four commands in one write, answered in order.
raw.send(b"STAT\r\nLIST\r\nUIDL 1\r\nNOOP\r\n")
check(raw.line().startswith(b"+OK 1 "), "pipelined STAT")
check(raw.line().startswith(b"+OK") and len(raw.multiline()) == 1, "pipelined LIST")
check(raw.line().startswith(b"+OK 1 "), "pipelined UIDL 1")
check(raw.line() == b"+OK\r\n", "pipelined NOOP")
check(raw.command(b"QUIT").startswith(b"+OK"), "QUIT")
raw.close()

# Too many errors: the session is closed.
raw = Raw()
for number in range(SESSION_ERRORS_MAX):
    answer = raw.command(b"FOO")
check(b"closing" in answer, f"the last error says so: {answer!r}")
check(raw.line() == b"", "and the connection is closed")
raw.close()

imap.logout()
print("commands ok")
