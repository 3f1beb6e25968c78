"""SEARCHRES (RFC 5182; part of IMAP4rev2, RFC 9051 §6.4.4.1) through Python's imaplib and a
raw socket: SEARCH RETURN (SAVE) and `$` in FETCH, STORE, COPY, SEARCH and their UID forms;
the saved result loses expunged messages, is empty before any SAVE and after a failed one,
and is forgotten when the mailbox is closed; a pipelined SAVE and `$`.

Run by crates/tme/tests/imap.rs. Environment: IMAPS_PORT, USER_ADDRESS, PASSWORD.
"""

import os
import socket

from peers import CONTEXT, check, tme


def command(session, *arguments):
    """A command's tagged status and its untagged responses, by name."""
    typ, data = session._simple_command(*arguments)
    responses = session.untagged_responses
    session.untagged_responses = {}
    return typ, data, responses


def fetched_uids(responses):
    return sorted(int(line.split(b"UID ")[1].split(b")")[0].split()[0]) for line in responses.get("FETCH", [])
                  if isinstance(line, bytes) and b"UID " in line)


client = tme()
check("SEARCHRES" in client.capabilities or b"SEARCHRES" in client.capability()[1][0],
      "SEARCHRES advertised")
for number in range(1, 7):
    subject = "even" if number % 2 == 0 else "odd"
    client.append("INBOX", None, None, f"Subject: {subject} {number}\r\nFrom: a@b\r\n\r\nbody {number}\r\n".encode())
client.select("INBOX")

# Nothing saved yet: `$` is empty, and a command on it does nothing, successfully.
typ, data, responses = command(client, "FETCH", "$", "(UID)")
check(typ == "OK" and "FETCH" not in responses, f"FETCH $ before any SAVE: {typ} {responses}")

# SAVE alone answers with the tagged OK only.
typ, data, responses = command(client, "SEARCH", "RETURN", "(SAVE)", "SUBJECT", "even")
check(typ == "OK" and "ESEARCH" not in responses and "SEARCH" not in responses,
      f"SEARCH RETURN (SAVE): {typ} {responses}")
typ, data, responses = command(client, "FETCH", "$", "(UID)")
check(fetched_uids(responses) == [2, 4, 6], f"FETCH $: {responses}")
typ, data, responses = command(client, "UID", "FETCH", "$", "(FLAGS)")
check(fetched_uids(responses) == [2, 4, 6], f"UID FETCH $: {responses}")
typ, data, responses = command(client, "STORE", "$", "+FLAGS", "(\\Flagged)")
check(typ == "OK" and len(responses.get("FETCH", [])) == 3, f"STORE $: {responses}")
typ, data, responses = command(client, "SEARCH", "FLAGGED")
check(responses.get("SEARCH") == [b"2 4 6"], f"STORE $ flagged the saved messages: {responses}")
typ, data, responses = command(client, "UID", "SEARCH", "UID", "$", "NOT", "UID", "4")
check(responses.get("SEARCH") == [b"2 6"], f"UID SEARCH UID $: {responses}")
typ, data, responses = command(client, "SEARCH", "$", "SUBJECT", "6")
check(responses.get("SEARCH") == [b"6"], f"SEARCH $ as a sequence set: {responses}")
# A `$` where a string goes is the string.
typ, data, responses = command(client, "SEARCH", "SUBJECT", "$")
check(typ == "OK" and responses.get("SEARCH") == [b""], f"SEARCH SUBJECT $ looks for a dollar: {responses}")
typ, data, responses = command(client, "COPY", "$", "Archive")
check(typ == "OK" and b"COPYUID" in data[0] and b" 2,4,6 " in data[0], f"COPY $: {data}")

# With MIN and MAX only those are saved; ESEARCH still answers them.
typ, data, responses = command(client, "SEARCH", "RETURN", "(MIN MAX SAVE)", "SUBJECT", "odd")
check(responses.get("ESEARCH") and b"MIN 1 MAX 5" in responses["ESEARCH"][0], f"ESEARCH MIN MAX with SAVE: {responses}")
typ, data, responses = command(client, "FETCH", "$", "(UID)")
check(fetched_uids(responses) == [1, 5], f"only MIN and MAX were saved: {responses}")

# An expunged message leaves the saved result; sequence numbers follow.
command(client, "SEARCH", "RETURN", "(SAVE)", "ALL")
command(client, "STORE", "1", "+FLAGS", "(\\Deleted)")
typ, data, responses = command(client, "EXPUNGE")
typ, data, responses = command(client, "FETCH", "$", "(UID)")
check(fetched_uids(responses) == [2, 3, 4, 5, 6], f"the expunged message left the result: {responses}")
check(len(responses.get("FETCH", [])) == 5 and responses["FETCH"][0].startswith(b"1 "),
      f"sequence numbers renumbered: {responses}")

# A failed SAVE empties the result.
typ, data, responses = command(client, "SEARCH", "RETURN", "(SAVE)", "CHARSET", "KOI8-R", "ALL")
check(typ == "NO", f"SEARCH with a bad charset: {typ} {data}")
typ, data, responses = command(client, "FETCH", "$", "(UID)")
check("FETCH" not in responses, f"the failed SAVE emptied the result: {responses}")

# Closing the mailbox forgets the result.
command(client, "SEARCH", "RETURN", "(SAVE)", "ALL")
client.select("INBOX")
typ, data, responses = command(client, "FETCH", "$", "(UID)")
check("FETCH" not in responses, f"SELECT forgot the result: {responses}")
client.logout()

# Pipelined: the SAVE is done before the `$` that follows it (RFC 5182 §2.1).
sock = CONTEXT.wrap_socket(socket.create_connection(("127.0.0.1", int(os.environ["IMAPS_PORT"])), timeout=20))
reader = sock.makefile("rb")
reader.readline()
user, password = os.environ["USER_ADDRESS"], os.environ["PASSWORD"]
sock.sendall(b"L LOGIN " + user.encode() + b" {%d+}\r\n" % len(password) + password.encode() + b"\r\n"
             + b"S SELECT INBOX\r\nA UID SEARCH RETURN (SAVE) SUBJECT even\r\nB UID FETCH $ (UID)\r\nZ LOGOUT\r\n")
transcript = reader.read()
sock.close()
check(b"A OK" in transcript and b"B OK" in transcript, f"pipelined SAVE and $: {transcript!r}")
fetched = [line for line in transcript.split(b"\r\n") if b" FETCH (UID " in line]
check([line.split(b"UID ")[1].rstrip(b")") for line in fetched] == [b"2", b"4", b"6"],
      f"the pipelined $ saw the saved result: {fetched}")
print("all SEARCHRES checks passed")
