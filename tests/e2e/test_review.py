"""Acceptance: a conflict held for review, resolved by a person, ends in every system.

The same contact's name is edited in the CRM and the helpdesk at once; the example config's
policy for names is ``manual``, so the conflict stays open. It is then resolved from the CLI
(``python -m daemon conflicts resolve`` as its own process), or in real headless Chromium on
the review page; either way both systems end holding the chosen value, checked through their
admin APIs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from streams.events import ConflictEvent
from streams.kafka import KafkaSettings
from tests.e2e.harness import ENV, REPO, Stack, eventually, stack

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(400)]

T = TypeVar("T")


def person(name: str, email: str) -> dict[str, object]:
    return {"email": email, "name": name, "phone": None, "tags": []}


async def open_name_conflict(s: Stack, email: str) -> ConflictEvent:
    """Edit the name on both sides at once and wait for the conflict the merge holds."""
    await s.create("crm", email, "Ann")
    await s.start()
    await s.converged({email: person("Ann", email)})
    await s.update("helpdesk", email, name="Ann Helpdesk")
    await s.update("crm", email, name="Ann Crm")

    async def held() -> ConflictEvent | None:
        found = [c for c in (await s.conflicts()).values()
                 if c.field == "name" and c.status == "open"]
        return found[0] if found else None

    event: ConflictEvent = await eventually(held, 60, "an open conflict on the name")
    assert {event.current.system, event.incoming.system} == {"crm", "helpdesk"}
    return event


async def resolved(s: Stack, conflict_id: str) -> ConflictEvent:
    async def done() -> ConflictEvent | None:
        event = (await s.conflicts()).get(conflict_id)
        return event if event is not None and event.status == "resolved" else None

    found: ConflictEvent = await eventually(done, 60, f"conflict {conflict_id} resolved")
    return found


def syncline(s: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    assert s.config_path is not None
    return subprocess.run([sys.executable, "-m", "daemon", *args, "--config",
                           str(s.config_path)], capture_output=True, text=True, check=False,
                          cwd=REPO, env={**os.environ, **ENV}, timeout=120)


async def test_a_conflict_resolved_from_the_cli_ends_in_both_systems(
        kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    email = "ann@example.com"
    async with stack(tmp_path, kafka_settings) as s:
        event = await open_name_conflict(s, email)
        listed = await asyncio.to_thread(syncline, s, "conflicts", "list", "--open")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.startswith(event.conflict_id)
        # A system that wrote neither side is refused before anything is sent.
        refused = await asyncio.to_thread(syncline, s, "conflicts", "resolve",
                                          event.conflict_id, "--take", "shop")
        assert refused.returncode == 2 and "not one of its candidates" in refused.stderr

        took = await asyncio.to_thread(syncline, s, "conflicts", "resolve", event.conflict_id,
                                       "--take", "helpdesk", "--by", "dana", "--note", "asked")
        assert took.returncode == 0, took.stderr
        await s.converged({email: person("Ann Helpdesk", email)})
        done = await resolved(s, event.conflict_id)
        assert done.resolution is not None
        assert (done.resolution.by, done.resolution.note, done.value) == (
            "dana", "asked", "Ann Helpdesk")

        again = await asyncio.to_thread(syncline, s, "conflicts", "resolve", event.conflict_id,
                                        "--take", "crm")
        assert again.returncode == 2 and "is not open (it was resolved by dana)" in again.stderr
        history = await asyncio.to_thread(syncline, s, "record", event.canonical_id)
        assert history.returncode == 0, history.stderr
        assert "chosen by dana" in history.stdout and "lost a conflict" in history.stdout


# -- the browser ----------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium driven by selenium through the Debian chromium-driver."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs chromium and chromedriver (apt-get install chromium "
                    "chromium-driver; .ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", "--window-size=1280,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


async def in_thread(call: Callable[..., T], *args: Any) -> T:
    """Selenium blocks; the simulated systems run in this event loop and must keep serving."""
    return await asyncio.to_thread(call, *args)


def screenshot(driver: Any, path: Path) -> None:
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(b"\x89PNG\r\n\x1a\n"), path


async def test_take_this_value_in_headless_chromium(
        kafka_settings: KafkaSettings, tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    email = "bea@example.com"
    async with stack(tmp_path, kafka_settings) as s:
        event = await open_name_conflict(s, email)
        base = f"http://127.0.0.1:{s.worker_port}/review/"

        # Without the token the page refuses, to a browser as to anyone.
        async with httpx.AsyncClient() as client:
            assert (await client.get(base)).status_code == 401
            assert (await client.post(base + "resolve", data={
                "conflict_id": event.conflict_id, "take": "crm"})).status_code == 401

        # The HTML report, as a file opened in the browser.
        report = tmp_path / "report.html"
        made = await asyncio.to_thread(syncline, s, "report", "--format", "html", "--out",
                                       str(report))
        assert made.returncode == 0, made.stderr
        await in_thread(browser.get, report.as_uri())
        assert "Open conflicts (1)" in await in_thread(lambda: browser.find_element(
            By.TAG_NAME, "body").text)
        screenshot(browser, tmp_path / "report.png")

        # The review page: the token once in the address, then a cookie.
        await in_thread(browser.get, f"{base}?token={ENV['SYNCLINE_REVIEW_TOKEN']}")
        assert "token=" not in browser.current_url
        screenshot(browser, tmp_path / "review-page.png")

        def take_helpdesk() -> None:
            card = browser.find_element(
                By.CSS_SELECTOR, f'article[data-conflict-id="{event.conflict_id}"]')
            reviewer = browser.find_element(By.ID, "reviewer")
            reviewer.clear()
            reviewer.send_keys("bea's manager")
            card.find_element(By.CSS_SELECTOR, "input.note").send_keys("checked by phone")
            side = card.find_element(By.CSS_SELECTOR, '.side[data-system="helpdesk"]')
            side.find_element(By.CSS_SELECTOR, "button.take-button").click()

        await in_thread(take_helpdesk)

        async def shown_resolved() -> bool:
            def look() -> bool:
                browser.get(base)
                rows = browser.find_elements(
                    By.CSS_SELECTOR, f'tr[data-conflict-id="{event.conflict_id}"]'
                                     '[data-status="resolved"]')
                return bool(rows) and browser.find_element(By.ID, "count-open").text == "0"
            return await in_thread(look)

        await eventually(shown_resolved, 60, "the page showing the conflict resolved")
        screenshot(browser, tmp_path / "review-page-resolved.png")
        await s.converged({email: person("Ann Helpdesk", email)})
        done = await resolved(s, event.conflict_id)
        assert done.resolution is not None
        assert (done.resolution.by, done.resolution.note) == ("bea's manager",
                                                              "checked by phone")
