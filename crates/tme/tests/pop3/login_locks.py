"""Login throttling through POP3: repeated failures lock the account (`fail N`), the right
password is refused while it is locked (`expect-locked`), and works once an operator lifted
the lock (`expect-ok`). Run by crates/tme/tests/pop3.rs. Environment: see common.py.
"""

import sys

from common import PASSWORD, login, pop3s_client, refused


def attempt(password):
    client = pop3s_client()
    answer = refused(lambda: login(client, password))
    if answer.startswith("accepted"):
        client.quit()
        return "OK"
    client.close()
    return answer


step = sys.argv[1]
if step == "fail":
    for _ in range(int(sys.argv[2])):
        answer = attempt("not the password")
        if answer != "-ERR [AUTH] Authentication failed":
            sys.exit(f"a wrong password: {answer}")
elif step == "expect-locked":
    answer = attempt(PASSWORD)
    if answer != "-ERR [AUTH] Too many failed logins: try again later":
        sys.exit(f"the right password while locked: {answer}")
elif step == "expect-ok":
    answer = attempt(PASSWORD)
    if answer != "OK":
        sys.exit(f"the right password after unlock: {answer}")
print(step, "ok")
