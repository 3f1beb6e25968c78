"""The browser the webmail's browser tests drive: Debian's headless Chromium over WebDriver
(chromium-driver), through Selenium, and the waits they share."""

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import WebDriverWait


def browser(arguments=()):
    """A headless Chromium, 1200×900, with `arguments` added to its command line."""
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1200,900", *arguments]:
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(60)
    return driver


def gone(element):
    """A wait condition: `element` has left the document (its page was replaced). Chromium
    may say so with a stale-element error or, while the old page is being torn down, with
    an inspector error ("Node with given id does not belong to the document"): both mean
    gone."""
    def check(_):
        try:
            element.is_enabled()
        except WebDriverException:  # StaleElementReferenceException is one
            return True
        return False
    return check


def click(driver, element):
    """Clicks `element` and waits for the page it leads to (a form's POST and its redirect)."""
    element.click()
    WebDriverWait(driver, 30).until(gone(element))
    WebDriverWait(driver, 30).until(
        lambda _: driver.execute_script("return document.readyState") == "complete")
