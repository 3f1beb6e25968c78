"""The webmail behind a trusted reverse proxy (`http.trusted_proxies` = the loopback), with
Python's standard HTTP client (urllib) sending `X-Forwarded-For` as a proxy would: failed
logins lock the client the header names, not the proxy, so another client behind the same
proxy still logs in; the session list shows the forwarded address; a client's own
X-Forwarded-For entries before the proxy's are not believed.

Environment: HTTP_PORT, USER_ADDRESS, PASSWORD; the node allows FAILURES_PER_IP_MAX failed
logins from one address.
"""

import os

from http_client import Client, settings

ADDRESS = os.environ["USER_ADDRESS"]
PASSWORD = os.environ["PASSWORD"]
FAILURES_PER_IP_MAX = int(os.environ["FAILURES_PER_IP_MAX"])


def attempt(client, password):
    token = client.login_token()
    status, _, page, _ = client.request(
        "/login", {"login_token": token, "address": ADDRESS, "password": password},
        follow=False)
    return status, page


def main():
    # One client behind the proxy guesses until its address is locked.
    guesser = Client({"X-Forwarded-For": "192.0.2.10"})
    for _ in range(FAILURES_PER_IP_MAX):
        status, page = attempt(guesser, "wrong password")
        assert status == 401, (status, page)
    status, page = attempt(guesser, PASSWORD)
    assert status == 429, (status, page)
    # A client that writes the locked address first itself is judged by the proxy's entry.
    forger = Client({"X-Forwarded-For": "192.0.2.10, 192.0.2.12"})
    status, _ = attempt(forger, "wrong again")
    assert status == 401, status
    print("the forwarded client is locked, not the proxy")

    # Another client behind the same proxy logs in, and is listed by its own address.
    other = Client({"X-Forwarded-For": "192.0.2.11"})
    other.login(ADDRESS, PASSWORD)
    page = settings(other)
    assert "192.0.2.11" in page, page
    assert "127.0.0.1" not in page, page
    print("another client behind the proxy logs in, listed as 192.0.2.11")


if __name__ == "__main__":
    main()
