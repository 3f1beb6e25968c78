"""Two imaplib clients on one mailbox: what one does, the other sees as RFC 9051 says.

Flag changes come as untagged FETCH FLAGS; an expunge is not reported during FETCH, STORE
or SEARCH (§7.5.1: sequence numbers would shift under the client) but at the next NOOP;
new messages come as EXISTS; UIDs are never reused.
Run by crates/tme/tests/imap.rs. Environment: IMAPS_PORT, USER_ADDRESS, PASSWORD.
"""

from peers import check, tme


def drain(session):
    responses = dict(session.untagged_responses)
    session.untagged_responses.clear()
    return responses


first = tme()
second = tme()
for number in range(1, 4):
    first.append("INBOX", None, None, b"Subject: message %d\r\n\r\nbody %d\r\n" % (number, number))
first.select("INBOX")
typ, data = second.select("INBOX")
check(data == [b"3"], f"the second client sees 3 messages: {data}")
drain(second)

# A flag change by the first is an untagged FETCH for the second at its next command.
first.store("2", "+FLAGS", "(\\Flagged)")
second.noop()
seen = drain(second)
check(any(b"FLAGS (\\Flagged)" in line for line in seen.get("FETCH", [])) and b"UID 2" in b"".join(seen.get("FETCH", [])),
      f"FETCH FLAGS after NOOP: {seen}")

# The first expunges message 1. During FETCH the second gets no EXPUNGE, and sequence
# number 1 still names the message it had.
first.store("1", "+FLAGS", "(\\Deleted)")
typ, data = first.expunge()
check(data == [b"1"], f"the first client expunged: {data}")
typ, data = second.fetch("1:3", "(UID)")
responses = drain(second)
check("EXPUNGE" not in responses, f"no EXPUNGE during FETCH: {responses}")
check(len([line for line in data if line]) == 3 and data[0] == b"1 (UID 1)", f"FETCH still sees 3 messages: {data}")
typ, data = second.store("3", "+FLAGS", "(\\Seen)")
responses = drain(second)
check("EXPUNGE" not in responses, f"no EXPUNGE during STORE: {responses}")
check(data[0].startswith(b"3 (UID 3 FLAGS (\\Seen)"), f"sequence number 3 is still UID 3: {data}")
typ, data = second.search(None, "ALL")
responses = drain(second)
check("EXPUNGE" not in responses and data == [b"1 2 3"], f"no EXPUNGE during SEARCH: {data} {responses}")
second.noop()
responses = drain(second)
check(responses.get("EXPUNGE") == [b"1"], f"EXPUNGE at NOOP: {responses}")
typ, data = second.fetch("1:*", "(UID)")
check(data == [b"1 (UID 2)", b"2 (UID 3)"], f"numbers shifted after the EXPUNGE: {data}")

# The first client sees the second's \Seen.
first.noop()
responses = drain(first)
check(any(b"UID 3 FLAGS (\\Seen)" in line for line in responses.get("FETCH", [])), f"the first sees the \\Seen: {responses}")

# A new message is EXISTS for the other; UIDs grow and are not reused after an expunge.
first.store("2", "+FLAGS", "(\\Deleted)")
first.expunge()
first.append("INBOX", None, None, b"Subject: message 4\r\n\r\nbody 4\r\n")
second.noop()
responses = drain(second)
check(responses.get("EXPUNGE") == [b"2"] and responses.get("EXISTS") == [b"2"], f"EXPUNGE, and EXISTS for the new message: {responses}")
typ, data = second.fetch("1:*", "(UID)")
check(data == [b"1 (UID 2)", b"2 (UID 4)"], f"the new message has a new UID: {data}")

# UID commands may report expunges (RFC 9051 §7.5.1): UID FETCH gets it at once.
first.store("1", "+FLAGS", "(\\Deleted)")
first.expunge()
typ, data = second.uid("FETCH", "1:*", "(FLAGS)")
responses = drain(second)
check(responses.get("EXPUNGE") == [b"1"], f"UID FETCH may carry the EXPUNGE: {responses}")

first.logout()
second.logout()
print("all concurrency checks passed")
