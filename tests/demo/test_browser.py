"""The demo in a real headless Chromium: fill the cart, kill the node, reload, same cart.

Needs Debian's ``chromium`` and ``chromium-driver`` and Selenium from PyPI
(``bash scripts/browser-deps.sh`` installs them); skips, saying so, without them.
Screenshots land in ``artifacts/``: ``demo-after-failover.png``, ``demo-phone.png``
and ``status-page.png``.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, Demo

pytestmark = pytest.mark.hosts

ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = (
    "bash scripts/browser-deps.sh (apt-get install chromium chromium-driver; pip install selenium)"
)
FLAGS = [
    "--headless",  # the new headless mode (the old one is a separate binary since 132)
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
DESKTOP = (1280, 900)
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}

try:
    from selenium import webdriver
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    pytest.skip(f"selenium is missing: {INSTALL}", allow_module_level=True)

Driver = Any  # selenium.webdriver.Chrome; kept loose so mypy needs no selenium stubs


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Driver]:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            pytest.skip(f"{path} is missing ({package}): {INSTALL}")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not try to download
    profile = tempfile.mkdtemp(prefix="clustersession-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = None
    try:
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        driver.set_window_size(*DESKTOP)
        driver.set_page_load_timeout(20)
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# Read in one script call: the page re-renders the cart, and an element found by one
# WebDriver call can be gone by the next (Chrome then fails with "Node with given id
# does not belong to the document", not a StaleElementReferenceException).
def text(driver: Driver, css: str) -> str:
    script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;"
    found = driver.execute_script(script, css)
    if found is None:
        raise NoSuchElementException(css)
    return str(found)


def cart(driver: Driver) -> list[str]:
    script = "return [...document.querySelectorAll('ul#cart li')].map(li => li.innerText);"
    return [str(item) for item in driver.execute_script(script)]


def until(driver: Driver, condition: Callable[[Driver], Any], timeout: float = 15) -> Any:
    """Poll the page until ``condition`` is truthy (re-rendered elements are retried)."""
    wait = WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    return wait.until(condition)


def add_to_cart(driver: Driver, item: str) -> None:
    before = cart(driver)
    field = driver.find_element(By.NAME, "item")
    field.send_keys(item)
    driver.find_element(By.XPATH, "//button[normalize-space()='Add to cart']").click()
    until(driver, lambda d: cart(d) == [*(x for x in before if x != "empty"), item])


def reload_page(driver: Driver, url: str) -> bool:
    """Load ``url``; a connection error page (the dying node) counts as not loaded."""
    try:
        driver.get(url)
    except WebDriverException:
        return False
    return bool(driver.find_elements(By.ID, "node"))


def screenshot(driver: Driver, name: str) -> Path:
    """A PNG of the whole page (not only the viewport) in ``artifacts/``."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def fit_height(driver: Driver, width: int) -> None:
    """Make the window as tall as the page, so the screenshot shows all of it."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(int(height) + 40, 400))


def test_cart_survives_killing_its_node_in_a_real_browser(browser: Driver, demo: Demo) -> None:
    driver = browser
    driver.get(demo.url)
    until(driver, lambda d: text(d, "#node").startswith("node"))
    assert cart(driver) == ["empty"]
    for item in ("apple", "pear", "plum"):
        add_to_cart(driver, item)
    served_by = text(driver, "#node")
    session_id = text(driver, "#session-id")
    token, _, route = session_id.partition(".")
    assert route == served_by, session_id

    os.kill(demo.pid_of(served_by), signal.SIGKILL)
    # Reload through the balancer until another node answers (HAProxy redispatches at once).
    until(driver, lambda d: reload_page(d, demo.url) and text(d, "#node") != served_by, 20)
    new_node = text(driver, "#node")
    assert new_node != served_by
    assert cart(driver) == ["apple", "pear", "plum"]
    assert text(driver, "#session-id").partition(".")[0] == token  # the same session

    def rerouted(d: Driver) -> bool:  # the id's route names the new node (milliseconds)
        if not reload_page(d, demo.url):
            return False
        assert cart(d) == ["apple", "pear", "plum"]
        return text(d, "#session-id") == f"{token}.{text(d, '#node')}"

    until(driver, rerouted, 10)
    # Sticky again: the rewritten cookie names the node that took the session over
    # (HAProxy may have sent the requests before the rewrite to either survivor).
    new_node = text(driver, "#node")
    assert new_node != served_by

    def dead_node_gone(d: Driver) -> bool:  # it left the membership (heartbeats stopped)
        if not reload_page(d, demo.url):
            return False
        assert text(d, "#node") == new_node
        return served_by not in text(d, "#members")

    until(driver, dead_node_gone, 15)
    assert f"{new_node} (this node)" in text(driver, "#members")

    fit_height(driver, DESKTOP[0])
    screenshot(driver, "demo-after-failover.png")
    # A phone: 390 CSS px wide, the page's viewport meta applies (mobile emulation).
    driver.set_window_size(*DESKTOP)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    driver.refresh()
    until(driver, lambda d: cart(d) == ["apple", "pear", "plum"])
    assert driver.execute_script("return window.innerWidth") == PHONE["width"]
    # Nothing wider than the phone: no sideways scrolling needed to read the page.
    assert driver.execute_script("return document.documentElement.scrollWidth") <= PHONE["width"]
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            **PHONE,
            "height": driver.execute_script("return document.documentElement.scrollHeight"),
        },
    )
    screenshot(driver, "demo-phone.png")
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # The status page, through the same balancer (HAProxy connects from loopback).
    driver.set_window_size(*DESKTOP)
    driver.find_element(By.LINK_TEXT, "Cluster status").click()

    def status_after_failover(d: Driver) -> bool:  # it refreshes itself every 2 s
        svg = d.find_element(By.CSS_SELECTOR, "svg[aria-label='cluster members']")
        labels = svg.text
        return (
            f"{new_node} (this)" in labels
            and served_by not in labels
            and len(svg.find_elements(By.TAG_NAME, "circle")) == 2  # it and the last one
        )

    until(driver, status_after_failover, 15)
    assert driver.title == f"cluster status: {new_node}"
    fit_height(driver, DESKTOP[0])
    until(driver, status_after_failover, 15)  # re-rendered after the resize/refresh
    screenshot(driver, "status-page.png")
