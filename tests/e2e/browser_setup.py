"""The headless browser the panel's Selenium scripts share: Chromium (Debian's chromium and
chromedriver, as scripts/deps.sh installs them) with the options that work as root in a
container, English unless a page's switch says otherwise."""

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chromium(wait_seconds, width=1280, height=900):
    opts = webdriver.ChromeOptions()
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
