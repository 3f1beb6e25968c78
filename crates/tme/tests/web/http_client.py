"""The webmail through Python's standard HTTP client (urllib with http.cookiejar), as a
script or a bot would use it: the login form refuses a wrong password and a form without
its token, takes the password and an app password, sets the session cookie with its
attributes; a POST without the CSRF token (or with a wrong one) gets 403; another account's
mailbox and message give 404 and never their content; logout ends the session.

Environment: HTTP_PORT, USER_ADDRESS, PASSWORD, APP_PASSWORD, OTHER_ADDRESS,
OTHER_PASSWORD, CORPUS_SUBJECT, OTHER_SUBJECT, OTHER_SECRET.
"""

import http.cookiejar
import os
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request

socket.setdefaulttimeout(60)
# The webmail over plain HTTP, or over the `https` listener when BASE_URL says so (with the
# node's certificate, CERTIFICATE, trusted; it names the node's host, not 127.0.0.1).
BASE = os.environ.get("BASE_URL", f"http://127.0.0.1:{os.environ['HTTP_PORT']}")


def tls_context():
    context = ssl.create_default_context(cafile=os.environ["CERTIFICATE"])
    context.check_hostname = False
    return context

CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
       "img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


class LoopbackSecureCookies(http.cookiejar.DefaultCookiePolicy):
    """Sends Secure cookies back over plain HTTP to the loopback node, as browsers do for
    127.0.0.1 (a potentially trustworthy origin); the standard policy only does for https."""

    def return_ok_secure(self, cookie, request):
        return urllib.parse.urlsplit(request.get_full_url()).hostname == "127.0.0.1"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *arguments):
        return None


class Client:
    def __init__(self, headers=None):
        # Sent with every request (a proxy's X-Forwarded-For, for one).
        self.headers = dict(headers or {})
        self.jar = http.cookiejar.CookieJar(policy=LoopbackSecureCookies())
        handlers = [urllib.request.HTTPCookieProcessor(self.jar)]
        if BASE.startswith("https:"):
            handlers.append(urllib.request.HTTPSHandler(context=tls_context()))
        self.following = urllib.request.build_opener(*handlers)
        self.not_following = urllib.request.build_opener(*handlers, NoRedirect())

    def request(self, path, fields=None, follow=True, raw_body=None):
        data = raw_body
        if fields is not None:
            data = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(BASE + path, data=data, headers=self.headers)
        if data is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        opener = self.following if follow else self.not_following
        try:
            with opener.open(request) as response:
                return response.status, response.headers, response.read().decode(), response.url
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode(), error.url

    def login_token(self):
        status, headers, page, _ = self.request("/login")
        assert status == 200, (status, page)
        assert headers["Content-Security-Policy"] == CSP, headers
        match = re.search(r'name="login_token" value="([0-9a-f]+)"', page)
        assert match, page
        return match.group(1)

    def session_cookie(self):
        return next((cookie for cookie in self.jar if cookie.name == "tme_session"), None)

    def login(self, address, password):
        token = self.login_token()
        status, headers, page, _ = self.request(
            "/login",
            {"login_token": token, "address": address, "password": password},
            follow=False,
        )
        assert status == 303, (status, page)
        assert headers["Location"] == "/mail", headers
        set_cookies = headers.get_all("Set-Cookie")
        session = [value for value in set_cookies if value.startswith("tme_session=")]
        assert len(session) == 1, set_cookies
        for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"]:
            assert attribute in session[0].split("; "), (attribute, session[0])
        assert re.match(r"tme_session=[0-9a-f]{64};", session[0]), session[0]
        status, _, page, url = self.request("/mail")
        assert status == 200 and url.endswith("/mail"), (status, url, page)
        return page


def settings(client):
    """The settings page of `client`'s session."""
    status, _, page, url = client.request("/settings")
    assert status == 200 and url.endswith("/settings"), (status, url, page)
    return page


def csrf_of(page):
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match, page
    return match.group(1)


def message_link(page, subject):
    """The /mail/MAILBOX/UID link of the row whose subject is `subject`."""
    for row in re.findall(r"<tr.*?</tr>", page, re.S):
        if subject in row:
            match = re.search(r'href="(/mail/\d+/\d+)"', row)
            assert match, row
            return match.group(1)
    raise AssertionError(f"no row with {subject!r} in {page}")


def main():
    address, password = os.environ["USER_ADDRESS"], os.environ["PASSWORD"]
    other_address, other_password = os.environ["OTHER_ADDRESS"], os.environ["OTHER_PASSWORD"]

    # Not logged in: the pages send to the login form.
    anonymous = Client()
    status, _, _, url = anonymous.request("/mail")
    assert status == 200 and url.endswith("/login"), (status, url)

    # A wrong password is refused, and no session cookie is set.
    token = anonymous.login_token()
    status, _, page, _ = anonymous.request(
        "/login", {"login_token": token, "address": address, "password": "wrong"}, follow=False)
    assert status == 401, (status, page)
    assert "Wrong address or password." in page, page
    assert anonymous.session_cookie() is None
    # A login form without its token (a form posted from another site) is refused.
    status, _, _, _ = anonymous.request(
        "/login", {"address": address, "password": password}, follow=False)
    assert status == 403, status
    status, _, _, _ = anonymous.request(
        "/login", {"login_token": "0" * 32, "address": address, "password": password},
        follow=False)
    assert status == 403, status
    assert anonymous.session_cookie() is None
    print("wrong password and tokenless login refused")

    # The other account logs in and finds its own message.
    other = Client()
    other_page = other.login(other_address, other_password)
    other_link = message_link(other_page, os.environ["OTHER_SUBJECT"])
    other_mailbox = other_link.rsplit("/", 1)[0]
    status, _, page, _ = other.request(other_link)
    assert status == 200 and os.environ["OTHER_SECRET"] in page, (status, page)

    # The user logs in with the password, sees the corpus message and the unread count.
    user = Client()
    page = user.login(address, password)
    assert os.environ["CORPUS_SUBJECT"] in page, page
    assert 'class="unread-count"' in page, page
    assert os.environ["OTHER_SUBJECT"] not in page
    link = message_link(page, os.environ["CORPUS_SUBJECT"])
    status, headers, message, _ = user.request(link)
    assert status == 200, (status, message)
    assert headers["Content-Security-Policy"] == CSP, headers
    assert headers["Cache-Control"] == "no-store", headers
    assert "Slow but steady wins the race" in message, message
    print("logged in, list and message shown")

    # Another account's message and mailbox: 404, never their content.
    for path in [other_link, other_mailbox, other_mailbox + "?page=1"]:
        status, _, page, _ = user.request(path)
        assert status == 404, (path, status)
        assert os.environ["OTHER_SECRET"] not in page and os.environ["OTHER_SUBJECT"] not in page
    for path in ["/mail/not-a-number", "/mail/999999/1", link.rsplit("/", 1)[0] + "/999999",
                 link.rsplit("/", 1)[0] + "/x"]:
        status, _, _, _ = user.request(path)
        assert status == 404, (path, status)
    print("another account's mailbox and message: 404")

    # A POST without the CSRF token, with a wrong one, or not as a form: 403, and the
    # session lives on.
    csrf = csrf_of(user.request("/mail")[2])
    for fields, raw in [({}, None), ({"csrf": "0" * 64}, None), ({"csrf": csrf[:-1]}, None),
                        (None, b"csrf")]:
        status, _, _, _ = user.request("/logout", fields, follow=False, raw_body=raw)
        assert status == 403, (fields, raw, status)
    status, _, _, url = user.request("/mail")
    assert status == 200 and url.endswith("/mail"), (status, url)
    # The other account's CSRF token does not work with this session.
    other_csrf = csrf_of(other.request("/mail")[2])
    status, _, _, _ = user.request("/logout", {"csrf": other_csrf}, follow=False)
    assert status == 403, status
    # Without a session, a POST is refused the same way.
    status, _, _, _ = anonymous.request("/logout", {"csrf": csrf}, follow=False)
    assert status == 403, status
    print("POST without a valid CSRF token: 403")

    # Logout with the token ends the session: the old cookie logs nobody in.
    old_cookie = user.session_cookie().value
    status, headers, _, _ = user.request("/logout", {"csrf": csrf}, follow=False)
    assert status == 303 and headers["Location"] == "/login", (status, headers)
    status, _, _, url = user.request("/mail")
    assert url.endswith("/login"), url
    replay = Client()
    replay.jar.set_cookie(http.cookiejar.Cookie(
        0, "tme_session", old_cookie, None, False, "127.0.0.1", False, False, "/", True,
        True, None, False, None, None, {}))
    status, _, _, url = replay.request("/mail")
    assert url.endswith("/login"), url
    print("logout ends the session")

    # An app password logs in too.
    Client().login(address, os.environ["APP_PASSWORD"])
    print("app password logs in")


if __name__ == "__main__":
    main()
