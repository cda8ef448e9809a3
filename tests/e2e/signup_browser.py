"""Sign-up in a real browser (headless Chromium through Selenium; issue #27), run by
tests/it/signup_browser.rs against a real FlexiProxy (registration: invite, approval: true)
and a fake provider: the admin makes an invitation on the users page, a visitor follows the
login page's sign-up link and signs up with it, waits for approval, the admin approves, the
new user logs in, creates an adapter whose key the official anthropic SDK uses, and changes
their password on their account page.

Usage: signup_browser.py CONFIG_JSON, where CONFIG_JSON has
  panel, proxy, source, answer   as for panel_browser.py
  admin      [name, password] of an admin
  newbie     [name, password] to sign up with
  new_password  the newbie's password after the change
  shots      the directory for the screenshots

Prints one JSON object with what it saw; any failed check raises (exit status 1), leaving
99-signup-failure.png and the page source on stderr.
"""

import json
import os
import sys
import traceback

import anthropic
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from browser import WAIT, Walk, chromium

CFG = json.loads(sys.argv[1])
PANEL = CFG["panel"].rstrip("/")
SHOTS = CFG["shots"]
seen = {}


def check(cond, what):
    if not cond:
        raise AssertionError(what)


d = chromium(WAIT)
walk = Walk(d, PANEL, SHOTS, "signup")
by_id, click, at, fill, shot = walk.by_id, walk.click, walk.at, walk.fill, walk.shot
login, logout = walk.login, walk.logout
wait = walk.wait


def run():
    admin, admin_pw = CFG["admin"]
    newbie, newbie_pw = CFG["newbie"]

    # The admin makes a one-use invitation on the users page; the code is shown once.
    login(admin, admin_pw)
    d.get(PANEL + "/users")
    fill("invite-uses", "1")
    click("create-invite")
    code = by_id("new-invite-code").text.strip()
    check(code.startswith("inv-"), f"a code: {code!r}")
    shot("invite")
    d.get(PANEL + "/users")
    check(code not in d.page_source, "the code is not shown again")
    logout()

    # A visitor follows the sign-up link; a weak password is refused in words.
    click("signup-link")
    at("/signup")
    for field, value in (("username", newbie), ("password", "password123"),
                         ("password2", "password123"), ("invite", code)):
        fill(field, value)
    click("signup")
    seen["weak"] = by_id("error").text
    check(by_id("username").get_attribute("value") == newbie, "the form keeps the name")
    for field, value in (("password", newbie_pw), ("password2", newbie_pw)):
        fill(field, value)
    if by_id("invite").get_attribute("value") != code:
        fill("invite", code)
    click("signup")
    wait.until(lambda drv: "approval" in drv.page_source)
    seen["pending"] = d.find_element(By.TAG_NAME, "h1").text
    shot("pending")

    # Pending: no session yet.
    login(newbie, newbie_pw)
    seen["pending_login"] = by_id("error").text
    at("/login")

    # The admin approves.
    login(admin, admin_pw)
    d.get(PANEL + "/users")
    click(f"approve-{newbie}")
    at("/users")
    seen["status"] = by_id(f"status-{newbie}").text.strip()
    shot("approved")
    logout()

    # The new user gets in, creates an adapter on the fake provider, and the key works.
    login(newbie, newbie_pw)
    at("/adapters/new")
    Select(by_id("preset")).select_by_value("custom")
    fill("name", f"{newbie}-fake")
    fill("base_url", CFG["source"])
    by_id("api_key").send_keys("sk-signup-browser")
    fill("model", "fake-model")
    Select(by_id("protocol")).select_by_value("openai")
    click("create")
    at(f"/adapters/{newbie}-fake/key")
    key = by_id("api-key").text.strip()
    client = anthropic.Anthropic(base_url=CFG["proxy"], api_key=key, max_retries=0)
    msg = client.messages.create(model="claude-sonnet-4-5", max_tokens=64,
                                 messages=[{"role": "user", "content": "hello"}])
    seen["answer"] = "".join(b.text for b in msg.content if b.type == "text")

    # Their own password, from the account page (their name at the top).
    click("whoami")
    at("/account")
    fill("current_password", newbie_pw)
    fill("new_password", CFG["new_password"])
    fill("new_password2", CFG["new_password"])
    click("change-password")
    seen["changed"] = by_id("notice").text
    shot("password-changed")
    d.get(PANEL + "/")
    check(by_id("whoami").text.startswith(newbie), "this session goes on")
    logout()
    login(newbie, newbie_pw)
    by_id("error")
    login(newbie, CFG["new_password"])
    at("/")


try:
    os.makedirs(SHOTS, exist_ok=True)
    run()
    print(json.dumps({"ok": True, "seen": seen}, ensure_ascii=False))
except Exception:  # noqa: BLE001 — report everything, with the page it happened on
    traceback.print_exc()
    try:
        sys.stderr.write(f"\nat {d.current_url}\n{d.page_source}\n")
        d.save_screenshot(os.path.join(SHOTS, "99-signup-failure.png"))
    except Exception:  # noqa: BLE001
        pass
    sys.exit(1)
finally:
    d.quit()
