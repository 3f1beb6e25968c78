"""QUOTA (RFC 9208) through Python's imaplib: GETQUOTAROOT and GETQUOTA report the account's
quota, set by the test with `tme account set --quota 200K` before this runs; APPEND and COPY
over it answer NO [OVERQUOTA]; SETQUOTA is refused; STATUS DELETED-STORAGE.

Run by crates/tme/tests/imap.rs. Environment: IMAPS_PORT, USER_ADDRESS, PASSWORD.
"""

import imaplib
import os

from peers import CONTEXT, check

QUOTA_KIB = 200


def message(size):
    head = b"From: a@example.com\r\nSubject: filler\r\n\r\n"
    return head + b"x" * (size - len(head) - 2) + b"\r\n"


client = imaplib.IMAP4_SSL("127.0.0.1", int(os.environ["IMAPS_PORT"]), ssl_context=CONTEXT)
client.login(os.environ["USER_ADDRESS"], os.environ["PASSWORD"])
typ, data = client.capability()
check("QUOTA" in data[0].decode().split() and "QUOTA=RES-STORAGE" in data[0].decode().split(),
      f"QUOTA and QUOTA=RES-STORAGE advertised: {data}")

typ, data = client.getquotaroot("INBOX")
check(typ == "OK" and data[0] == [b'INBOX ""'] and data[1] == [b'"" (STORAGE 0 %d)' % QUOTA_KIB],
      f"GETQUOTAROOT INBOX on an empty account: {data}")
typ, data = client.getquotaroot("Not/Yet/Created")
check(typ == "OK" and data[0] == [b'Not/Yet/Created ""'], f"GETQUOTAROOT of a mailbox that does not exist: {data}")

# 60,000 octets each: three fit in 200 KiB (204,800 octets), a fourth does not.
for number in range(3):
    typ, data = client.append("INBOX", None, None, message(60000))
    check(typ == "OK", f"APPEND {number + 1} within the quota: {data}")
typ, data = client.getquota('""')
check(typ == "OK" and data == [b'"" (STORAGE 176 %d)' % QUOTA_KIB], f"GETQUOTA after 180,000 octets: {data}")
typ, data = client.append("INBOX", None, None, message(60000))
check(typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), f"APPEND over the quota: {typ} {data}")
typ, data = client.getquota("other-root")
check(typ == "NO", f"GETQUOTA of a root that does not exist: {typ} {data}")
typ, data = client.setquota('""', "(STORAGE 999999)")
check(typ == "NO" and b"NOPERM" in data[0], f"SETQUOTA is refused: {typ} {data}")

client.select("INBOX")
typ, data = client.copy("1", "Archive")
check(typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), f"COPY over the quota: {typ} {data}")
typ, data = client.status("Archive", "(MESSAGES)")
check(b"MESSAGES 0" in data[0], f"nothing was copied: {data}")

client.store("1:2", "+FLAGS", "(\\Deleted)")
typ, data = client.status("INBOX", "(DELETED DELETED-STORAGE)")
check(typ == "OK" and b"DELETED 2 DELETED-STORAGE 120000" in data[0], f"STATUS DELETED-STORAGE: {data}")
client.expunge()
typ, data = client.getquota('""')
check(data == [b'"" (STORAGE 59 %d)' % QUOTA_KIB], f"an EXPUNGE gives the space back: {data}")
typ, data = client.copy("1", "Archive")
check(typ == "OK", f"COPY within the quota: {typ} {data}")
client.logout()
print("all QUOTA checks passed")
