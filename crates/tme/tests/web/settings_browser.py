"""The settings page and the partner's brand in a real browser (headless Chromium over
WebDriver): the login page reached under a subdomain of the partner's hosted domain shows
the partner's product name, logo and colour (the brand style sheet is applied: the header
takes the partner's primary colour); the settings page, reached by keyboard-labelled
links, saves a display name through its form without JavaScript and shows the
confirmation. Screenshots: login-branded.png, settings.png.

Environment: HTTP_PORT, USER_ADDRESS, PASSWORD, BRAND_PRODUCT_NAME, BRAND_COLOUR_PRIMARY,
BRAND_LOGO_URL, SCREENSHOT_DIR.
"""

import os

from selenium.webdriver.common.by import By

import chromium

PORT = os.environ["HTTP_PORT"]
SCREENSHOTS = os.environ["SCREENSHOT_DIR"]
# A subdomain of the partner's hosted domain, resolved to the node by Chromium alone; the
# logo's host is made to fail at once (it is not reachable from the tests).
BRANDED_HOST = "webmail.example.org"
LOGO_HOST = os.environ["BRAND_LOGO_URL"].split("/")[2]


def browser():
    return chromium.browser(
        [f"--host-resolver-rules=MAP {BRANDED_HOST} 127.0.0.1, MAP {LOGO_HOST} ~NOTFOUND"])


def hex_to_rgb(colour):
    red, green, blue = (int(colour[index:index + 2], 16) for index in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def main():
    os.makedirs(SCREENSHOTS, exist_ok=True)
    product = os.environ["BRAND_PRODUCT_NAME"]
    driver = browser()
    try:
        driver.get(f"http://{BRANDED_HOST}:{PORT}/login")
        header = driver.find_element(By.CSS_SELECTOR, "header.top")
        assert product in header.text, header.text
        assert driver.title == f"Log in – {product}", driver.title
        logo = driver.find_element(By.CSS_SELECTOR, "header.top img.logo")
        assert logo.get_attribute("src") == os.environ["BRAND_LOGO_URL"], logo.get_attribute("src")
        colour = header.value_of_css_property("background-color")
        expected = hex_to_rgb(os.environ["BRAND_COLOUR_PRIMARY"])
        assert colour.replace("rgba", "rgb").replace(", 1)", ")") == expected, (colour, expected)
        driver.save_screenshot(os.path.join(SCREENSHOTS, "login-branded.png"))
        print("branded login page: name, logo and colour of the partner")

        # The session cookie is Secure: log in on 127.0.0.1 (a trustworthy origin).
        driver.get(f"http://127.0.0.1:{PORT}/login")
        driver.find_element(By.ID, "address").send_keys(os.environ["USER_ADDRESS"])
        driver.find_element(By.ID, "password").send_keys(os.environ["PASSWORD"])
        chromium.click(driver, driver.find_element(By.CSS_SELECTOR, "main.login button[type=submit]"))
        assert driver.current_url.endswith("/mail"), driver.current_url
        chromium.click(driver, driver.find_element(By.LINK_TEXT, "Settings"))
        assert driver.current_url.endswith("/settings"), driver.current_url
        assert product in driver.find_element(By.CSS_SELECTOR, "header.top").text
        # Every field has its label.
        for field in driver.find_elements(By.CSS_SELECTOR, "main.settings input:not([type=hidden]), main.settings textarea"):
            field_id = field.get_attribute("id")
            assert field_id and driver.find_elements(By.CSS_SELECTOR, f"label[for='{field_id}']"), \
                field.get_attribute("outerHTML")
        name = driver.find_element(By.ID, "display_name")
        name.clear()
        name.send_keys("Alice in Chromium")
        chromium.click(driver, driver.find_element(By.XPATH, "//button[text()='Save display name']"))
        assert driver.current_url.endswith("/settings?done=display-name"), driver.current_url
        assert driver.find_element(By.CSS_SELECTOR, "p.notice").text == "Display name saved."
        assert driver.find_element(By.ID, "display_name").get_attribute("value") == "Alice in Chromium"
        sessions = driver.find_elements(By.CSS_SELECTOR, "table.sessions tbody tr.current")
        assert len(sessions) == 1 and "This session" in sessions[0].text, driver.page_source
        driver.save_screenshot(os.path.join(SCREENSHOTS, "settings.png"))
        print("settings page: display name saved through the form; this session marked")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
