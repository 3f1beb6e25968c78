"""Organising mail in a real browser: headless Chromium driven over WebDriver by Selenium.
It searches through the form, moves a message to Archive with the message view's buttons,
deletes it to Trash and restores it from there, deletes one with the keyboard (j, x, #),
sees a message delivered over SMTP (smtplib) appear in the open list through the live
updates (server-sent events), and shows the list at phone width. Screenshots go to
SCREENSHOT_DIR.

Environment: HTTP_PORT, SMTP_PORT, USER_ADDRESS, PASSWORD, SEARCH_SUBJECT, SCREENSHOT_DIR.
"""

import os
import smtplib
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from chromium import browser, click

BASE = f"http://127.0.0.1:{os.environ['HTTP_PORT']}"
SCREENSHOTS = os.environ["SCREENSHOT_DIR"]
SUBJECT = os.environ["SEARCH_SUBJECT"]


def folder(driver, name):
    """Opens the folder `name` from the folder list."""
    for link in driver.find_elements(By.CSS_SELECTOR, "nav.folders a[data-mailbox]"):
        if link.text.split(" (")[0] == name:
            click(driver, link)
            return
    raise AssertionError(f"no folder {name!r} in {driver.current_url}: {driver.page_source}")


def subjects(driver):
    """The subjects of the list shown (without the "Unread:" said to screen readers)."""
    return [link.text.split("\n")[-1].removeprefix("Unread: ")
            for link in driver.find_elements(By.CSS_SELECTOR, "td.subject a")]


def main():
    os.makedirs(SCREENSHOTS, exist_ok=True)
    driver = browser()
    try:
        driver.get(BASE + "/login")
        driver.find_element(By.ID, "address").send_keys(os.environ["USER_ADDRESS"])
        driver.find_element(By.ID, "password").send_keys(os.environ["PASSWORD"])
        click(driver, driver.find_element(By.CSS_SELECTOR, "main.login button[type=submit]"))
        assert driver.current_url.endswith("/mail"), driver.current_url
        inbox_count = len(subjects(driver))
        started = time.monotonic()

        # Search through the form.
        click(driver, driver.find_element(By.LINK_TEXT, "Search"))
        driver.find_element(By.ID, "search-q").send_keys("quarterly figures")
        click(driver, driver.find_element(By.CSS_SELECTOR, "form.search-form button[type=submit]"))
        assert subjects(driver) == [SUBJECT], driver.page_source
        driver.save_screenshot(os.path.join(SCREENSHOTS, "search.png"))
        print("search form finds the message")

        # Open it from the results and move it to Archive with the view's buttons.
        click(driver, driver.find_element(By.LINK_TEXT, SUBJECT))
        Select(driver.find_element(By.ID, "message-move-target")).select_by_visible_text("Archive")
        click(driver, driver.find_element(By.CSS_SELECTOR, "form.message-actions button[value=move]"))
        assert SUBJECT not in subjects(driver), driver.page_source
        folder(driver, "Archive")
        assert subjects(driver) == [SUBJECT], driver.page_source
        print("moved to Archive")

        # Delete it to Trash from the message view, restore it from Trash with the list.
        click(driver, driver.find_element(By.LINK_TEXT, SUBJECT))
        click(driver, driver.find_element(By.CSS_SELECTOR,
                                          "form.message-actions button[value=delete]"))
        folder(driver, "Trash")
        assert subjects(driver) == [SUBJECT], driver.page_source
        driver.find_element(By.CSS_SELECTOR, "td.select input[type=checkbox]").click()
        driver.save_screenshot(os.path.join(SCREENSHOTS, "trash.png"))
        click(driver, driver.find_element(By.CSS_SELECTOR, "div.actions button[value=restore]"))
        assert subjects(driver) == [], driver.page_source
        folder(driver, "INBOX")
        assert SUBJECT in subjects(driver) and len(subjects(driver)) == inbox_count
        print("deleted to Trash and restored")

        # The keyboard: j to the first message, x to select it, # to delete it.
        first = subjects(driver)[0]
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys("j")
        driver.switch_to.active_element.send_keys("x")
        driver.switch_to.active_element.send_keys("#")
        WebDriverWait(driver, 20).until(lambda _: first not in subjects(driver))
        assert len(subjects(driver)) == inbox_count - 1, subjects(driver)
        print("deleted with the keyboard")

        # New mail appears in the open list by itself (server-sent events).
        # The page's event stream has said where the folder stands (body[data-live]).
        WebDriverWait(driver, 20).until(
            lambda _: driver.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "ready")
        live_subject = "Arrived while looking"
        with smtplib.SMTP("127.0.0.1", int(os.environ["SMTP_PORT"]), timeout=60) as smtp:
            smtp.sendmail("someone@example.net", [os.environ["USER_ADDRESS"]],
                          (f"From: someone@example.net\r\nTo: {os.environ['USER_ADDRESS']}\r\n"
                           f"Subject: {live_subject}\r\nMessage-ID: <live@example.net>\r\n\r\n"
                           "Hello.\r\n").encode())
        WebDriverWait(driver, 30).until(lambda _: live_subject in subjects(driver))
        print("new mail appeared without a reload by the user")

        # Phone width: the list still reads.
        print(f"{time.monotonic() - started:.1f} s so far")
        driver.set_window_size(390, 844)
        driver.get(BASE + "/mail")
        assert live_subject in subjects(driver)
        driver.save_screenshot(os.path.join(SCREENSHOTS, "message-list-phone.png"))
        print("phone width")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
