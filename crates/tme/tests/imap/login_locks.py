"""Login throttling through IMAP: repeated failures lock the account (`attempt`), and the
right password is refused while it is locked. Run by crates/tme/tests/imap.rs in steps:
`fail N`, `expect-locked`, `expect-ok`. Environment: IMAPS_PORT, USER_ADDRESS, PASSWORD.
"""

import imaplib
import os
import sys

from peers import CONTEXT


def attempt(password):
    session = imaplib.IMAP4_SSL("127.0.0.1", int(os.environ["IMAPS_PORT"]), ssl_context=CONTEXT)
    try:
        session.login(os.environ["USER_ADDRESS"], password)
        session.logout()
        return "OK"
    except imaplib.IMAP4.error as error:
        return str(error)


step = sys.argv[1]
if step == "fail":
    for _ in range(int(sys.argv[2])):
        answer = attempt("not the password")
        if "AUTHENTICATIONFAILED" not in answer:
            sys.exit(f"a wrong password: {answer}")
elif step == "expect-locked":
    answer = attempt(os.environ["PASSWORD"])
    if "Too many failed logins" not in answer:
        sys.exit(f"the right password while locked: {answer}")
elif step == "expect-ok":
    answer = attempt(os.environ["PASSWORD"])
    if answer != "OK":
        sys.exit(f"the right password after unlock: {answer}")
print(step, "ok")
