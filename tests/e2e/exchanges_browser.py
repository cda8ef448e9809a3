"""The inspector's Exchanges page in headless Chromium (Selenium), run by
tests/it/exchanges_browser.rs against a real FlexiProxy whose adapter kept a translated
exchange with notes and a streamed one.

Usage: exchanges_browser.py CONFIG_JSON, where CONFIG_JSON has
  panel      the admin listener's base URL (http://127.0.0.1:PORT)
  adapter    the inspected adapter's name
  owner      [user, password] of the adapter's owner
  other      [user, password] of another (non-admin) user
  noted      the id of the exchange with notes, and notes: the texts expected, in order
  streamed   the id of the streamed exchange
  model      the model the client asked for
  shots      the directory for the screenshots

Prints one JSON object with what it saw; any failed check raises (exit status 1), leaving
99-exchanges-failure.png and the page source on stderr.
"""

import json
import os
import sys
import traceback

from browser_setup import chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

CFG = json.loads(sys.argv[1])
PANEL = CFG["panel"].rstrip("/")
PAGE = f"/adapters/{CFG['adapter']}/exchanges"
WAIT = 60  # seconds, for every condition (a loaded two-core machine runs Chromium slowly)

seen = {}
d = chromium(WAIT)
wait = WebDriverWait(d, WAIT)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def by_id(i):
    return wait.until(EC.presence_of_element_located((By.ID, i)))


def login(user, password):
    d.get(PANEL + "/login")
    by_id("user").clear()
    by_id("user").send_keys(user)
    by_id("password").send_keys(password)
    wait.until(EC.element_to_be_clickable((By.ID, "login"))).click()
    wait.until(lambda drv: not drv.current_url.endswith("/login"))


def logout():
    wait.until(EC.element_to_be_clickable((By.ID, "logout"))).click()
    by_id("login-form")


def status_of(path):
    """The status the browser's own session gets for a page (fetch, same cookies)."""
    return d.execute_async_script(
        "const done = arguments[1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => done(r.status));",
        PANEL + path,
    )


def rows():
    """The list: each row's cells by column title."""
    table = by_id("exchange-list")
    titles = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    out = []
    for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        link = tr.find_element(By.CSS_SELECTOR, "a").get_attribute("href")
        out.append({"cells": dict(zip(titles, cells)), "href": link})
    return titles, out


def run():
    owner, other = CFG["owner"], CFG["other"]
    login(*owner)
    d.get(PANEL + PAGE)
    titles, listed = rows()
    seen["columns"] = titles
    for column in ("Time", "Model", "Status", "Duration", "Tokens in / out", "Notes"):
        check(column in titles, f"the list has a {column} column: {titles}")
    check(len(listed) >= 2, f"both exchanges listed: {listed}")
    noted = next(r for r in listed if r["href"].endswith(f"?id={CFG['noted']}"))
    check(noted["cells"]["Model"] == CFG["model"], f"the model is listed: {noted}")
    check(noted["cells"]["Status"] == "200", f"the status is listed: {noted}")
    check(noted["cells"]["Duration"].endswith(" ms"), f"the duration is listed: {noted}")
    check(
        noted["cells"]["Notes"] == str(len(CFG["notes"])),
        f"the notes count is listed: {noted}",
    )
    seen["listed"] = noted["cells"]

    # One exchange: its notes highlighted, the two sides next to each other.
    d.find_element(By.CSS_SELECTOR, f"a[href='?id={CFG['noted']}']").click()
    wait.until(lambda drv: drv.current_url.endswith(f"?id={CFG['noted']}"))
    marks = by_id("exchange-notes").find_elements(By.TAG_NAME, "mark")
    seen["notes"] = [m.text for m in marks]
    check(seen["notes"] == CFG["notes"], f"the notes, in order: {seen['notes']}")
    background = marks[0].value_of_css_property("background-color")
    check(background not in ("rgba(0, 0, 0, 0)", "transparent"), f"highlighted: {background}")
    client = by_id("client-side").rect
    provider = by_id("provider-side").rect
    check(
        abs(client["y"] - provider["y"]) < 2 and provider["x"] > client["x"] + client["width"] / 2,
        f"client and provider side by side: {client} {provider}",
    )
    sent = by_id("provider-side").text
    check("max_tokens" in sent and "8192" in sent, "the provider request shows the clamp")
    d.save_screenshot(os.path.join(CFG["shots"], "01-exchanges.png"))

    # A stream: both answers as lists of events; nothing changed, said so.
    d.get(PANEL + PAGE + f"?id={CFG['streamed']}")
    for side in ("client-side", "provider-side"):
        events = by_id(side).find_elements(By.CSS_SELECTOR, "ol.events li")
        seen[f"{side}-events"] = len(events)
        check(len(events) >= 3, f"{side}: the stream as events ({len(events)})")
    client_events = [e.text for e in by_id("client-side").find_elements(By.CSS_SELECTOR, "ol.events li")]
    check(client_events[0].startswith("event: message_start"), f"the client's events: {client_events[:2]}")
    by_id("exchange-notes-none")
    d.save_screenshot(os.path.join(CFG["shots"], "02-exchanges-stream.png"))
    check(status_of(PAGE) == 200, "the owner gets the page")
    logout()

    # Another user: 404, the page and each exchange.
    login(*other)
    seen["other_status"] = status_of(PAGE)
    check(seen["other_status"] == 404, f"another user gets 404: {seen['other_status']}")
    check(status_of(PAGE + f"?id={CFG['noted']}") == 404, "and 404 for the exchange")
    d.get(PANEL + PAGE)
    check(not d.find_elements(By.ID, "exchange-list"), "another user sees no list")
    check("Not found" in d.page_source, "another user sees Not found")
    logout()


try:
    os.makedirs(CFG["shots"], exist_ok=True)
    run()
    print(json.dumps({"ok": True, "seen": seen}, ensure_ascii=False))
except Exception:  # noqa: BLE001 — report everything, with the page it happened on
    traceback.print_exc()
    try:
        sys.stderr.write(f"\nat {d.current_url}\n{d.page_source}\n")
        d.save_screenshot(os.path.join(CFG["shots"], "99-exchanges-failure.png"))
    except Exception:  # noqa: BLE001
        pass
    sys.exit(1)
finally:
    d.quit()
