"""The IMAP side of the webmail tests: Python's imaplib over IMAPS to the test node, for
checking what the web did.

Environment: IMAPS_PORT, CERTIFICATE, USER_ADDRESS, PASSWORD.
"""

import imaplib
import os
import ssl


def imap(address=None, password=None):
    """A logged-in IMAPS session (the test account's unless told otherwise). The node's
    self-signed certificate names mail.test, not 127.0.0.1: the chain is checked, the name
    is not."""
    context = ssl.create_default_context(cafile=os.environ["CERTIFICATE"])
    context.check_hostname = False
    client = imaplib.IMAP4_SSL("127.0.0.1", int(os.environ["IMAPS_PORT"]), ssl_context=context)
    client.login(address or os.environ["USER_ADDRESS"], password or os.environ["PASSWORD"])
    return client
