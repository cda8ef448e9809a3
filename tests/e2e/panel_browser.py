"""The web panel in a real browser (headless Chromium, or Firefox ESR, through Selenium),
run by tests/it/panel_browser.rs against a real FlexiProxy and a fake provider.

Usage: panel_browser.py CONFIG_JSON, where CONFIG_JSON has
  panel      the admin listener's base URL (http://127.0.0.1:PORT)
  proxy      the client listener's base URL
  source     the fake provider's base URL (OpenAI-compatible, .../v1)
  answer     the text the fake provider answers every chat completion with
  canary     a provider key that must appear in no page after it is typed in
  users      {"alice": pw, "bob": pw, "root": pw}; alice and bob are plain users, root an admin
  shots      the directory for the screenshots (NN-name.png)
  browser    "chromium" (default: the whole walk) or "firefox" (log in, create, the key once:
             language switch, Back/Forward/reload, the create form; then the key works)
  geckodriver  the geckodriver binary, for Firefox

Prints one JSON object with what it saw; any failed check raises (exit status 1), leaving
99-failure.png and the page source on stderr.
"""

import json
import os
import sys
import traceback

import anthropic
from browser_setup import chromium
from selenium import webdriver
from selenium.webdriver.firefox.service import Service as FirefoxService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

CFG = json.loads(sys.argv[1])
PANEL = CFG["panel"].rstrip("/")
CANARY = CFG["canary"]
SHOTS = CFG["shots"]
WAIT = 60  # seconds, for every condition (a loaded two-core machine runs Chromium slowly)
BROWSER = CFG.get("browser", "chromium")

seen = {}
checks = []


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    checks.append(what)


def firefox():
    opts = webdriver.FirefoxOptions()
    opts.add_argument("-headless")
    opts.binary_location = "/usr/bin/firefox-esr"
    opts.set_preference("intl.accept_languages", "en-US, en")
    driver = webdriver.Firefox(service=FirefoxService(CFG["geckodriver"]), options=opts)
    driver.set_window_size(1280, 900)
    driver.set_page_load_timeout(WAIT)
    return driver


def browser():
    if BROWSER == "firefox":
        return firefox()
    return chromium(WAIT)


d = browser()
wait = WebDriverWait(d, WAIT)
shot_no = [0]
canary_armed = [False]


def page_ok():
    """Every page once the canary was typed: it must not come back in any HTML."""
    if canary_armed[0]:
        check(CANARY not in d.page_source, f"the provider key is not in {d.current_url}")


def shot(name):
    shot_no[0] += 1
    page_ok()
    d.save_screenshot(os.path.join(SHOTS, f"{shot_no[0]:02d}-{BROWSER}-{name}.png"))


def by_id(i):
    return wait.until(EC.presence_of_element_located((By.ID, i)))


def click(i):
    wait.until(EC.element_to_be_clickable((By.ID, i))).click()


def at(path):
    wait.until(lambda drv: drv.current_url.split("?")[0] == PANEL + path)


def go(path):
    d.get(PANEL + path)


def fits_width(what):
    """The page is no wider than the window (a phone scrolls only down)."""
    overflow = d.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    check(overflow <= 0, f"{what} overflows the width by {overflow}px")


def text_of(i):
    return by_id(i).text


def login(user, password):
    go("/login")
    by_id("user").clear()
    by_id("user").send_keys(user)
    by_id("password").send_keys(password)
    click("login")


def logout():
    click("logout")
    at("/login")
    by_id("login-form")


def open_menu(name):
    menu = by_id(f"menu-{name}")
    if menu.get_attribute("open") is None:
        click(f"menu-button-{name}")
    wait.until(lambda _: menu.get_attribute("open") is not None)


def create(name, key_label, source=None, api_key=CANARY, expect_error=False, client="claude_code"):
    go("/adapters/new")
    by_id("create-form")
    Select(by_id("preset")).select_by_value("custom")
    by_id("name").clear()
    by_id("name").send_keys(name)
    by_id("base_url").clear()
    by_id("base_url").send_keys(source or CFG["source"])
    by_id("api_key").send_keys(api_key)
    canary_armed[0] = True
    by_id("model").clear()
    by_id("model").send_keys("fake-model")
    Select(by_id("protocol")).select_by_value("openai")
    by_id("label").clear()
    by_id("label").send_keys(key_label)
    Select(by_id("client")).select_by_value(client)
    click("create")
    if expect_error:
        by_id("error")
        return None
    at(f"/adapters/{name}/key")
    return by_id("api-key").text.strip()


def sdk_says(key):
    client = anthropic.Anthropic(base_url=CFG["proxy"], api_key=key, max_retries=0)
    msg = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": "hello"}],
    )
    return "".join(b.text for b in msg.content if b.type == "text")


def sdk_refused(key):
    try:
        sdk_says(key)
    except anthropic.AuthenticationError:
        return True
    return False


def run():
    alice, bob, root = (CFG["users"][u] for u in ("alice", "bob", "root"))

    # Log in: a wrong password re-renders the form with a message, then alice gets in.
    go("/")
    at("/login")
    shot("login")
    login("alice", "not-her-password")
    by_id("error")
    check(d.find_element(By.ID, "user").get_attribute("value") == "alice", "the user name stays")
    login("alice", alice)
    # Alice has no adapter yet: the panel sends her to the form, as the original does.
    at("/adapters/new")
    by_id("create-form")

    # Presets fill the base URL and protocol; "custom" lets you type them.
    Select(by_id("preset")).select_by_value("deepseek-anthropic")
    wait.until(lambda _: by_id("base_url").get_attribute("value") == "https://api.deepseek.com/anthropic")
    check(Select(by_id("protocol")).first_selected_option.get_attribute("value") == "anthropic", "preset sets protocol")
    Select(by_id("preset")).select_by_value("custom")
    check(by_id("base_url").get_attribute("readonly") is None, "custom base URL is editable")
    shot("new-adapter")

    # A refused source (internal, not allow-listed) re-renders the form, without the key.
    create("alice-fake", "laptop", source="http://10.255.255.1:9/v1", expect_error=True)
    check(by_id("name").get_attribute("value") == "alice-fake", "the form keeps the name")
    check(by_id("api_key").get_attribute("value") == "", "the form drops the provider key")
    seen["create_error"] = text_of("error")
    shot("new-adapter-error")

    # Created: the key, once, with every client's setup.
    key = create("alice-fake", "laptop", client="codex")
    check(key.startswith("fp-"), f"an issued key: {key!r}")
    content = lambda i: by_id(i).get_attribute("textContent")
    check(key in content("code-claude-env"), "the Claude Code block carries the key")
    for block in ("claude-env", "claude-settings", "cline", "codex-config", "codex-env",
                  "gemini-env", "gemini-settings", "openai-sdk", "anthropic-sdk", "google-genai"):
        by_id(f"setup-{block}")
    # Codex was chosen: its setup comes first, with a word on its model line; the rest folded.
    check("wire_api" in text_of("code-codex-config"), "the Codex config.toml block, shown")
    check("fake-model" in text_of("setup-codex-config"), "the Codex card names the adapter's model")
    folded = by_id("other-clients")
    check(folded.get_attribute("open") is None, "the other clients are folded")
    check(folded.find_elements(By.ID, "setup-claude-env") and not folded.find_elements(By.ID, "setup-codex-config"),
          "Claude Code's setup is among the others")
    click("copy-key")
    wait.until(lambda _: by_id("copy-key").get_attribute("data-label") not in (None, by_id("copy-key").text))
    shot("key-once")

    # The language switch warns before it reloads the page (and the key with it).
    click("lang-switch")
    alert = wait.until(EC.alert_is_present())
    seen["lang_warning"] = alert.text
    check("key" in alert.text, f"the switch warns: {alert.text!r}")
    alert.dismiss()
    check(key in text_of("api-key"), "dismissed: the key is still there")

    # Back and Forward never bring the key back (from the back/forward cache or not), and
    # Back to the create form brings back no provider key.
    def key_gone(_):
        shown = d.find_elements(By.ID, "key-gone") or d.find_elements(By.ID, "key-gone-later")
        return key not in d.page_source and shown and shown[0].is_displayed()
    click("back-to-list")
    at("/")
    for step in ("back", "forward", "back"):
        getattr(d, step)()
        if step == "back":
            at("/adapters/alice-fake/key")
            wait.until(key_gone)
        else:
            at("/")
    shot("key-after-back")
    d.back()
    at("/adapters/new")
    check(by_id("api_key").get_attribute("value") == "", "Back restores no provider key")
    go("/adapters/alice-fake/key")

    # A reload shows no key.
    d.refresh()
    by_id("key-gone")
    check(key not in d.page_source, "the key is gone after a reload")
    check(not d.find_elements(By.ID, "api-key"), "no key element after a reload")
    shot("key-gone")

    # The key works through the proxy with the official SDK.
    seen["answer"] = sdk_says(key)
    check(seen["answer"] == CFG["answer"], f"the fake provider's answer: {seen['answer']!r}")
    if BROWSER == "firefox":
        return  # the rest uses Chromium's DevTools (dark mode) and is the same HTML

    # The list: one row, its base URL, the cap.
    go("/")
    by_id("adapter-alice-fake")
    seen["cap"] = text_of("cap")
    check(CFG["proxy"] in text_of("base-url-alice-fake"), "the client base URL in the row")
    check("Owner" not in d.find_element(By.CSS_SELECTOR, "#adapters thead").get_attribute("textContent"),
          "no owner column for users")
    shot("list")

    # Test: status and latency appear in a row of their own; the adapter's row keeps its shape.
    box = "const r = document.querySelector('#adapter-alice-fake').getBoundingClientRect(); return [r.width, r.height];"
    before = d.execute_script(box)
    open_menu("alice-fake")
    shot("menu")
    click("test-alice-fake")
    wait.until(lambda _: by_id("test-result-alice-fake").get_attribute("data-done"))
    seen["test"] = text_of("test-result-alice-fake")
    check("HTTP 200" in seen["test"] and " ms" in seen["test"], f"test result: {seen['test']!r}")
    check(by_id("test-row-alice-fake").is_displayed(), "the result's row is shown")
    after = d.execute_script(box)
    check(after == before, f"the adapter's row keeps its size: {before} -> {after}")
    shot("tested")

    # A stale version (someone changed the adapter since) is refused with a message.
    open_menu("alice-fake")
    d.execute_script(
        "document.querySelector('#menu-alice-fake input[name=version]').value = 'stale';")
    click("rotate-alice-fake")
    wait.until(EC.alert_is_present()).accept()
    seen["stale"] = text_of("error")
    check("reload" in seen["stale"], f"stale message: {seen['stale']!r}")

    # Rotate: a new key once; the old one is refused at once, the new one works.
    go("/")
    open_menu("alice-fake")
    Select(by_id("grace-alice-fake")).select_by_value("")
    by_id("new-label-alice-fake").send_keys("laptop-2")
    click("rotate-alice-fake")
    alert = wait.until(EC.alert_is_present())
    check("alice-fake" in alert.text, f"rotation asks first: {alert.text!r}")
    alert.accept()
    at("/adapters/alice-fake/key")
    new_key = by_id("api-key").text.strip()
    check(new_key.startswith("fp-") and new_key != key, "rotation issues a new key")
    shot("rotated")
    check(sdk_refused(key), "the old key is refused (AuthenticationError)")
    check(sdk_says(new_key) == CFG["answer"], "the new key works")
    go("/")
    row = text_of("adapter-alice-fake")
    check("laptop-2" in row and new_key[:7] + "…" in row, f"the new key's label and prefix: {row!r}")
    check(new_key not in d.page_source, "the list never shows a key")

    # A second adapter to keep, then delete the first (accepting the confirmation).
    keep_key = create("alice-keep", "desktop")
    for _ in range(3):
        check(sdk_says(keep_key) == CFG["answer"], "the second adapter's key works")
    # Edit it: a second key for the pool, a route for the haiku-class model, then both go.
    go("/")
    open_menu("alice-keep")
    click("edit-alice-keep")
    at("/adapters/alice-keep/edit")
    by_id("pool-source-new-key").send_keys(CANARY)
    by_id("pool-source-new-label").send_keys("spare")
    click("pool-source-add")
    by_id("saved")
    check(len(d.find_elements(By.CSS_SELECTOR, "#pool-source .pool-key")) == 2, "two keys in the pool")
    check("spare" in text_of("pool-source"), "the new key's label")
    Select(by_id("route-new-preset")).select_by_value("deepseek")
    wait.until(lambda _: by_id("route-new-base-url").get_attribute("readonly") is not None)
    Select(by_id("route-new-preset")).select_by_value("custom")
    by_id("route-new-base-url").send_keys(CFG["source"])
    Select(by_id("route-new-protocol")).select_by_value("openai")
    by_id("route-new-name").send_keys("haiku")
    by_id("route-new-when-model").send_keys("claude-*haiku*")
    by_id("route-new-api-key").send_keys(CANARY)
    by_id("route-new-model").send_keys("fake-model")
    click("route-add")
    by_id("saved")
    check("claude-*haiku*" in text_of("route-0"), "the route is listed")
    shot("edit-routes")
    check(sdk_says(keep_key) == CFG["answer"], "the edited adapter still answers")
    click("route-0-remove")
    wait.until(EC.alert_is_present()).accept()
    by_id("saved")
    by_id("no-routes")
    click("pool-source-remove-1")
    by_id("saved")
    check(len(d.find_elements(By.CSS_SELECTOR, "#pool-source .pool-key")) == 1, "one key left")

    go("/")
    by_id("adapter-alice-keep")
    open_menu("alice-fake")
    click("delete-alice-fake")
    alert = wait.until(EC.alert_is_present())
    seen["confirm"] = alert.text
    check("alice-fake" in alert.text, "the confirmation names the adapter")
    alert.accept()
    by_id("notice")
    wait.until(lambda _: not d.find_elements(By.ID, "adapter-alice-fake"))
    check(sdk_refused(new_key), "a deleted adapter's key is refused")
    shot("deleted")

    # 中文 and back.
    click("lang-switch")
    wait.until(lambda _: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN")
    seen["zh_nav"] = text_of("nav-adapters")
    check(seen["zh_nav"] == "适配器", f"Chinese nav: {seen['zh_nav']!r}")
    check("创建适配器" in d.page_source, "Chinese strings on the page")
    by_id("adapter-alice-keep")
    shot("list-zh")
    click("lang-switch")
    wait.until(lambda _: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")

    # On a phone: the table becomes cards; in dark mode, the colours follow.
    d.set_window_size(390, 844)
    d.refresh()
    by_id("adapter-alice-keep")
    check(d.execute_script(
        "return getComputedStyle(document.querySelector('#adapters thead')).display") == "none",
        "the table is cards on a phone")
    fits_width("the list on a phone")
    go("/adapters/alice-keep/edit")
    by_id("pool-source")
    fits_width("the edit page on a phone")
    go("/")
    by_id("adapter-alice-keep")
    shot("list-phone")
    d.set_window_size(1280, 900)
    d.execute_cdp_cmd("Emulation.setEmulatedMedia",
                      {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    d.refresh()
    by_id("adapter-alice-keep")
    bg = d.execute_script("return getComputedStyle(document.body).backgroundColor")
    check(bg != "rgb(246, 247, 249)", f"dark background: {bg}")
    shot("list-dark")
    d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

    # Usage: the statistics writer batches, so reload until alice-keep's requests show.
    go("/usage")
    by_id("nav-usage")
    seen["usage"] = "off" if d.find_elements(By.ID, "stats-off") else "on"
    if seen["usage"] == "on":
        # Three requests before the edit and one after it; the writer may still hold some.
        def counted(_):
            cells = d.find_elements(By.CSS_SELECTOR, "#usage-alice-keep tr.total td:nth-child(2)")
            seen["usage_requests"] = cells[0].text if cells else None
            if seen["usage_requests"] == "4":
                return True
            d.refresh()
            return False
        try:
            wait.until(counted)
        except Exception:
            check(False, f"alice-keep's four requests: {seen['usage_requests']!r}")
        check(len(d.find_elements(By.CSS_SELECTOR, "#usage-alice-keep svg.chart")) == 3, "three charts")
        # The deleted adapter's two answered requests stay, under "deleted"; the totals
        # add up every adapter's.
        deleted = d.find_elements(By.CSS_SELECTOR, "#usage-deleted #usage-alice-fake tr.total td:nth-child(2)")
        seen["usage_deleted"] = deleted[0].text if deleted else None
        check(seen["usage_deleted"] == "2", f"alice-fake's history kept: {seen['usage_deleted']!r}")
        seen["usage_total"] = text_of("total-requests")
        check(seen["usage_total"] == "6", f"all of alice's requests: {seen['usage_total']!r}")
        rows = d.find_elements(By.CSS_SELECTOR, "#usage-recent tbody tr")
        check(len(rows) == 6, f"six recent requests: {len(rows)}")
        check(not d.find_elements(By.CSS_SELECTOR, "#usage-recent tr.failed"), "none failed")
        check(by_id("usage-csv").get_attribute("href").endswith("/usage.csv?since=24h"), "CSV link")
    shot("usage")
    if seen["usage"] == "on":
        click("since-7d")
        wait.until(lambda _: "since=7d" in d.current_url)
        check("per day" in by_id("usage-total").text, "daily bins for a week")
        shot("usage-7d")
        # On a phone the page fits the width (the recent table scrolls inside its card).
        d.set_window_size(390, 844)
        d.refresh()
        by_id("usage-total")
        fits_width("the usage page on a phone")
        shot("usage-phone")
        d.set_window_size(1280, 900)
    check(not d.find_elements(By.ID, "nav-users"), "no users page for a plain user")
    logout()
    shot("logged-out")

    # Bob sees none of alice's adapters.
    login("bob", bob)
    at("/adapters/new")
    create("bob-one", "phone")
    go("/")
    by_id("adapter-bob-one")
    check(not d.find_elements(By.ID, "adapter-alice-keep"), "bob does not see alice's adapter")
    check("alice-keep" not in d.page_source, "alice's adapter name is not on bob's page")
    shot("list-bob")
    logout()

    # The admin sees both, with their owners, and the users page.
    login("root", root)
    at("/")
    by_id("adapter-alice-keep")
    by_id("adapter-bob-one")
    check("alice" in d.find_element(By.CSS_SELECTOR, "#adapter-alice-keep .owner").text,
          "the admin sees the owner")
    shot("list-admin")
    click("nav-users")
    at("/users")
    check(text_of("owned-alice") == "1", "alice owns one adapter")
    cap = by_id("cap-bob")
    cap.clear()
    cap.send_keys("3")
    click("save-cap-bob")
    by_id("notice")
    check(by_id("cap-bob").get_attribute("value") == "3", "bob's cap saved")
    shot("users")
    logout()


try:
    os.makedirs(SHOTS, exist_ok=True)
    run()
    print(json.dumps({"ok": True, "seen": seen, "checks": len(checks)}, ensure_ascii=False))
except Exception:  # noqa: BLE001 — report everything, with the page it happened on
    traceback.print_exc()
    try:
        sys.stderr.write(f"\nat {d.current_url}\n{d.page_source}\n")
        d.save_screenshot(os.path.join(SHOTS, "99-failure.png"))
    except Exception:  # noqa: BLE001
        pass
    sys.exit(1)
finally:
    d.quit()
