"""The dashboard in a real browser (Debian's chromium through Playwright) against the real stack.

One stack (tools.stack, exactly what `make run` runs, on free ports) serves the
whole session and one browser each module; each test gets its own browser context, so
sign-ins never leak between tests. The dashboard is built first when its
sources changed (`make test` has already built it).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from services.common.auth import ensure_dev_keys
from tests.conftest import Postgres
from tests.e2e.conftest import Stack, run_stack
from tools import web

ROOT = Path(__file__).resolve().parents[2]
# The README's screenshots are refreshed with `UPDATE_SCREENSHOTS=1 make test`; ordinary
# runs still take them (same code path) but keep them out of the working tree.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "creditmeter-screenshots"
)
CHROMIUM = "/usr/bin/chromium"
USD = 1_000_000_000

expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
async def browser_databases(postgres: Postgres) -> dict[str, str]:
    """Both browser stacks' databases, created before Playwright's loop starts in this thread
    (an async fixture cannot run once the sync API is up)."""
    return {"main": await postgres.database("browser"), "oidc": await postgres.database("browser_oidc")}


@pytest.fixture(scope="session")
def browser_database(browser_databases: dict[str, str]) -> str:
    return browser_databases["main"]


@pytest.fixture(scope="session")
def web_stack(browser_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    web.build()
    local = tmp_path_factory.mktemp("browser-stack")
    ensure_dev_keys(local / "dev-auth")
    with run_stack(browser_database, local, COUPONS_DEV_SEED="true") as running:
        yield running


# Module scope, not session: while Playwright's sync API is up it owns an event loop in
# this thread, and the async fixtures and tests that pytest runs after the browser
# modules could not run their own.
@pytest.fixture(scope="module")
def playwright(browser_databases: dict[str, str]) -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (make browser-deps)")
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
    yield launched
    launched.close()


class App:
    """A browser context on the dashboard, plus API helpers for arranging and checking state."""

    def __init__(self, stack: Stack, context: BrowserContext) -> None:
        self.stack = stack
        self.context = context
        self.page: Page = context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, path: str) -> Page:
        self.page.goto(self.stack.url + path)
        return self.page

    def sign_in(self, user: str, role: str = "user", path: str = "/") -> Page:
        """The development sign-in, as a person uses it."""
        page = self.open(path)
        page.get_by_label("User id").fill(user)
        page.get_by_role("radio", name="Admin" if role == "admin" else "User").check()
        page.get_by_role("button", name="Sign in (development)").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        return page

    def api(self, method: str, path: str, *, user: str, role: str, **body: Any) -> httpx.Response:
        with httpx.Client(base_url=self.stack.url, timeout=30) as http:
            return http.request(method, path, headers=self.stack.headers(user, role), json=body or None)

    def screenshot(self, name: str) -> None:
        expect(self.page.locator("[aria-busy=true]")).to_have_count(0)  # every panel loaded
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def app(web_stack: Stack, browser: Browser) -> Iterator[App]:
    # Reduced motion, as a person may ask their system for: charts are drawn at once (no grow-in
    # animation caught half-way in a screenshot).
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-US", accept_downloads=True, reduced_motion="reduce"
    )
    made = App(web_stack, context)
    yield made
    context.close()
    assert not made.errors, f"uncaught errors in the page: {made.errors}"


@pytest.fixture
def phone(web_stack: Stack, browser: Browser) -> Iterator[App]:
    context = browser.new_context(
        viewport={"width": 375, "height": 812},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="en-US",
        reduced_motion="reduce",
    )
    made = App(web_stack, context)
    yield made
    context.close()


def new_user(prefix: str = "web") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
