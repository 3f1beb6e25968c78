"""Times webmail pages of a big folder from one keep-alive HTTP client on loopback: what the
server takes to answer (request sent to last byte read), per page kind, p50 and p99, and the
page's weight in bytes.

    python3 bench/web-load.py PORT ADDRESS PASSWORD [ROUNDS [SKIP]]

SKIP: how many of the newest messages to pass over before the ones opened (so each run
opens unread messages).

Prints one line per page kind: `kind=... p50_ms=... p99_ms=... bytes=... requests=...`.
Used by bench/web.sh.
"""

import http.client
import re
import statistics
import sys
import time
import urllib.parse

port, address, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 300
skip = int(sys.argv[5]) if len(sys.argv) > 5 else 0
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
cookies = {}


def request(method, path, body=None):
    headers = {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    started = time.perf_counter()
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    content = response.read()
    elapsed = time.perf_counter() - started
    for header, value in response.getheaders():
        if header.lower() == "set-cookie":
            name, rest = value.split("=", 1)
            cookies[name] = rest.split(";", 1)[0]
    return response.status, content, elapsed, response.getheader("Location")


status, page, _, _ = request("GET", "/login")
token = re.search(rb'name="login_token" value="([0-9a-f]+)"', page).group(1).decode()
status, _, _, location = request("POST", "/login", urllib.parse.urlencode(
    {"login_token": token, "address": address, "password": password}))
assert status == 303 and location == "/mail", (status, location)
status, inbox_page, _, _ = request("GET", "/mail")
assert status == 200, status
inbox = int(re.search(rb'href="/mail/(\d+)" data-mailbox="\d+" aria-current="page"',
                      inbox_page).group(1))
messages = int(re.search(rb'<span class="count">(\d+) messages', inbox_page).group(1))
pages = (messages + 49) // 50
uids = [int(uid) for uid in re.findall(rb'data-uid="(\d+)"', inbox_page)]
top_uid = max(uids) - skip
print(f"folder messages={messages} pages={pages}", flush=True)


def measure(kind, paths, warmup=5):
    for path in paths[:warmup]:
        request("GET", path)
    times, sizes = [], []
    for index in range(rounds):
        status, content, elapsed, _ = request("GET", paths[index % len(paths)])
        assert status == 200, (kind, paths[index % len(paths)], status)
        times.append(elapsed * 1000)
        sizes.append(len(content))
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"kind={kind} p50_ms={statistics.median(times):.2f} p99_ms={p99:.2f} "
          f"bytes={int(statistics.median(sizes))} requests={len(times)}", flush=True)


measure("list-first-page", [f"/mail/{inbox}"])
measure("list-middle-page", [f"/mail/{inbox}?page={pages // 2}"])
measure("list-last-page", [f"/mail/{inbox}?page={pages}"])
measure("list-by-date", [f"/mail/{inbox}?sort=date"])
measure("list-by-size", [f"/mail/{inbox}?sort=size"])
# The conversation view: the corpus copies share their Message-IDs, so each corpus message
# makes one conversation of all its copies (about 50,000 / corpus size messages each).
status, first_conversations, _, _ = request("GET", f"/mail/{inbox}?sort=conversations")
assert status == 200, status
conversations = int(re.search(rb", (\d+) conversations", first_conversations).group(1))
conversation_pages = max(1, -(-conversations // 50))
print(f"folder conversations={conversations} pages={conversation_pages}", flush=True)
measure("conversations-first-page", [f"/mail/{inbox}?sort=conversations"])
measure("conversations-last-page",
        [f"/mail/{inbox}?sort=conversations&page={conversation_pages}"])
# Each message opened once: the first open also marks it read (a durable write).
measure("open-unread", [f"/mail/{inbox}/{top_uid - index}" for index in range(rounds + 5)],
        warmup=0)
measure("open-read", [f"/mail/{inbox}/{top_uid - index}" for index in range(rounds)])
measure("style-sheet", ["/static/style.css"])
