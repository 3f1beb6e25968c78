"""QRESYNC (RFC 7162) through Python's imaplib: ENABLE QRESYNC; VANISHED instead of EXPUNGE;
SELECT ... (QRESYNC (uidvalidity modseq [known-uids])) answering VANISHED (EARLIER) and the
changed flags; UID FETCH ... (CHANGEDSINCE m VANISHED); the errors RFC 7162 asks for.

Run by crates/tme/tests/imap.rs. Environment: IMAPS_PORT, USER_ADDRESS, PASSWORD.
"""

import imaplib

from peers import check, tme


def command(session, *arguments):
    """A command's tagged status, its text and its untagged responses (BAD as a status)."""
    session.untagged_responses = {}
    try:
        typ, data = session._simple_command(*arguments)
    except imaplib.IMAP4.error as error:
        typ, data = "BAD", [str(error).encode()]
    responses = session.untagged_responses
    session.untagged_responses = {}
    if arguments[0] == "SELECT" and typ == "OK":
        session.state = "SELECTED"  # imaplib's own select() would not send the parameters
    return typ, data, responses


def fetched(responses):
    """FETCH responses as {uid: line}."""
    found = {}
    for line in responses.get("FETCH", []):
        if isinstance(line, bytes) and b"UID " in line:
            found[int(line.split(b"UID ")[1].split()[0].rstrip(b")"))] = line
    return found


imaplib.Commands["ENABLE"] = ("AUTH",)

# A mailbox of six messages, and the state a client would have cached.
setup = tme()
for number in range(1, 7):
    setup.append("INBOX", None, None, f"Subject: message {number}\r\n\r\nbody {number}\r\n".encode())
typ, data, responses = command(setup, "SELECT", "INBOX")
uid_validity = int(responses["UIDVALIDITY"][0])
cached_modseq = int(responses["HIGHESTMODSEQ"][0])

# A QRESYNC client stays selected while another client changes things.
watcher = tme()
typ, data, responses = command(watcher, "ENABLE", "QRESYNC")
check(typ == "OK" and responses.get("ENABLED") == [b"QRESYNC"], f"ENABLE QRESYNC: {responses}")
typ, data = watcher.capability()
check("QRESYNC" in data[0].decode().split(), f"QRESYNC advertised: {data}")
command(watcher, "SELECT", "INBOX")
setup.store("2", "+FLAGS", "(\\Flagged)")
setup.store("3,5", "+FLAGS", "(\\Deleted)")
setup.expunge()
typ, data, responses = command(watcher, "NOOP")
check(responses.get("VANISHED") == [b"3,5"] and "EXPUNGE" not in responses,
      f"VANISHED instead of EXPUNGE: {responses}")
check(b"FLAGS (\\Flagged)" in fetched(responses).get(2, b"") and b"MODSEQ" in fetched(responses)[2],
      f"the flag change with its MODSEQ: {responses}")
# Its own EXPUNGE answers with VANISHED too.
watcher.uid("STORE", "6", "+FLAGS", "(\\Deleted)")
typ, data, responses = command(watcher, "EXPUNGE")
check(responses.get("VANISHED") == [b"6"] and "EXPUNGE" not in responses, f"EXPUNGE answered with VANISHED: {responses}")
watcher.logout()

# A client coming back with its cache: SELECT (QRESYNC ...).
client = tme()
typ, data, responses = command(client, "SELECT", "INBOX", f"(QRESYNC ({uid_validity} {cached_modseq}))")
check(typ == "BAD", f"QRESYNC before ENABLE: {typ} {data}")
command(client, "ENABLE", "QRESYNC")
typ, data, responses = command(client, "SELECT", "INBOX", f"(QRESYNC ({uid_validity} {cached_modseq}))")
check(typ == "OK" and responses.get("VANISHED") == [b"(EARLIER) 3,5:6"], f"SELECT QRESYNC: VANISHED (EARLIER): {responses}")
check(set(fetched(responses)) == {2}, f"SELECT QRESYNC: the changed message's flags: {responses.get('FETCH')}")
check(b"MODSEQ (" in fetched(responses)[2] and b"\\Flagged" in fetched(responses)[2], f"with FLAGS and MODSEQ: {responses}")
typ, data, responses = command(client, "SELECT", "INBOX", f"(QRESYNC ({uid_validity} {cached_modseq} 1:4))")
check(responses.get("VANISHED") == [b"(EARLIER) 3"], f"SELECT QRESYNC with known UIDs: {responses}")
check(responses.get("CLOSED") is not None or any(b"[CLOSED]" in line for line in responses.get("OK", [])),
      f"the previous mailbox reported CLOSED: {responses}")
typ, data, responses = command(client, "SELECT", "INBOX", f"(QRESYNC ({uid_validity + 1} {cached_modseq}))")
check(typ == "OK" and "VANISHED" not in responses and "FETCH" not in responses,
      f"SELECT QRESYNC with another UIDVALIDITY: a full resync, nothing reported: {responses}")

# UID FETCH ... (CHANGEDSINCE m VANISHED).
typ, data, responses = command(client, "UID", "FETCH", "1:*", "(FLAGS)", f"(CHANGEDSINCE {cached_modseq} VANISHED)")
check(typ == "OK" and responses.get("VANISHED") == [b"(EARLIER) 3,5:6"], f"UID FETCH VANISHED: {responses}")
check(set(fetched(responses)) == {2}, f"UID FETCH CHANGEDSINCE: the changed message: {responses.get('FETCH')}")
typ, data, responses = command(client, "UID", "FETCH", "4:5", "(FLAGS)", f"(CHANGEDSINCE {cached_modseq} VANISHED)")
check(responses.get("VANISHED") == [b"(EARLIER) 5"], f"UID FETCH VANISHED within the set: {responses}")
typ, data, responses = command(client, "FETCH", "1:*", "(FLAGS)", f"(CHANGEDSINCE {cached_modseq} VANISHED)")
check(typ == "BAD", f"VANISHED on a FETCH without UID: {typ} {data}")
typ, data, responses = command(client, "UID", "FETCH", "1:*", "(FLAGS)", "(VANISHED)")
check(typ == "BAD", f"VANISHED without CHANGEDSINCE: {typ} {data}")
client.logout()

plain = tme()
plain.select("INBOX")
typ, data, responses = command(plain, "UID", "FETCH", "1:*", "(FLAGS)", f"(CHANGEDSINCE {cached_modseq} VANISHED)")
check(typ == "BAD", f"VANISHED without ENABLE QRESYNC: {typ} {data}")
plain.logout()
print("all QRESYNC checks passed")
