"""The webmail in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven over WebDriver by Selenium. It logs in through the form, opens the message list and
an HTML message from the corpus, then a hostile message whose payloads must never run or
load: a <script> and event handlers that would set document.title, a javascript: link, and
remote images and styles pointing at a small HTTP server this script runs, which must see
no request. Screenshots of the list and of each message go to SCREENSHOT_DIR.

Environment: HTTP_PORT, USER_ADDRESS, PASSWORD, PIXEL_PORT, CORPUS_SUBJECT,
HOSTILE_SUBJECT, SCREENSHOT_DIR.
"""

import http.server
import os
import threading

from selenium.webdriver.common.by import By

from chromium import browser, click

BASE = f"http://127.0.0.1:{os.environ['HTTP_PORT']}"
SCREENSHOTS = os.environ["SCREENSHOT_DIR"]
PIXEL_REQUESTS = []


class Pixel(http.server.BaseHTTPRequestHandler):
    """Records every request: a tracking pixel that must stay dark."""

    def do_GET(self):
        PIXEL_REQUESTS.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.end_headers()
        self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

    def log_message(self, *arguments):
        pass


def open_subject(driver, subject):
    links = [link for link in driver.find_elements(By.CSS_SELECTOR, "td.subject a")
             if subject in link.text]
    assert len(links) == 1, (subject, driver.page_source)
    links[0].click()
    heading = driver.find_element(By.CSS_SELECTOR, "h1.subject").text
    assert heading == subject, (heading, subject)


def main():
    os.makedirs(SCREENSHOTS, exist_ok=True)
    pixel = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PIXEL_PORT"])), Pixel)
    threading.Thread(target=pixel.serve_forever, daemon=True).start()
    driver = browser()
    try:
        driver.get(BASE + "/mail")
        assert driver.current_url.endswith("/login"), driver.current_url
        driver.find_element(By.ID, "address").send_keys(os.environ["USER_ADDRESS"])
        driver.find_element(By.ID, "password").send_keys(os.environ["PASSWORD"])
        click(driver, driver.find_element(By.CSS_SELECTOR, "main.login button[type=submit]"))
        assert driver.current_url.endswith("/mail"), driver.current_url
        # The session cookie is kept (Secure on http://127.0.0.1) and hidden from scripts.
        cookie = driver.get_cookie("tme_session")
        assert cookie and cookie["httpOnly"] and cookie["secure"], cookie
        assert cookie["sameSite"] == "Strict", cookie
        rows = driver.find_elements(By.CSS_SELECTOR, "table.message-list tbody tr")
        assert len(rows) >= 2, driver.page_source
        assert os.environ["CORPUS_SUBJECT"] in driver.page_source
        driver.save_screenshot(os.path.join(SCREENSHOTS, "message-list.png"))
        print("logged in through the form; message list shown")

        open_subject(driver, os.environ["CORPUS_SUBJECT"])
        body = driver.find_element(By.CSS_SELECTOR, "div.body.html").text
        assert "Slow but steady wins the race" in body, body
        driver.save_screenshot(os.path.join(SCREENSHOTS, "message-html.png"))
        print("corpus HTML message shown")

        driver.get(BASE + "/mail")
        title_before = None
        open_subject(driver, os.environ["HOSTILE_SUBJECT"])
        title_before = driver.title
        assert title_before.startswith(os.environ["HOSTILE_SUBJECT"]), title_before
        body = driver.find_element(By.CSS_SELECTOR, "div.body.html")
        assert "Hostile payloads" in body.text, body.text
        # Nothing of the payloads is in the page, and clicking the link runs nothing.
        assert not driver.find_elements(By.CSS_SELECTOR, "div.body script, div.body svg, "
                                        "div.body iframe, div.body [onerror], "
                                        "div.body [onload], div.body [style]")
        for image in driver.find_elements(By.CSS_SELECTOR, "div.body img"):
            assert image.get_attribute("src") in (None, ""), image.get_attribute("outerHTML")
        link = driver.find_element(By.LINK_TEXT, "click me")
        assert not (link.get_attribute("href") or "").startswith("javascript:"), \
            link.get_attribute("outerHTML")
        link.click()
        # The page is fully loaded (WebDriver waited for its load event, which waits for
        # images): had anything run, the title would say so; had anything loaded, the pixel
        # server would have seen it.
        assert driver.execute_script("return document.readyState") == "complete"
        assert "owned" not in driver.title, driver.title
        assert driver.title == title_before, (driver.title, title_before)
        assert driver.execute_script("return window.ownedBy || null") is None
        driver.save_screenshot(os.path.join(SCREENSHOTS, "message-hostile.png"))
        print("hostile message: no payload ran")
    finally:
        driver.quit()
        pixel.shutdown()
    assert PIXEL_REQUESTS == [], PIXEL_REQUESTS
    print("the pixel server saw no request")


if __name__ == "__main__":
    main()
