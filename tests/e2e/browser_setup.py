"""The headless browser the panel's Selenium scripts share: Chromium (Debian's chromium and
chromedriver, as scripts/deps.sh installs them) with the options that work as root in a
container, English unless a page's switch says otherwise."""

import json

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chromium(wait_seconds, width=1280, height=900, network_log=False):
    """`network_log`: keep Chromium's performance log, so a walk can read the URLs the
    browser requested (`navigations(driver)`), redirects included."""
    opts = webdriver.ChromeOptions()
    if network_log:
        opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--lang=en-US",
    ):
        opts.add_argument(arg)
    opts.binary_location = "/usr/bin/chromium"
    opts.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(wait_seconds)
    return driver


def navigations(driver):
    """The URLs of the documents the browser requested since the last call (redirect hops
    included), oldest first; needs `chromium(..., network_log=True)`."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent" and params.get("type") == "Document":
            urls.append(params["request"]["url"])
    return urls
