"""Differential test: the same corpus messages APPENDed to tme and to Dovecot (Debian's
dovecot-imapd, its `imap` binary run pre-authenticated over a pipe with a Maildir in a
temporary folder, `peers.py`), with the same internal dates, and the answers to FETCH
ENVELOPE, BODYSTRUCTURE, BODY[], BODY[HEADER], BODY[TEXT], BODY[1] and BODY[1.MIME]
compared message by message, parsed into values (so a quoted string and a literal holding
the same bytes are equal); then SORT by every key and THREAD by both algorithms over the
whole mailbox, compared as answers.

Documented harmless differences, normalised before comparing (ARCHITECTURE.md):
- ENVELOPE strings: runs of white space compared as one space, ends trimmed. tme unfolds
  header values as RFC 5322 §2.2.3 says (only the line breaks go) and trims them; Dovecot
  also collapses the folding white space and keeps a trailing space.
- ENVELOPE address mailbox: a quoted local part (`"peter"@host`) keeps its quotes in tme
  (as written); Dovecot removes them.
- ENVELOPE address lists when a header field is repeated (RFC 5322 §3.6 allows one To, one
  Cc...): tme takes the first field, Dovecot joins them all; tme's list is then the start of
  Dovecot's.
- BODY[n] of a part that is itself a multipart: Dovecot's ends with the CRLF that starts the
  inner multipart's (empty) epilogue, tme's stops before it (tme-message's offsets); trailing
  line breaks are not compared.

Malformed messages where the two servers guess differently are listed, with the reason, in
`differential_known.txt` beside this script (corpus file name, FETCH item, reason): a
difference there is reported, not failed; one that is not there fails the test. For SORT, a
listed message (`SORT:KEY`, or for the address keys a malformed ENVELOPE) is taken out of
both answers and the rest must be in the same order.

Run by crates/tme/tests/imap.rs. Environment: IMAPS_PORT, USER_ADDRESS, PASSWORD, WORK_DIR,
CORPUS_FILES (a file listing the messages, one path a line).
"""

import imaplib
import os
import sys

from peers import dovecot, tme


def fail(what):
    print("FAILED:", what, file=sys.stderr)
    sys.exit(1)


def crlf(raw):
    """Every line end CRLF, ending with one: the message as an MTA would send it."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return text if text.endswith(b"\r\n") else text + b"\r\n"


def raw_response(data):
    """imaplib's FETCH data back into the bytes of the response."""
    out = b""
    for item in data:
        if isinstance(item, tuple):
            out += item[0] + b"\r\n" + item[1]
        elif item is not None:
            out += item
    return out


class Parser:
    def __init__(self, data):
        self.data = data
        self.position = 0

    def skip_spaces(self):
        while self.position < len(self.data) and self.data[self.position:self.position + 1] == b" ":
            self.position += 1

    def value(self):
        self.skip_spaces()
        head = self.data[self.position:self.position + 1]
        if head == b"(":
            self.position += 1
            items = []
            while True:
                self.skip_spaces()
                if self.data[self.position:self.position + 1] == b")":
                    self.position += 1
                    return items
                if self.position >= len(self.data):
                    raise ValueError("unbalanced")
                items.append(self.value())
        if head == b'"':
            self.position += 1
            out = b""
            while True:
                byte = self.data[self.position:self.position + 1]
                self.position += 1
                if byte == b"\\":
                    out += self.data[self.position:self.position + 1]
                    self.position += 1
                elif byte == b'"':
                    return out
                elif byte == b"":
                    raise ValueError("unterminated string")
                else:
                    out += byte
        if head == b"{" or self.data[self.position:self.position + 2] == b"~{":
            start = self.data.index(b"{", self.position) + 1
            end = self.data.index(b"}", start)
            length = int(self.data[start:end])
            body_start = end + 3  # past "}\r\n"
            self.position = body_start + length
            return self.data[body_start:body_start + length]
        end = self.position
        depth = 0
        while end < len(self.data):
            byte = self.data[end:end + 1]
            if byte == b"[":
                depth += 1
            elif byte == b"]":
                depth -= 1
            elif depth == 0 and byte in (b" ", b")", b"("):
                break
            end += 1
        atom = self.data[self.position:end]
        self.position = end
        if atom == b"NIL":
            return None
        if atom.isdigit():
            return int(atom)
        return atom.upper()


def fetch_items(session, number, items):
    typ, data = session.fetch(str(number), items)
    if typ != "OK":
        return {"error": typ}
    raw = raw_response(data)
    parser = Parser(raw)
    parser.value()  # the sequence number
    values = parser.value()
    if not isinstance(values, list):
        return {"error": raw[:200]}
    return {values[index]: values[index + 1] for index in range(0, len(values) - 1, 2)}


def collapse_spaces(value):
    if isinstance(value, bytes):
        return b" ".join(value.split())
    if isinstance(value, list):
        return [collapse_spaces(item) for item in value]
    return value


def unquote_mailboxes(envelope):
    for index in range(2, 8):
        addresses = envelope[index] if isinstance(envelope, list) and len(envelope) > index else None
        for address in addresses or []:
            if isinstance(address, list) and len(address) == 4 and isinstance(address[2], bytes):
                mailbox = address[2]
                if len(mailbox) >= 2 and mailbox.startswith(b'"') and mailbox.endswith(b'"'):
                    address[2] = mailbox[1:-1]
    return envelope


def normalise(key, value):
    if key == b"ENVELOPE":
        return unquote_mailboxes(collapse_spaces(value))
    if key == b"BODY[1]" and isinstance(value, bytes):
        return value.rstrip(b"\r\n")
    return value


def repeated_fields(mine, dove):
    """Dovecot's address lists cut to tme's where tme's is their start (repeated fields)."""
    if not (isinstance(mine, list) and isinstance(dove, list) and len(mine) == len(dove) == 10):
        return dove
    dove = list(dove)
    for index in range(2, 8):
        ours, theirs = mine[index], dove[index]
        if isinstance(ours, list) and isinstance(theirs, list) and 0 < len(ours) < len(theirs) \
                and theirs[:len(ours)] == ours:
            dove[index] = ours
    return dove


def first_difference(mine, dove):
    if isinstance(mine, bytes) and isinstance(dove, bytes):
        offset = next((index for index, (a, b) in enumerate(zip(mine, dove)) if a != b), min(len(mine), len(dove)))
        return f"lengths {len(mine)} and {len(dove)}, first difference at {offset}: tme {mine[max(0, offset - 40):offset + 80]!r} Dovecot {dove[max(0, offset - 40):offset + 80]!r}"
    return f"tme {repr(mine)[:700]}\n     Dovecot {repr(dove)[:700]}"


ITEMS = "(ENVELOPE BODYSTRUCTURE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[1.MIME] RFC822.SIZE)"

paths = [line.strip() for line in open(os.environ["CORPUS_FILES"]) if line.strip()]
tme_session, dovecot_session = tme(), dovecot()
tme_session.select("INBOX")
dovecot_session.select("INBOX")
appended = 0
for number, path in enumerate(paths):
    message = crlf(open(path, "rb").read())
    # Internal dates one minute apart, the same on both: SORT and THREAD fall back on them.
    date = imaplib.Time2Internaldate(1577836800 + 60 * number)
    typ_ours, _ = tme_session.append("INBOX", None, date, message)
    typ_theirs, _ = dovecot_session.append("INBOX", None, date, message)
    if typ_ours != "OK" or typ_theirs != "OK":
        fail(f"APPEND {path}: tme {typ_ours}, Dovecot {typ_theirs}")
    appended += 1
tme_session.noop()
dovecot_session.noop()

known = {}
for line in open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "differential_known.txt")):
    line = line.strip()
    if line and not line.startswith("#"):
        name, item, reason = line.split(None, 2)
        known[(name, item)] = reason

differences = {}
examples = {}
known_seen = 0
for number, path in enumerate(paths, start=1):
    mine = fetch_items(tme_session, number, ITEMS)
    dove = fetch_items(dovecot_session, number, ITEMS)
    for key in sorted(set(mine) | set(dove), key=str):
        ours, theirs = normalise(key, mine.get(key)), normalise(key, dove.get(key))
        if key == b"ENVELOPE":
            theirs = repeated_fields(ours, theirs)
        if ours != theirs:
            name = key.decode() if isinstance(key, bytes) else str(key)
            if (os.path.basename(path), name) in known:
                known_seen += 1
                continue
            differences[name] = differences.get(name, 0) + 1
            examples.setdefault(name, []).append((path, ours, theirs))


def ordered(session, command):
    """The numbers of a SORT answer, or a THREAD answer as each message's parent."""
    typ, data = session._simple_command(*command)
    typ, data = session._untagged_response(typ, data, command[0])
    text = b" ".join(item for item in data if item).decode()
    if command[0] == "SORT":
        return text.split()
    parents, stack, last = {}, [], None
    for token in text.replace("(", " ( ").replace(")", " ) ").split():
        if token == "(":
            stack.append(last)
        elif token == ")":
            last = stack.pop()
        else:
            parents[token] = last
            last = token
    return parents


def headers(number):
    message = crlf(open(paths[int(number) - 1], "rb").read())
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").replace("\r\n ", " ").replace("\r\n\t", " ")
    wanted = ("subject:", "date:", "message-id:", "references:", "in-reply-to:", "from:", "to:", "cc:")
    return [line[:160] for line in head.split("\r\n") if line.lower().startswith(wanted)]


ORDERINGS = [("SORT", f"({keys})", "UTF-8", "ALL") for keys in [
    "ARRIVAL", "DATE", "REVERSE DATE", "SUBJECT", "FROM", "TO", "CC", "SIZE", "DISPLAYFROM",
    "DISPLAYTO", "REVERSE SUBJECT DATE"]] + [
    ("THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL"), ("THREAD", "REFERENCES", "UTF-8", "ALL")]
for command in ORDERINGS:
    label = " ".join(command[:2])
    mine, dove = ordered(tme_session, command), ordered(dovecot_session, command)
    if command[0] == "SORT":
        # Messages known to sort apart under one of the keys leave both lists; so do, for
        # the address keys, those whose ENVELOPE is a known difference (a malformed address
        # each server reads its own way).
        names = [key for key in command[1].strip("()").split() if key != "REVERSE"]
        keys = {f"SORT:{name}" for name in names}
        if {"FROM", "TO", "CC", "DISPLAYFROM", "DISPLAYTO"} & set(names):
            keys.add("ENVELOPE")
        excluded = {str(number) for number, path in enumerate(paths, start=1)
                    if any((os.path.basename(path), key) in known for key in keys)}
        known_seen += len(excluded)
        mine = [number for number in mine if number not in excluded]
        dove = [number for number in dove if number not in excluded]
    else:
        excluded = set()
    if mine == dove:
        print(f"{label}: alike" + (f" ({len(excluded)} known differences left out)" if excluded else ""))
        continue
    differences[label] = differences.get(label, 0) + 1
    if command[0] == "SORT":
        position = next(index for index, (a, b) in enumerate(zip(mine + [""], dove + [""])) if a != b)
        print(f"{label}: first difference at {position}: tme {mine[position:position + 3]}, Dovecot {dove[position:position + 3]}")
        for number in {mine[position], dove[position]} - {""}:
            print(f"   message {number} ({os.path.basename(paths[int(number) - 1])}): {headers(number)}")
    else:
        differing = sorted((number for number in set(mine) | set(dove) if mine.get(number) != dove.get(number)), key=int)
        print(f"{label}: {len(differing)} messages with another parent")
        for number in differing[:8]:
            print(f"   message {number} ({os.path.basename(paths[int(number) - 1])}): parent tme {mine.get(number)}, Dovecot {dove.get(number)}: {headers(number)}")
for name, count in sorted(differences.items()):
    print(f"{name}: {count} differ")
    for index, (path, mine, dove) in enumerate(examples.get(name, [])):
        print(f"   unknown: {os.path.basename(path)} {name}")
        if index < 3 or os.environ.get("DIFFERENCES_ALL") == "1":
            print("     ", first_difference(mine, dove))
print(f"{appended} corpus messages compared; {known_seen} known differences (differential_known.txt)")
if os.environ.get("DIFFERENCES_ALLOWED") != "1" and differences:
    fail(f"answers differ: {differences}")
print("tme and Dovecot answer alike")
