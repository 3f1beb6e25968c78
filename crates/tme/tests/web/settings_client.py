"""The webmail's settings through Python's standard HTTP client (urllib), checked with the
standard IMAP client (imaplib): every settings POST is refused without the session's CSRF
token and changes nothing, and works with it; an app password made in the web logs in over
IMAP until it is revoked there; a session revoked in the list is logged out, and so are all
others on request; a password change needs the current password, a confirmation and a
minimum length, then the old password is refused over IMAP, the new one accepted, and the
other web sessions are logged out. The partner's brand: chosen by the Host header on the
login page (a hosted domain's subdomain), by the account once logged in, its colours as a
style sheet and its logo's origin, alone, added to the CSP's img-src.

Environment: HTTP_PORT, IMAPS_PORT, CERTIFICATE, USER_ADDRESS, PASSWORD,
BRAND_PRODUCT_NAME, BRAND_COLOUR_PRIMARY, BRAND_LOGO_URL.
"""

import html
import imaplib
import os
import re
import ssl
import urllib.error
import urllib.request

from http_client import BASE, CSP, Client, csrf_of, settings

ADDRESS = os.environ["USER_ADDRESS"]
PASSWORD = os.environ["PASSWORD"]
NEW_PASSWORD = "a new and longer password"
CONTEXT = ssl.create_default_context(cafile=os.environ["CERTIFICATE"])
CONTEXT.check_hostname = False


def imap_login_works(password):
    client = imaplib.IMAP4_SSL("127.0.0.1", int(os.environ["IMAPS_PORT"]), ssl_context=CONTEXT)
    try:
        client.login(ADDRESS, password)
    except imaplib.IMAP4.error:
        return False
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return True


def post(client, path, fields, expect_status=303, expect_location=None):
    status, headers, page, _ = client.request(path, fields, follow=False)
    assert status == expect_status, (path, status, page)
    if expect_location is not None:
        assert headers["Location"] == expect_location, (path, headers["Location"])
    return page


def get_with_host(path, host):
    request = urllib.request.Request(BASE + path, headers={"Host": host})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def main():
    user = Client()
    user.login(ADDRESS, PASSWORD)
    page = settings(user)
    for heading in ["Profile", "Signature", "Password", "App passwords", "Web sessions"]:
        assert f">{heading}</h2>" in page, (heading, page)
    for field in ["display_name", "signature", "current_password", "new_password",
                  "confirm_password", "app_password_label"]:
        assert f'label for="{field}"' in page and f'id="{field}"' in page, (field, page)
    csrf = csrf_of(page)

    # Without the token (or with a wrong one) every settings POST is refused and changes
    # nothing.
    forms = [
        ("/settings/profile", {"display_name": "Mallory"}),
        ("/settings/signature", {"signature": "pwned"}),
        ("/settings/password", {"current_password": PASSWORD, "new_password": "mallory's pw!",
                                "confirm_password": "mallory's pw!"}),
        ("/settings/app-passwords", {"label": "mallory"}),
        ("/settings/app-passwords/1/revoke", {}),
        ("/settings/sessions/revoke", {"session": "0" * 64}),
        ("/settings/sessions/revoke-others", {}),
    ]
    for path, fields in forms:
        for token in [None, "0" * 64]:
            sent = dict(fields)
            if token is not None:
                sent["csrf"] = token
            post(user, path, sent, expect_status=403)
    page = settings(user)
    assert "Mallory" not in page and "pwned" not in page and "mallory" not in page, page
    assert imap_login_works(PASSWORD), "the password was changed by a tokenless POST"
    print("settings POSTs without a valid CSRF token: 403, nothing changed")

    # Display name and signature.
    post(user, "/settings/profile", {"csrf": csrf, "display_name": "Alice <Liddell>"},
         expect_location="/settings?done=display-name")
    page = settings(user)
    assert 'value="Alice &lt;Liddell&gt;"' in page, page
    status, _, page, _ = user.request("/settings?done=display-name")
    assert "Display name saved." in page, page
    post(user, "/settings/profile", {"csrf": csrf, "display_name": "x" * 101},
         expect_location="/settings?error=display-name")
    signature = "-- \r\nAlice\r\n<b>Wonderland</b>"
    post(user, "/settings/signature", {"csrf": csrf, "signature": signature},
         expect_location="/settings?done=signature")
    page = settings(user)
    assert "-- \nAlice\n&lt;b&gt;Wonderland&lt;/b&gt;</textarea>" in page, page
    print("display name and signature saved")

    # An app password made here logs in over IMAP, and no longer once revoked.
    page = post(user, "/settings/app-passwords", {"csrf": csrf, "label": "Thunderbird"},
                expect_status=200)
    match = re.search(r'<code id="new-app-password">([a-z0-9-]+)</code>', page)
    assert match, page
    app_password = match.group(1)
    assert re.fullmatch(r"([a-z0-9]{4}-){4}[a-z0-9]{4}", app_password), app_password
    assert app_password not in settings(user), "an app password is shown only once"
    assert imap_login_works(app_password), "the new app password does not log in"
    revoke = None
    for row in re.findall(r"<tr>.*?</tr>", page, re.S):
        if "Thunderbird" in row:
            revoke = re.search(r'action="(/settings/app-passwords/\d+/revoke)"', row).group(1)
    assert revoke, page
    post(user, revoke, {"csrf": csrf}, expect_location="/settings?done=app-password-revoked")
    assert "Thunderbird" not in settings(user)
    assert not imap_login_works(app_password), "a revoked app password still logs in"
    post(user, revoke, {"csrf": csrf}, expect_status=404)
    print("app password: shown once, logs in over IMAP, refused after revoke")

    # Sessions: the list marks this one; revoking another logs that one out.
    second = Client()
    second.login(ADDRESS, PASSWORD)
    page = settings(user)
    assert page.count("This session") == 1, page
    hashes = re.findall(r'name="session" value="([0-9a-f]{64})"', page)
    assert len(hashes) == 1, page
    assert "Python-urllib" in page, page
    post(user, "/settings/sessions/revoke", {"csrf": csrf, "session": hashes[0]},
         expect_location="/settings?done=session-revoked")
    status, _, _, url = second.request("/mail")
    assert url.endswith("/login"), url
    third, fourth = Client(), Client()
    third.login(ADDRESS, PASSWORD)
    fourth.login(ADDRESS, PASSWORD)
    post(user, "/settings/sessions/revoke-others", {"csrf": csrf},
         expect_location="/settings?done=sessions-revoked")
    for client in [third, fourth]:
        status, _, _, url = client.request("/mail")
        assert url.endswith("/login"), url
    status, _, _, url = user.request("/mail")
    assert status == 200 and url.endswith("/mail"), url
    print("sessions listed; one and all others revoked and logged out")

    # Password change: refused without the right current password, a confirmation or the
    # length; then done, and the other sessions are logged out.
    other = Client()
    other.login(ADDRESS, PASSWORD)
    for fields, code in [
        ({"current_password": "wrong", "new_password": NEW_PASSWORD,
          "confirm_password": NEW_PASSWORD}, "password-wrong"),
        ({"current_password": PASSWORD, "new_password": NEW_PASSWORD,
          "confirm_password": NEW_PASSWORD + "x"}, "password-mismatch"),
        ({"current_password": PASSWORD, "new_password": "short",
          "confirm_password": "short"}, "password-length"),
        ({"current_password": os.environ["APP_PASSWORD"], "new_password": NEW_PASSWORD,
          "confirm_password": NEW_PASSWORD}, "password-wrong"),
    ]:
        post(user, "/settings/password", {"csrf": csrf, **fields},
             expect_location=f"/settings?error={code}")
    status, _, page, _ = user.request("/settings?error=password-wrong")
    assert "The current password is wrong." in page, page
    post(user, "/settings/password", {"csrf": csrf, "current_password": PASSWORD,
                                      "new_password": NEW_PASSWORD,
                                      "confirm_password": NEW_PASSWORD},
         expect_location="/settings?done=password")
    status, _, _, url = other.request("/mail")
    assert url.endswith("/login"), "another session outlived the password change"
    status, _, _, url = user.request("/mail")
    assert status == 200 and url.endswith("/mail"), "the changing session was logged out"
    assert not imap_login_works(PASSWORD), "the old password still logs in over IMAP"
    assert imap_login_works(NEW_PASSWORD), "the new password does not log in over IMAP"
    Client().login(ADDRESS, NEW_PASSWORD)
    print("password changed: old refused and new accepted over IMAP; other sessions ended")

    # The brand: by Host on the login page, by the account once logged in.
    product = os.environ["BRAND_PRODUCT_NAME"]
    logo_origin = "https://" + os.environ["BRAND_LOGO_URL"].split("/")[2]
    status, headers, page = get_with_host("/login", "webmail.mail.example.org")
    assert status == 200, (status, page)
    assert f"{html.escape(product)}</a>" in page and f"Log in – {product}" in page, page
    assert f'src="{os.environ["BRAND_LOGO_URL"]}"' in page, page
    assert headers["Content-Security-Policy"] == CSP.replace(
        "img-src 'self'", f"img-src 'self' {logo_origin}"), headers
    sheet = re.search(r'href="(/static/brand/[0-9a-f]{16}\.css)"', page)
    assert sheet, page
    status, headers, css = get_with_host(sheet.group(1), "127.0.0.1")
    assert status == 200 and headers["Content-Type"].startswith("text/css"), (status, headers)
    assert f"--primary: {os.environ['BRAND_COLOUR_PRIMARY']};" in css, css
    status, _, _ = get_with_host("/static/brand/0123456789abcdef.css", "127.0.0.1")
    assert status == 404, status
    for host in ["127.0.0.1", "example.com", "org"]:
        status, headers, page = get_with_host("/login", host)
        assert status == 200 and product not in page and "/static/brand/" not in page, page
        assert headers["Content-Security-Policy"] == CSP, headers
    page = settings(user)
    assert product in page and sheet.group(1) in page, page
    print("brand by Host and by account; colour sheet served; CSP widened by the logo only")


if __name__ == "__main__":
    main()
