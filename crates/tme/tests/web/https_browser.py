"""The webmail in headless Chromium over the `https` listener (the node's self-signed
certificate accepted with --ignore-certificate-errors): the login form, the Secure session
cookie, and new mail appearing in the open list through the server-sent event stream, which
stays open over TLS. A screenshot of the list goes to SCREENSHOT_DIR.

Environment: BASE_URL (https://127.0.0.1:HTTPS_PORT), SMTP_PORT, USER_ADDRESS, PASSWORD,
SCREENSHOT_DIR.
"""

import os
import smtplib

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from chromium import browser, click

BASE = os.environ["BASE_URL"]
SCREENSHOTS = os.environ["SCREENSHOT_DIR"]
ADDRESS = os.environ["USER_ADDRESS"]


def subjects(driver):
    return [link.text for link in driver.find_elements(By.CSS_SELECTOR, "td.subject a")]


def main():
    os.makedirs(SCREENSHOTS, exist_ok=True)
    driver = browser(["--ignore-certificate-errors"])
    try:
        driver.get(BASE + "/mail")
        assert driver.current_url == BASE + "/login", driver.current_url
        driver.find_element(By.ID, "address").send_keys(ADDRESS)
        driver.find_element(By.ID, "password").send_keys(os.environ["PASSWORD"])
        click(driver, driver.find_element(By.CSS_SELECTOR, "main.login button[type=submit]"))
        assert driver.current_url == BASE + "/mail", driver.current_url
        cookie = driver.get_cookie("tme_session")
        assert cookie and cookie["secure"] and cookie["httpOnly"], cookie
        print("logged in over HTTPS, the session cookie Secure and HttpOnly")

        WebDriverWait(driver, 20).until(
            lambda _: driver.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "ready")
        subject = "Arrived over a TLS event stream"
        with smtplib.SMTP("127.0.0.1", int(os.environ["SMTP_PORT"]), timeout=60) as smtp:
            smtp.sendmail("someone@example.net", [ADDRESS],
                          (f"From: someone@example.net\r\nTo: {ADDRESS}\r\n"
                           f"Subject: {subject}\r\nMessage-ID: <tls-live@example.net>\r\n\r\n"
                           "Hello.\r\n").encode())
        WebDriverWait(driver, 30).until(
            lambda _: any(text.endswith(subject) for text in subjects(driver)))
        count = driver.find_element(By.CSS_SELECTOR, ".list-head .count").text
        assert count == "1 message", count
        driver.save_screenshot(os.path.join(SCREENSHOTS, "https-mail.png"))
        print("new mail appeared through the event stream over HTTPS")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
