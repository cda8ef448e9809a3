"""The page helpers the panel's browser walks share (find by id with a wait, click when
clickable, fill, wait to be at a path, log in and out, screenshots), on the Chromium of
browser_setup.py. Import it from a script in this directory:
`from browser import WAIT, Walk, chromium`, then `Walk(chromium(WAIT), panel, shots, prefix)`.
"""

import os

from browser_setup import chromium  # noqa: F401 (the walks import it from here)
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 60  # seconds, for every condition (a loaded two-core machine runs Chromium slowly)


class Walk:
    """A browser on one panel: `panel` is its base URL, screenshots go to `shots` as
    `<prefix>-<name>.png`."""

    def __init__(self, driver, panel, shots, prefix):
        self.d = driver
        self.panel = panel.rstrip("/")
        self.shots = shots
        self.prefix = prefix
        self.wait = WebDriverWait(driver, WAIT)
        os.makedirs(shots, exist_ok=True)

    def by_id(self, i):
        return self.wait.until(EC.presence_of_element_located((By.ID, i)))

    def click(self, i):
        self.wait.until(EC.element_to_be_clickable((By.ID, i))).click()

    def fill(self, i, text):
        self.by_id(i).clear()
        self.by_id(i).send_keys(text)

    def at(self, path):
        self.wait.until(lambda drv: drv.current_url.split("?")[0] == self.panel + path)

    def shot(self, name):
        self.d.save_screenshot(os.path.join(self.shots, f"{self.prefix}-{name}.png"))

    def login(self, user, password):
        self.d.get(self.panel + "/login")
        self.fill("user", user)
        self.fill("password", password)
        button = self.by_id("login")
        self.click("login")
        # Wait for the answer's page (the panel, or the login page with an error) to replace
        # this one: a navigation started right after could otherwise be overtaken by the
        # login's redirect (a loaded run ended on /adapters/new instead of /users).
        self.wait.until(EC.staleness_of(button))

    def logout(self):
        self.click("logout")
        self.at("/login")
