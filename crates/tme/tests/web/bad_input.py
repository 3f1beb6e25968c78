"""Hostile and broken input to the webmail through Python's urllib: forged session cookies,
a message of 10,000 parts, a 50 MB HTML body, attachment names with path tricks, malformed
forms and paths. Each gets a clear error page or a safe, bounded rendering; the node keeps
answering.

Environment: HTTP_PORT, USER_ADDRESS, PASSWORD, PARTS_SUBJECT, HUGE_SUBJECT, TRICK_SUBJECT.
"""

import http.cookiejar
import os
import re
import time
import urllib.request

from http_client import BASE, Client, csrf_of, message_link

ADDRESS, PASSWORD = os.environ["USER_ADDRESS"], os.environ["PASSWORD"]


def main():
    # Forged sessions: a well-formed token nobody was given, a malformed one, an empty one.
    for token in ["ab" * 32, "zz" * 32, "", "a" * 5000, "../../etc/passwd"]:
        forged = Client()
        forged.jar.set_cookie(http.cookiejar.Cookie(
            0, "tme_session", token, None, False, "127.0.0.1", False, False, "/", True,
            True, None, False, None, None, {}))
        status, _, page, url = forged.request("/mail")
        assert status == 200 and url.endswith("/login"), (token[:20], status, url)
        status, _, _, _ = forged.request("/mail/1/act", {"csrf": "0" * 64, "action": "read"},
                                         follow=False)
        assert status == 403, status
    print("forged session cookies log nobody in")

    user = Client()
    page = user.login(ADDRESS, PASSWORD)
    csrf = csrf_of(page)

    # 10,000 parts: shown, with the attachments listed up to the limit.
    started = time.monotonic()
    status, _, message, _ = user.request(message_link(page, os.environ["PARTS_SUBJECT"]))
    assert status == 200, status
    assert "More attachments are not listed." in message, message[-2000:]
    print(f"10,000 parts: shown with a bounded attachment list ({time.monotonic() - started:.1f} s)")

    # 50 MB of HTML: its beginning shown, sanitised, and the page bounded.
    started = time.monotonic()
    status, _, message, _ = user.request(message_link(page, os.environ["HUGE_SUBJECT"]))
    assert status == 200, status
    assert "only its beginning is shown" in message, message[:2000]
    assert len(message) < 8 * 1024 * 1024, len(message)
    assert "<script" not in message.split("</head>", 1)[1].replace(
        '<script src="/static/app.js" defer></script>', ""), "a script survived"
    print(f"50 MB HTML: cut and sanitised, page of {len(message) // 1024} KiB "
          f"({time.monotonic() - started:.1f} s)")

    # Attachment names with path tricks come out as plain file names.
    link = message_link(page, os.environ["TRICK_SUBJECT"])
    status, _, message, _ = user.request(link)
    parts = re.findall(r'href="(/mail/\d+/\d+/part/\d+)" download', message)
    assert len(parts) == 3, message
    names = []
    for part in parts:
        with user.following.open(urllib.request.Request(BASE + part)) as response:
            disposition = response.headers["Content-Disposition"]
            assert disposition.startswith("attachment;"), disposition
            names.append(re.search(r'filename="([^"]*)"', disposition).group(1))
    assert names == ["passwd", "evil.exe", "notes.txt"], names
    for name in names:
        assert "/" not in name and "\\" not in name and ".." not in name, name
    print("path tricks in attachment names:", names)

    # Malformed forms and paths: clear errors, nothing changed, the node answers on.
    for path, fields, expected in [
            ("/mail/1/act", "csrf=" + csrf + "&uid=%ff%fe&action=read", 404),
            ("/mail/1/act", "csrf=" + csrf + "&uid=99999999999999999999&action=read", 404),
            ("/mail/1/act", "csrf=" + csrf + "&action=read&uid=1&uid=", 404),
            ("/folders/create", "csrf=" + csrf + "&name=" + "x" * 600, 400),
            ("/folders/create", "csrf=" + csrf + "&name=%00bad", 400)]:
        status, _, page, _ = user.request(path, raw_body=fields.encode(), follow=False)
        assert status == expected, (path, fields[:80], status, page[:500])
    status, _, _, _ = user.request("/mail", raw_body=b"x" * (128 * 1024), follow=False)
    assert status in (403, 405, 413), status
    for path in ["/mail/1/%2e%2e/%2e%2e/etc/passwd", "/mail/1/1/part/-1",
                 "/mail/-1", "/mail/1/4294967296", "/search?since=2026-13-45"]:
        status, _, page, _ = user.request(path)
        assert status in (200, 404), (path, status)
        assert "root:" not in page
    status, _, _, url = user.request("/mail")
    assert status == 200 and url.endswith("/mail"), (status, url)
    print("malformed forms and paths: clear errors; the node answers on")


if __name__ == "__main__":
    main()
