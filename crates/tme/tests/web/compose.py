"""Writing mail in the webmail, checked with real peers. In headless Chromium (Selenium):
compose to another account with an attachment chosen through the file input and send;
Python's imaplib then finds the message in the recipient's INBOX with the attachment byte
for byte and no Bcc, and the copy in the sender's Sent (\\Seen, Bcc kept). The recipient
replies (quoted, threaded), forwards inline (the attachment carried) and as an attachment
(a message/rfc822 part), and saves a draft, reopens it, saves it again (the old one goes)
and sends it (Drafts empties). Through urllib: a multipart POST without or with a wrong CSRF
token gets 403, an oversized one 413 (declared and streamed), a malformed one 400, and file
names with path tricks come out sanitised; the draft endpoint answers a script in JSON with
the form's new state (the new draft, its attachments renumbered).
The form also saves itself (app.js): not while untouched; after typing stops, the chosen
file then kept from the draft; each save replacing the last (one draft in Drafts); a refused
save shown and retried; Send during a save waiting for it, every attachment sent once.

Environment: HTTP_PORT, IMAPS_PORT, USER_ADDRESS, PASSWORD, OTHER_ADDRESS, OTHER_PASSWORD,
SCREENSHOT_DIR, WORK_DIR.
"""

import email
import email.policy
import imaplib
import json
import os
import re
import socket
import ssl
import threading
import time
import uuid

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from chromium import browser, click, gone
from http_client import Client, csrf_of

BASE = f"http://127.0.0.1:{os.environ['HTTP_PORT']}"
PORT = int(os.environ["HTTP_PORT"])
SCREENSHOTS = os.environ["SCREENSHOT_DIR"]
ALICE, ALICE_PASSWORD = os.environ["USER_ADDRESS"], os.environ["PASSWORD"]
BOB, BOB_PASSWORD = os.environ["OTHER_ADDRESS"], os.environ["OTHER_PASSWORD"]
UPLOAD_LIMIT = 25 * 1024 * 1024
SUBJECT = "Compose test with an attachment"
ATTACHMENT_NAME = "Messwerte ü.bin"


def imap(address, password):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    session = imaplib.IMAP4_SSL("127.0.0.1", int(os.environ["IMAPS_PORT"]),
                                ssl_context=context, timeout=60)
    session.login(address, password)
    return session


def fetch_all(address, password, mailbox):
    """Every message of `mailbox` as (flags, email.message.EmailMessage)."""
    session = imap(address, password)
    try:
        status, _ = session.select(f'"{mailbox}"', readonly=True)
        assert status == "OK", (mailbox, status)
        status, data = session.uid("SEARCH", None, "ALL")
        messages = []
        for uid in data[0].split():
            status, parts = session.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
            assert status == "OK", parts
            # FLAGS may come before or after the literal.
            flags = parts[0][0].decode() + " ".join(
                part.decode() for part in parts[1:] if isinstance(part, bytes))
            raw = parts[0][1]
            messages.append((flags, email.message_from_bytes(raw, policy=email.policy.default)))
        return messages
    finally:
        session.logout()


def find(address, password, mailbox, subject):
    found = [(flags, message) for flags, message in fetch_all(address, password, mailbox)
             if message["Subject"] == subject]
    assert len(found) == 1, (mailbox, subject, [m["Subject"] for _, m in
                                                 fetch_all(address, password, mailbox)])
    return found[0]


def login(driver, address, password):
    driver.delete_all_cookies()
    driver.get(BASE + "/login")
    driver.find_element(By.ID, "address").send_keys(address)
    driver.find_element(By.ID, "password").send_keys(password)
    click(driver, driver.find_element(By.CSS_SELECTOR, "main.login button[type=submit]"))
    assert driver.current_url.endswith("/mail"), driver.current_url


def follow(driver, by, text):
    """Clicks the link and waits for the page it leads to."""
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(by, text).click()
    WebDriverWait(driver, 30).until(gone(page))


def fill(driver, field, text):
    element = driver.find_element(By.ID, field)
    element.clear()
    element.send_keys(text)


def open_received(driver, subject):
    """Opens the INBOX message whose subject is `subject`."""
    driver.get(BASE + "/mail")
    links = [link for link in driver.find_elements(By.CSS_SELECTOR, "td.subject a")
             if link.text.endswith(subject)]
    assert len(links) == 1, (subject, driver.page_source)
    page = driver.find_element(By.TAG_NAME, "html")
    links[0].click()
    WebDriverWait(driver, 30).until(gone(page))
    assert driver.find_element(By.CSS_SELECTOR, "h1.subject").text == subject


def click_button(driver, text):
    """Clicks the compose form's button `text` and waits for the page it leads to (a submit
    may wait for a draft save in flight first)."""
    buttons = [button for button in driver.find_elements(By.CSS_SELECTOR, "main.compose button")
               if button.text == text]
    assert len(buttons) == 1, (text, driver.page_source)
    click(driver, buttons[0])


def browser_flows(attachment_path, attachment):
    driver = browser()
    try:
        # Alice writes to Bob with an attachment, Bcc to herself.
        login(driver, ALICE, ALICE_PASSWORD)
        follow(driver, By.LINK_TEXT, "Compose")
        assert driver.current_url.endswith("/compose"), driver.current_url
        for field in ["to", "cc", "bcc", "subject", "body", "attachment"]:
            labels = driver.find_elements(By.CSS_SELECTOR, f"label[for={field}]")
            assert len(labels) == 1, (field, driver.page_source)
        fill(driver, "to", f"Bob <{BOB}>")
        fill(driver, "bcc", ALICE)
        fill(driver, "subject", SUBJECT)
        fill(driver, "body", "Hello Bob,\nthe figures are attached.\n")
        driver.find_element(By.ID, "attachment").send_keys(attachment_path)
        driver.save_screenshot(os.path.join(SCREENSHOTS, "compose.png"))
        click_button(driver, "Send")
        assert re.search(r"/mail/\d+$", driver.current_url), driver.current_url
        assert SUBJECT in driver.page_source, driver.page_source
        print("sent from the compose form in Chromium")

        flags, received = find(BOB, BOB_PASSWORD, "INBOX", SUBJECT)
        assert received["Bcc"] is None, received["Bcc"]
        assert received["From"].addresses[0].addr_spec == ALICE, received["From"]
        parts = list(received.iter_attachments())
        assert len(parts) == 1, parts
        assert parts[0].get_filename() == ATTACHMENT_NAME, parts[0].get_filename()
        assert parts[0].get_payload(decode=True) == attachment, "attachment changed"
        assert "the figures are attached." in received.get_body(("plain",)).get_content()
        # The webmail's hop is traced (by this host, with HTTP), without the browser's address.
        hops = [str(field) for field in received.get_all("Received")]
        web_hops = [hop for hop in hops if " (tme) with HTTP id " in hop]
        assert len(web_hops) == 1 and web_hops[0].startswith("by "), hops
        assert "127.0.0.1" not in web_hops[0], web_hops
        original_id = received["Message-ID"]
        assert original_id, received
        print(f"Bob's INBOX has it over IMAP, attachment {len(attachment)} octets byte for byte, no Bcc")

        flags, sent = find(ALICE, ALICE_PASSWORD, "Sent", SUBJECT)
        assert "\\Seen" in flags, flags
        assert sent["Message-ID"] == original_id, (sent["Message-ID"], original_id)
        assert sent["Bcc"] is not None and ALICE in sent["Bcc"], sent["Bcc"]
        print("Alice's Sent has the copy, \\Seen, with its Bcc")

        # Bob replies: the form is filled, the reply threads and quotes.
        login(driver, BOB, BOB_PASSWORD)
        open_received(driver, SUBJECT)
        driver.save_screenshot(os.path.join(SCREENSHOTS, "message-actions.png"))
        follow(driver, By.LINK_TEXT, "Reply")
        assert ALICE in driver.find_element(By.ID, "to").get_attribute("value")
        assert driver.find_element(By.ID, "subject").get_attribute("value") == "Re: " + SUBJECT
        body = driver.find_element(By.ID, "body").get_attribute("value")
        assert "> the figures are attached." in body, body
        driver.find_element(By.ID, "body").send_keys("Thanks!")
        driver.save_screenshot(os.path.join(SCREENSHOTS, "compose-reply.png"))
        click_button(driver, "Send")
        _, reply = find(ALICE, ALICE_PASSWORD, "INBOX", "Re: " + SUBJECT)
        assert reply["In-Reply-To"] == original_id, (reply["In-Reply-To"], original_id)
        assert original_id in reply["References"], reply["References"]
        assert "> the figures are attached." in reply.get_body(("plain",)).get_content()
        flags, _ = find(BOB, BOB_PASSWORD, "INBOX", SUBJECT)
        assert "\\Answered" in flags, flags
        print("reply: quoted, In-Reply-To and References set, original \\Answered")

        # The original's conversation, across folders: it (here) and Bob's reply in Sent.
        open_received(driver, SUBJECT)
        rows = driver.find_elements(By.CSS_SELECTOR, "section.conversation li")
        assert len(rows) == 2, driver.page_source
        folders = [row.find_element(By.CSS_SELECTOR, ".folder").text for row in rows]
        assert folders == ["INBOX", "Sent"], folders
        current = driver.find_elements(By.CSS_SELECTOR, "section.conversation a[aria-current=page]")
        assert len(current) == 1 and "INBOX" in current[0].text, driver.page_source
        driver.save_screenshot(os.path.join(SCREENSHOTS, "message-conversation.png"))
        driver.get(BASE + "/mail?sort=conversations")
        driver.save_screenshot(os.path.join(SCREENSHOTS, "conversations.png"))
        print("conversation: the original and the reply in Sent, listed on the message")

        # Bob forwards inline: the attachment is carried.
        open_received(driver, SUBJECT)
        follow(driver, By.LINK_TEXT, "Forward")
        assert driver.find_element(By.ID, "subject").get_attribute("value") == "Fwd: " + SUBJECT
        keep = driver.find_element(By.ID, "keep-0")
        assert keep.is_selected(), driver.page_source
        fill(driver, "to", ALICE)
        click_button(driver, "Send")
        _, forwarded = find(ALICE, ALICE_PASSWORD, "INBOX", "Fwd: " + SUBJECT)
        assert "Forwarded message" in forwarded.get_body(("plain",)).get_content()
        parts = list(forwarded.iter_attachments())
        assert [part.get_payload(decode=True) for part in parts] == [attachment], parts
        print("forward inline: text and attachment carried")

        # Bob forwards as an attachment: the original whole, as message/rfc822.
        open_received(driver, SUBJECT)
        follow(driver, By.LINK_TEXT, "Forward as attachment")
        fill(driver, "to", ALICE)
        fill(driver, "subject", "Attached: " + SUBJECT)
        click_button(driver, "Send")
        _, attached = find(ALICE, ALICE_PASSWORD, "INBOX", "Attached: " + SUBJECT)
        parts = list(attached.iter_attachments())
        assert len(parts) == 1 and parts[0].get_content_type() == "message/rfc822", parts
        inner = parts[0].get_content()
        assert inner["Subject"] == SUBJECT, inner["Subject"]
        assert inner["Message-ID"] == original_id
        inner_parts = list(inner.iter_attachments())
        assert inner_parts[0].get_payload(decode=True) == attachment
        print("forward as attachment: message/rfc822 with the original")

        # Bob saves a draft, reopens it, saves it again, then sends it.
        driver.get(BASE + "/compose")
        fill(driver, "to", ALICE)
        fill(driver, "subject", "Draft one")
        fill(driver, "body", "not finished")
        click_button(driver, "Save draft")
        assert "draft=" in driver.current_url, driver.current_url
        assert "Draft saved." in driver.page_source
        first_draft = driver.current_url
        assert driver.find_element(By.ID, "subject").get_attribute("value") == "Draft one"
        assert "not finished" in driver.find_element(By.ID, "body").get_attribute("value")
        drafts = fetch_all(BOB, BOB_PASSWORD, "Drafts")
        assert [m["Subject"] for _, m in drafts] == ["Draft one"], drafts
        assert "\\Draft" in drafts[0][0] and "\\Seen" in drafts[0][0], drafts[0][0]
        fill(driver, "subject", "Draft two")
        click_button(driver, "Save draft")
        assert driver.current_url != first_draft, driver.current_url
        drafts = fetch_all(BOB, BOB_PASSWORD, "Drafts")
        assert [m["Subject"] for _, m in drafts] == ["Draft two"], drafts
        # Reopened from the Drafts folder, like a user would.
        driver.get(BASE + "/mail")
        follow(driver, By.LINK_TEXT, "Drafts")
        follow(driver, By.PARTIAL_LINK_TEXT, "Draft two")
        follow(driver, By.LINK_TEXT, "Edit draft")
        assert driver.find_element(By.ID, "subject").get_attribute("value") == "Draft two"
        assert ALICE in driver.find_element(By.ID, "to").get_attribute("value")
        driver.save_screenshot(os.path.join(SCREENSHOTS, "compose-draft.png"))
        click_button(driver, "Send")
        find(ALICE, ALICE_PASSWORD, "INBOX", "Draft two")
        assert fetch_all(BOB, BOB_PASSWORD, "Drafts") == []
        print("draft saved, reopened, replaced, sent; Drafts empty")
    finally:
        driver.quit()


AUTOSAVE_SUBJECT = "Saved as I typed"
SECOND_NAME = "second.bin"

# Clicks Send the moment the status says a save is in flight, and answers what the status
# says right after the click: the send must wait for that save.
SEND_WHILE_SAVING = """
const done = arguments[arguments.length - 1];
const status = document.getElementById("autosave-status");
const observer = new MutationObserver(function () {
  if (status.textContent !== "Saving…") return;
  observer.disconnect();
  Array.from(document.querySelectorAll("main.compose button"))
    .find(function (button) { return button.textContent === "Send"; })
    .click();
  done(status.textContent);
});
observer.observe(status, { childList: true, characterData: true, subtree: true });
"""


def status_text(driver):
    return driver.find_element(By.ID, "autosave-status").text


def draft_field(driver):
    fields = driver.find_elements(By.CSS_SELECTOR, "#compose-form input[name=draft]")
    return fields[0].get_attribute("value") if fields else None


def kept_names(driver):
    return [label.text.split(" — ")[0] for label in
            driver.find_elements(By.CSS_SELECTOR, "ul.kept-attachments label")]


def wait_saved(driver, condition, what):
    """Waits until the status says saved and `condition(driver)` holds."""
    WebDriverWait(driver, 40, poll_frequency=0.2).until(
        lambda _: status_text(driver).startswith("Draft saved at ") and condition(driver),
        f"{what}: {status_text(driver)!r}")


def one_draft(expected_text, attachments):
    """Alice's Drafts holds exactly one draft, with `expected_text` and `attachments`."""
    drafts = fetch_all(ALICE, ALICE_PASSWORD, "Drafts")
    assert [m["Subject"] for _, m in drafts] == [AUTOSAVE_SUBJECT], drafts
    flags, draft = drafts[0]
    assert "\\Draft" in flags, flags
    assert expected_text in draft.get_body(("plain",)).get_content(), draft
    contents = [part.get_payload(decode=True) for part in draft.iter_attachments()]
    assert contents == attachments, [len(content) for content in contents]
    return draft


def autosave_flow(attachment_path, attachment):
    """The compose form saves itself: not while untouched; after typing stops, with the
    chosen file, which then becomes a kept attachment of the draft; each save replaces the
    last; a refused save says why, keeps the text and is retried; Send during a save waits
    for it, and the sent message has every attachment once, Drafts left empty."""
    second = os.urandom(4 * 1024 * 1024)
    second_path = os.path.join(os.environ["WORK_DIR"], SECOND_NAME)
    with open(second_path, "wb") as file:
        file.write(second)
    driver = browser()
    driver.set_script_timeout(60)
    try:
        login(driver, ALICE, ALICE_PASSWORD)
        driver.get(BASE + "/compose")
        status = driver.find_element(By.ID, "autosave-status")
        assert status.get_attribute("role") == "status", driver.page_source
        assert status.get_attribute("aria-live") == "polite", driver.page_source
        time.sleep(4)
        assert status_text(driver) == "" and fetch_all(ALICE, ALICE_PASSWORD, "Drafts") == []
        print("autosave: an untouched form is not saved")

        fill(driver, "to", f"Bob <{BOB}>")
        fill(driver, "subject", AUTOSAVE_SUBJECT)
        fill(driver, "body", "First version.\n")
        driver.find_element(By.ID, "attachment").send_keys(attachment_path)
        wait_saved(driver, lambda d: kept_names(d) == [ATTACHMENT_NAME], "first save")
        assert driver.find_element(By.ID, "attachment").get_attribute("value") == ""
        first = draft_field(driver)
        assert first and re.fullmatch(r"\d+/\d+", first), first
        assert driver.find_element(By.ID, "keep-0").is_selected()
        driver.save_screenshot(os.path.join(SCREENSHOTS, "compose-autosaved.png"))
        one_draft("First version.", [attachment])
        print(f"autosave: saved as {first} with the attachment, now kept from the draft")

        driver.find_element(By.ID, "body").send_keys("Second version.\n")
        wait_saved(driver, lambda d: draft_field(d) not in (None, first), "second save")
        second_draft = draft_field(driver)
        one_draft("Second version.", [attachment])
        assert kept_names(driver) == [ATTACHMENT_NAME], kept_names(driver)
        print(f"autosave: replaced by {second_draft}, still one draft with the attachment once")

        # A refused save (the form's token is wrong, as after logging in again elsewhere)
        # says why, keeps the text, takes the session's token and saves on its own.
        driver.execute_script(
            "document.querySelector('#compose-form input[name=csrf]').value = '0'.repeat(64);")
        driver.find_element(By.ID, "body").send_keys("Third version.\n")
        WebDriverWait(driver, 40, poll_frequency=0.1).until(
            lambda _: status_text(driver).startswith("Not saved: "), status_text(driver))
        refused = status_text(driver)
        assert "logged out" in refused, refused
        assert "Third version." in driver.find_element(By.ID, "body").get_attribute("value")
        assert draft_field(driver) == second_draft
        wait_saved(driver, lambda d: draft_field(d) != second_draft, "save after the refusal")
        one_draft("Third version.", [attachment])
        print(f"autosave: a refused save says {refused!r}, then is retried and saved")

        # Send while a save (with a second, larger file) is in flight: the send waits for it.
        driver.find_element(By.ID, "body").send_keys("Last words.\n")
        driver.find_element(By.ID, "attachment").send_keys(second_path)
        said = driver.execute_async_script(SEND_WHILE_SAVING)
        assert said == "Finishing the save first…", said
        WebDriverWait(driver, 60).until(lambda _: re.search(r"/mail/\d+$", driver.current_url))
        assert fetch_all(ALICE, ALICE_PASSWORD, "Drafts") == []
        _, received = find(BOB, BOB_PASSWORD, "INBOX", AUTOSAVE_SUBJECT)
        text = received.get_body(("plain",)).get_content()
        assert "Third version." in text and "Last words." in text, text
        parts = [(part.get_filename(), part.get_payload(decode=True))
                 for part in received.iter_attachments()]
        assert parts == [(ATTACHMENT_NAME, attachment), (SECOND_NAME, second)], \
            [(name, len(content)) for name, content in parts]
        find(ALICE, ALICE_PASSWORD, "Sent", AUTOSAVE_SUBJECT)
        print("autosave: Send during a save waited for it; sent with each attachment once, "
              "Drafts empty")
    finally:
        driver.quit()


def multipart(fields, files=(), boundary=None):
    boundary = boundary or uuid.uuid4().hex
    body = b""
    for name, value in fields:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                 f"{value}\r\n").encode()
    for name, file_name, content in files:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                 f"filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                 ).encode() + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def post(client, path, content_type, body, accept=None):
    import urllib.error
    import urllib.request
    request = urllib.request.Request(BASE + path, data=body)
    request.add_header("Content-Type", content_type)
    if accept:
        request.add_header("Accept", accept)
    try:
        with client.not_following.open(request) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def raw_post(cookie, head_extra, body_chunks):
    """A POST over a plain socket, the body sent from a thread while the answer is read:
    the server may answer before reading it all (413) and close."""
    connection = socket.create_connection(("127.0.0.1", PORT), timeout=60)
    head = (f"POST /compose/send HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\n"
            f"Cookie: tme_session={cookie}\r\n" + head_extra + "\r\n").encode()
    connection.sendall(head)

    def send_body():
        try:
            for chunk in body_chunks:
                connection.sendall(chunk)
        except OSError:
            pass  # the server answered and closed: expected

    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            data = connection.recv(65536)
            if not data:
                break
            answer += data
    finally:
        connection.close()
    return answer


def http_bad_input():
    client = Client()
    page = client.login(ALICE, ALICE_PASSWORD)
    csrf = csrf_of(page)
    cookie = client.session_cookie().value

    # No CSRF token, and a wrong one: 403, nothing saved.
    for fields in ([("subject", "no token")], [("csrf", "0" * len(csrf)), ("subject", "bad")]):
        content_type, body = multipart(fields, [("attachment", "x.bin", b"x")])
        status, _, page = post(client, "/compose/draft", content_type, body)
        assert status == 403, (status, page)
        assert "Forbidden" in page
    print("multipart POST without or with a wrong CSRF token: 403")

    # Malformed multipart: 400 with a page that says so.
    for content_type, body in [
        ("multipart/form-data; boundary=xyz", b"this is not multipart at all"),
        ("multipart/form-data; boundary=xyz",
         b"--xyz\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n" + csrf.encode()),
        ("multipart/form-data", b"--xyz\r\n\r\n--xyz--\r\n"),
    ]:
        status, _, page = post(client, "/compose/send", content_type, body)
        assert status == 400, (status, content_type, body, page)
        assert "Bad request" in page and "multipart" in page, page
    print("malformed multipart bodies: 400")

    # Oversized: refused from the declared length, and while streaming (chunked).
    boundary = "oversized"
    answer = raw_post(
        cookie,
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {UPLOAD_LIMIT + 1}\r\n",
        [b"--oversized\r\n"])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

    def chunked():
        chunk = b"a" * (1024 * 1024)
        for _ in range(UPLOAD_LIMIT // len(chunk) + 2):
            yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        yield b"0\r\n\r\n"
    answer = raw_post(
        cookie,
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        "Transfer-Encoding: chunked\r\n",
        chunked())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    print("oversized uploads: 413 (declared and streamed)")

    # Path tricks in file names: sanitised in the stored draft. The script form of the
    # draft endpoint answers JSON with the new draft's place.
    long_name = "n" * 300 + ".pdf"
    tricks = [("../../etc/passwd", "passwd"), ("C:\\x\\y", "y"), ("a\tb.txt", "ab.txt"),
              ("..", "attachment"), (long_name, "n" * 116 + ".pdf")]
    content_type, body = multipart(
        [("csrf", csrf), ("to", BOB), ("subject", "Path tricks")],
        [("attachment", name, f"content {index}".encode()) for index, (name, _) in
         enumerate(tricks)])
    status, headers, page = post(client, "/compose/draft", content_type, body,
                                 accept="application/json")
    assert status == 200 and headers["Content-Type"] == "application/json", (status, page)
    saved = json.loads(page)
    assert isinstance(saved["mailbox"], int) and isinstance(saved["uid"], int), saved
    here = f"{saved['mailbox']}/{saved['uid']}"
    assert saved["draft"] == here and saved["attachments_from"] == here, saved
    assert [(kept["index"], kept["name"], kept["media_type"], kept["size_octets"])
            for kept in saved["attachments"]] == [
        (index, expected, "application/octet-stream", len(f"content {index}"))
        for index, (_, expected) in enumerate(tricks)], saved["attachments"]
    assert all(isinstance(kept["size"], str) for kept in saved["attachments"]), saved
    _, draft = find(ALICE, ALICE_PASSWORD, "Drafts", "Path tricks")
    names = [part.get_filename() for part in draft.iter_attachments()]
    assert names == [expected for _, expected in tricks], names
    contents = [part.get_payload(decode=True) for part in draft.iter_attachments()]
    assert contents == [f"content {index}".encode() for index in range(len(tricks))]
    # Saving again with the answer's state replaces the draft; the attachments kept are
    # carried from the old draft and renumbered in the new one.
    content_type, body = multipart(
        [("csrf", csrf), ("subject", "Path tricks 2"), ("draft", saved["draft"]),
         ("attachments_from", saved["attachments_from"]), ("keep_attachment", "1"),
         ("keep_attachment", "3")])
    status, _, page = post(client, "/compose/draft", content_type, body,
                           accept="application/json")
    assert status == 200, (status, page)
    again = json.loads(page)
    assert again["draft"] != here and again["attachments_from"] == again["draft"], again
    assert [(kept["index"], kept["name"]) for kept in again["attachments"]] == [
        (0, tricks[1][1]), (1, tricks[3][1])], again
    _, draft = find(ALICE, ALICE_PASSWORD, "Drafts", "Path tricks 2")
    assert [part.get_payload(decode=True) for part in draft.iter_attachments()] == [
        b"content 1", b"content 3"]
    # And once more without attachments: none in the answer, nothing to carry.
    content_type, body = multipart(
        [("csrf", csrf), ("subject", "Path tricks 3"), ("draft", again["draft"])])
    status, _, page = post(client, "/compose/draft", content_type, body,
                           accept="application/json")
    assert status == 200, (status, page)
    bare = json.loads(page)
    assert bare["attachments"] == [] and bare["attachments_from"] is None, bare
    subjects = [m["Subject"] for _, m in fetch_all(ALICE, ALICE_PASSWORD, "Drafts")]
    assert subjects == ["Path tricks 3"], subjects
    print("draft JSON: the new draft and its attachments renumbered, carried on the next save")
    print(f"path tricks sanitised: {names[:4]} and a {len(names[4])}-character name")

    # Another account's message cannot be replied to or forwarded.
    status, _, page, _ = client.request(f"/compose?reply={saved['mailbox']}/999999")
    assert status == 404, status
    # Send with an unknown local recipient: the form again, 422, the fields kept.
    content_type, body = multipart(
        [("csrf", csrf), ("to", "nobody-here@example.org"), ("subject", "Unknown")])
    status, _, page = post(client, "/compose/send", content_type, body)
    assert status == 422 and "there is no such address" in page, (status, page)
    assert 'value="Unknown"' in page, page
    print("unknown recipient: 422, form kept")


def main():
    os.makedirs(SCREENSHOTS, exist_ok=True)
    attachment = os.urandom(150 * 1024) + bytes(range(256))
    attachment_path = os.path.join(os.environ["WORK_DIR"], ATTACHMENT_NAME)
    with open(attachment_path, "wb") as file:
        file.write(attachment)
    browser_flows(attachment_path, attachment)
    autosave_flow(attachment_path, attachment)
    http_bad_input()


if __name__ == "__main__":
    main()
