"""The diagnostics page (nginx_site_diagnostics_path) in a real headless browser: Debian's
Chromium driven by selenium through chromedriver (the system's browser, nothing downloaded),
from this machine through the container's published port, over TLS with the site's own
certificate trusted by its key (--ignore-certificate-errors-spki-list, that key only).

The three states an operator sees - connected with a live notification, a bad token closed
4401 "Unauthorized", no password refused - are each saved as a screenshot under
.cache/diagnostics/ (the paths are printed)."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import HOST, INVENTORY, ROOT, SCENARIO
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from helpers.in_container import https_status
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

testinfra_hosts = [f"podman://{HOST}"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PORT = int(SCENARIO["platforms"][0]["published_ports"][0].split(":")[1])
PATH = INVENTORY["nginx_site_diagnostics_path"]
USER = "wsnotify"  # nginx_site_diagnostics_user's default
PASSWORD = INVENTORY["nginx_site_diagnostics_password"]
ORIGIN = f"https://127.0.0.1:{PORT}"
CERT = "/etc/nginx/tls/wsnotify.crt"
SHOTS = ROOT / ".cache" / "diagnostics"


@pytest.fixture(scope="module")
def certificate(host) -> str:
    return host.check_output(f"cat {CERT}") + "\n"


@pytest.fixture(scope="module")
def tls(certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=certificate)


@pytest.fixture(scope="module")
def browser(certificate, tmp_path_factory):
    """One headless Chromium for the module, trusting exactly the site's key."""
    key = x509.load_pem_x509_certificate(certificate.encode()).public_key()
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--window-size=1100,1500",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
        "--ignore-certificate-errors-spki-list="
        + base64.b64encode(hashlib.sha256(spki).digest()).decode(),
    ):
        options.add_argument(argument)
    # The browser's console (CSP violations, failed loads) and its network events (statuses).
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def shot(driver, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def text_of(driver, element: str, predicate, timeout: float = 10) -> str:
    """The text of element ``element`` once ``predicate`` holds for it; fails showing the text."""
    deadline = time.monotonic() + timeout
    while True:
        text = driver.find_element(By.ID, element).text
        if predicate(text):
            return text
        if time.monotonic() > deadline:
            log = [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#log li")]
            pytest.fail(f"#{element} is {text!r} after {timeout} s; the page's events: {log}")
        time.sleep(0.1)


def document_statuses(driver, url: str) -> list[int]:
    """The HTTP statuses the browser received for ``url`` (from its performance log)."""
    statuses = []
    for entry in driver.get_log("performance"):
        event = json.loads(entry["message"])["message"]
        if event["method"] == "Network.responseReceived":
            response = event["params"]["response"]
            if response["url"] == url:
                statuses.append(response["status"])
    return statuses


def open_page(driver) -> None:
    driver.get(f"https://{USER}:{PASSWORD}@127.0.0.1:{PORT}{PATH}")
    text_of(driver, "state", lambda text: text == "disconnected")


def connect(driver, token: str) -> None:
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.ID, "connect").click()


def user_token(user: str) -> str:
    """Minted on the host the way README says (the unit's environment, as its user)."""
    run = subprocess.run(
        ["podman", "exec", HOST, "systemd-run", "--quiet", "--pipe", "--wait", "--collect",
         "-p", "EnvironmentFile=/etc/wsnotify/wsnotify.env", "-p", "User=wsnotify",
         "/opt/wsnotify/current/venv/bin/wsnotify", "token", "--user", user],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return run.stdout.strip()


def publish(tls: ssl.SSLContext, **notification) -> int:
    """POST /api/notifications through nginx over TLS, from this machine."""
    request = urllib.request.Request(  # noqa: S310 - https to the test container only
        f"{ORIGIN}/api/notifications",
        data=json.dumps(notification).encode(),
        headers={
            "Authorization": f"Bearer {INVENTORY['wsnotify_publish_token']}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, context=tls, timeout=10) as answer:  # noqa: S310
        assert answer.status == 202
        return json.load(answer)["id"]


def get(tls: ssl.SSLContext, path: str, auth: str | None = None) -> tuple[int, dict, bytes]:
    headers = {"Authorization": auth} if auth else {}
    request = urllib.request.Request(f"{ORIGIN}{path}", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, context=tls, timeout=10) as answer:  # noqa: S310
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_without_the_password_the_page_is_refused(browser, tls):
    status, headers, _ = get(tls, PATH)
    assert status == 401, status
    assert "diagnostics" in headers.get("WWW-Authenticate", ""), headers
    assert get(tls, PATH, basic(USER, "not-the-password"))[0] == 401
    for name in ("diagnostics.js", "diagnostics.css"):
        assert get(tls, PATH + name)[0] == 401, name
    browser.get_log("performance")
    browser.get(f"{ORIGIN}{PATH}")
    # The browser got the 401 and shows nothing of the page (no prompt in headless mode).
    assert document_statuses(browser, f"{ORIGIN}{PATH}") == [401]
    assert browser.find_elements(By.ID, "state") == [], browser.page_source[:500]
    shot(browser, "refused-without-password")


def test_with_the_password_the_role_s_files_are_served_with_a_strict_policy(tls):
    status, headers, body = get(tls, PATH, basic(USER, PASSWORD))
    assert status == 200, status
    assert b'data-ws-path="/ws"' in body, body[:500]
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy, policy
    assert headers["X-Content-Type-Options"] == "nosniff", headers
    script = get(tls, PATH + "diagnostics.js", basic(USER, PASSWORD))
    assert script[0] == 200 and b"CLOSE_CODES" in script[2]


def test_an_address_outside_the_allow_list_is_refused_even_with_the_password(host):
    """From the container's own bridge address (not in nginx_site_diagnostics_allow): 403."""
    address = host.check_output("hostname -I").split()[0]
    credentials = f"{USER}:{PASSWORD}"
    assert https_status(HOST, address, PATH, credentials) == 403, address
    assert https_status(HOST, "127.0.0.1", PATH, credentials) == 200


def test_a_valid_token_connects_and_a_published_notification_appears(browser, tls):
    user = f"diag-{uuid.uuid4().hex[:8]}"
    browser.get_log("browser")  # only this test's entries are checked below
    open_page(browser)
    connect(browser, user_token(user))
    text_of(browser, "state", lambda text: text == "connected", timeout=15)
    assert browser.find_element(By.ID, "user").text == user
    handshake = text_of(browser, "handshake-ms", lambda text: text.endswith(" ms"))
    # The first application-level ping goes out with the welcome: its pong gives the round trip.
    rtt = text_of(browser, "rtt-ms", lambda text: text.endswith(" ms"))
    title = f"diagnostics check {uuid.uuid4().hex[:8]}"
    sent = time.monotonic()
    nid = publish(tls, user_id=user, title=title, body="through nginx over TLS")
    item = WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f'#notifications li[data-id="{nid}"]')
    )
    arrived = time.monotonic() - sent
    assert title in item.text, item.text
    assert browser.find_element(By.ID, "last-id").text == str(nid)
    # The API catch-up of the same user, from the start (after id 0), holds it too.
    browser.find_element(By.ID, "after-id").send_keys("0")
    browser.find_element(By.ID, "fetch").click()
    text_of(browser, "api-status", lambda text: text.startswith("200:"))
    assert title in browser.find_element(By.ID, "api").text
    print(f"handshake {handshake}, round trip {rtt}, publish to page {arrived * 1000:.0f} ms")
    shot(browser, "connected-with-notification")
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == [], severe  # no CSP violation, no failed resource


def test_a_bad_token_is_closed_4401_unauthorized(browser):
    open_page(browser)
    connect(browser, "not-a-valid-token")
    text_of(browser, "state", lambda text: text == "closed", timeout=15)
    assert browser.find_element(By.ID, "close-code").text == "4401"
    meaning = browser.find_element(By.ID, "close-meaning").text
    assert meaning.startswith('Unauthorized "Unauthorized"'), meaning
    current = browser.find_element(By.CSS_SELECTOR, "#close-codes tr.current")
    assert current.get_attribute("data-code") == "4401"
    shot(browser, "bad-token-4401")
