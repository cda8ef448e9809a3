"""Single sign-on with OpenID Connect in a real browser (headless Chromium through Selenium;
issue #27), run by tests/it/sso.rs against a real FlexiProxy and real OpenID providers
(tests/e2e/oidc_provider.mjs: the npm `oidc-provider`, with its own login and consent
pages). The panel's providers: `company` (the provider's client `flexi`, allowed_domains
example.com, admin_groups llm-admins), `other` (client `flexi-aud`, whose ID tokens the
provider issues for another audience) and `stale` (a second provider whose clock runs ten
minutes behind: its ID tokens arrive expired).

Usage: sso_browser.py CONFIG_JSON, where CONFIG_JSON has
  panel   the admin listener's base URL
  shots   the directory for the screenshots
  tokens  the file the providers append every ID token they issue to
  canaries  the client secrets, which no page may show

Prints one JSON object with what it saw; any failed check raises (exit status 1), leaving
99-sso-failure.png and the page source on stderr.
"""

import json
import os
import sys
import traceback

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By

from browser import WAIT, Walk, chromium
from browser_setup import navigations
from urllib.parse import parse_qs, urlencode, urlsplit

CFG = json.loads(sys.argv[1])
PANEL = CFG["panel"].rstrip("/")
seen = {}
pages = []


def check(cond, what):
    if not cond:
        raise AssertionError(what)


d = chromium(WAIT, network_log=True)
walk = Walk(d, PANEL, CFG["shots"], "sso")


def keep_page():
    pages.append(d.page_source)


def gone(element):
    """Whether `element` left the page. Chromium sometimes answers a page mid-navigation with
    "Node … does not belong to the document" instead of a stale element: gone as well."""
    try:
        element.is_enabled()
        return False
    except WebDriverException:  # StaleElementReferenceException included
        return True


def at_provider_sign_in(name):
    """On the provider's pages: its login form (any password), then consent if asked; until
    the browser is back at the panel."""
    for _ in range(3):
        walk.wait.until(lambda drv: drv.current_url.startswith(PANEL)
                        or drv.find_elements(By.CSS_SELECTOR, "button[type=submit]"))
        if d.current_url.startswith(PANEL):
            return
        logins = d.find_elements(By.NAME, "login")
        if logins:
            logins[0].send_keys(name)
            d.find_element(By.NAME, "password").send_keys("any password")
        button = d.find_element(By.CSS_SELECTOR, "button[type=submit]")
        button.click()
        walk.wait.until(lambda _: gone(button))


def fresh_login_page(lang="en"):
    """The login page with no cookie left (the providers' sessions neither: they ask who
    signs in again), in `lang`."""
    d.get(PANEL + "/login")
    d.delete_all_cookies()
    d.get(PANEL + ("/lang?to=zh&back=%2Flogin" if lang == "zh" else "/login"))


def sign_in(button, name, lang="en"):
    """Clicks the login page's button and signs in at the provider as `name`."""
    fresh_login_page(lang)
    walk.click(f"sso-{button}")
    # Off the panel's pages first (its login page, then the page that moves on to the
    # provider), or a loaded machine has us look for the provider's form too early.
    walk.wait.until(lambda drv: drv.current_url.split("?")[0]
                    not in (PANEL + "/login", PANEL + f"/sso/{button}"))
    at_provider_sign_in(name)
    walk.wait.until(lambda drv: drv.current_url.startswith(PANEL)
                    and "/callback" not in drv.current_url)
    keep_page()


def requested(part):
    """The last URL the browser requested that contains `part` (since the last call), waiting
    until it has requested one."""
    urls = []
    walk.wait.until(lambda _: urls.extend(u for u in navigations(d) if part in u) or urls)
    return urls[-1]


def callback_with(code, state):
    d.get(f"{PANEL}/sso/company/callback?" + urlencode({"code": code, "state": state}))


def replays_and_tampering():
    """A callback replayed as it was, a used code with a fresh flow's `state` (the provider
    refuses the code), and a pending flow's `state` altered on its way back (refused before
    any code is exchanged): each ends on the login page with its own reason."""
    navigations(d)  # drain
    sign_in("company", "ana")
    done = requested("/sso/company/callback?")
    old = parse_qs(urlsplit(done).query)
    walk.logout()
    d.get(done)
    seen["replayed_callback"] = refusal()
    # A fresh flow: its state is in the authorization request the panel sent the browser to.
    fresh_login_page()
    navigations(d)
    walk.click("sso-company")
    state = parse_qs(urlsplit(requested("state=")).query)["state"][0]
    callback_with(old["code"][0], state)
    seen["replayed_code"] = refusal()
    # Another fresh flow, pending at the provider: its state comes back altered.
    fresh_login_page()
    navigations(d)
    walk.click("sso-company")
    state = parse_qs(urlsplit(requested("state=")).query)["state"][0]
    callback_with(old["code"][0], state[:-1] + ("A" if state[-1] != "A" else "B"))
    seen["tampered_state"] = refusal()


def refusal():
    walk.at("/login")
    keep_page()
    return walk.by_id("error").text


def whoami():
    return walk.by_id("whoami").text.split()[0]


def run():
    d.get(PANEL + "/login")
    seen["buttons"] = [b.text for b in d.find_elements(By.CSS_SELECTOR, "#sso button")]
    walk.shot("login")

    # First sign-in makes the account; after logging out, the second finds it.
    sign_in("company", "ana")
    seen["first"] = whoami()
    walk.shot("signed-in")
    walk.logout()
    sign_in("company", "ana")
    seen["second"] = whoami()
    walk.logout()

    replays_and_tampering()

    # An ID token for another audience, and one already expired.
    sign_in("other", "ana")
    seen["wrong_audience"] = refusal()
    sign_in("stale", "ana")
    seen["expired"] = refusal()
    walk.shot("refused")

    # An email outside allowed_domains; an admin group; a password account linked by email;
    # a disabled account.
    sign_in("company", "eve@elsewhere.test")
    seen["domain"] = refusal()
    sign_in("company", "admin-joe")
    seen["admin"] = walk.by_id("whoami").text
    walk.logout()
    sign_in("company", "linda")
    seen["linked"] = whoami()
    walk.logout()
    sign_in("company", "dora")
    seen["disabled"] = refusal()

    # The same refusal in Chinese.
    sign_in("stale", "ana", lang="zh")
    seen["expired_zh"] = refusal()

    # No ID token any provider issued is on a page the browser was shown.
    with open(CFG["tokens"], encoding="utf-8") as f:
        tokens = [t.strip() for t in f if t.strip()]
    check(len(tokens) >= 5, f"the providers issued ID tokens: {len(tokens)}")
    for page in pages:
        for canary in CFG["canaries"]:
            check(canary not in page, "a client secret on a page")
        for token in tokens:
            check(token not in page and token.split(".")[1] not in page, "an ID token on a page")
    seen["tokens_checked"] = len(tokens)


try:
    run()
    print(json.dumps({"ok": True, "seen": seen}, ensure_ascii=False))
except Exception:  # noqa: BLE001 — report everything, with the page it happened on
    traceback.print_exc()
    try:
        body = d.find_element(By.TAG_NAME, "body").text
        sys.stderr.write(f"\nat {d.current_url}\n{body}\n")
        d.save_screenshot(os.path.join(CFG["shots"], "99-sso-failure.png"))
    except Exception:  # noqa: BLE001
        pass
    sys.exit(1)
finally:
    d.quit()
