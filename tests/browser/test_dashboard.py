"""The dashboard as users and admins use it, in Debian's chromium against the real stack."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from playwright.sync_api import Page, expect

from services.metering import repository
from services.metering.domain import Event
from tests.browser.conftest import USD, App, new_user

PAID = "openai/gpt-4o-mini"


def _track(app: App, user: str, model: str = PAID) -> dict[str, object]:
    """A usage event reported by a platform service through the REST API (POST /api/v1/metering/track)."""
    event = {
        "event_id": f"web-{uuid.uuid4().hex}",
        "user_id": user,
        "service": 1,  # the first ServiceKind after UNSPECIFIED: LLM
        "model": model,
        "input_tokens": "1000",
        "output_tokens": "500",
    }
    response = app.api("POST", "/api/v1/metering/track", user="svc-platform", role="svc-platform", event=event)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _balance(app: App, user: str) -> int:
    response = app.api("GET", f"/api/v1/credits/balance?user_id={user}", user="ops", role="admin")
    assert response.status_code == 200, response.text
    return int(response.json()["balance_nanos"])


def _usd(nanos: int) -> str:
    """How the overview shows an exact balance: cents always, further digits only when there are any."""
    fraction = f"{nanos % USD:09d}".rstrip("0").ljust(2, "0")
    return f"${nanos // USD:,}.{fraction}"


def test_sign_in_redeem_and_watch_a_charge_arrive_without_reloading(app: App) -> None:
    user = new_user("alice")
    page = app.sign_in(user)
    # The overview with the real balance: the trial tier's $1 allocation.
    expect(page.get_by_role("heading", level=1, name="Overview", exact=True)).to_be_visible()
    expect(page.get_by_test_id("balance")).to_have_text("$1.00")
    expect(page.get_by_test_id("tier")).to_have_text("Trial")
    app.screenshot("overview")

    page.get_by_role("link", name="Coupons").click()
    page.get_by_label("Coupon code").fill("WELCOME10")
    page.get_by_role("button", name="Redeem").click()
    expect(page.get_by_role("status").filter(has_text="$10.00 was added")).to_be_visible()
    assert _balance(app, user) == 11 * USD

    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_test_id("balance")).to_have_text("$11.00")
    # Mark this page load: if anything reloads the page, the mark is gone.
    page.evaluate("window.__stillTheSamePage = true")

    charged = _track(app, user)
    cost = int(str(charged["charged_nanos"]))
    assert cost > 0
    expected = _balance(app, user)
    assert expected == 11 * USD - cost
    # The open page learns of the charge from the balance stream, within two seconds.
    expect(page.get_by_test_id("balance")).to_have_text(_usd(expected), timeout=2_000)
    expect(page.get_by_test_id("spend")).not_to_have_text("$0.00")
    assert page.evaluate("window.__stillTheSamePage") is True

    page.get_by_role("link", name="Usage").click()
    expect(page.get_by_role("table", name="Usage by model")).to_contain_text(PAID)
    expect(page.get_by_test_id("usage-totals")).to_contain_text("1 call ·")
    app.screenshot("usage")

    page.get_by_role("link", name="Transactions").click()
    rows = page.get_by_test_id("transaction-row")
    expect(rows.filter(has_text=PAID)).to_have_count(1)
    expect(rows.filter(has_text="Coupon")).to_have_count(1)
    app.screenshot("transactions")


def test_every_coupon_refusal_reads_as_a_sentence(app: App) -> None:
    admin = {"user": "ops", "role": "admin"}
    now = datetime.now(UTC)

    def coupon(code: str, **fields: object) -> None:
        body = {
            "code": code,
            "kind": 1,  # credit grant
            "credit_amount_nanos": str(USD),
            "request_id": uuid.uuid4().hex,
            **fields,
        }
        response = app.api("POST", "/api/v1/coupons/create", **admin, **body)
        assert response.status_code == 200, response.text

    suffix = uuid.uuid4().hex[:6].upper()
    coupon(f"SOON{suffix}", expires_at=(now + timedelta(seconds=2)).isoformat().replace("+00:00", "Z"))
    coupon(f"LATER{suffix}", valid_from=(now + timedelta(days=2)).isoformat().replace("+00:00", "Z"))
    coupon(f"ONCE{suffix}", max_redemptions="1")
    coupon(f"ENT{suffix}", eligible_tiers=["enterprise"])
    coupon(f"NEW{suffix}", first_time_only=True)
    coupon(f"OFF{suffix}")
    assert (
        app.api(
            "POST", f"/api/v1/coupons/OFF{suffix}/disable", **admin, reason="test", request_id=uuid.uuid4().hex
        ).status_code
        == 200
    )
    other = new_user("first")
    assert (
        app.api(
            "POST", "/api/v1/coupons/redeem", user=other, role="user", code=f"ONCE{suffix}", request_id="r1"
        ).status_code
        == 200
    )

    user = new_user("bob")
    page = app.sign_in(user, path="/credits/coupons")
    expect(page.get_by_role("heading", level=1, name="Coupons", exact=True)).to_be_visible()

    def redeem(code: str) -> None:
        page.get_by_label("Coupon code").fill(code)
        page.get_by_role("button", name="Redeem").click()

    redeem("WELCOME10")
    expect(page.get_by_role("status").filter(has_text="was added to your balance")).to_be_visible()
    expect(page.get_by_role("table", name="Your redemptions")).to_contain_text("WELCOME10")
    time.sleep(max(0.0, (now + timedelta(seconds=2.5) - datetime.now(UTC)).total_seconds()))
    for code, sentence in (
        ("WELCOME10", "You have already redeemed this coupon."),
        ("NO-SUCH-CODE", "There is no coupon with that code."),
        (f"SOON{suffix}", "This coupon has expired"),
        (f"LATER{suffix}", "This coupon cannot be used yet."),
        (f"ONCE{suffix}", "This coupon has been used up"),
        (f"ENT{suffix}", "This coupon is not available on your current plan."),
        (f"NEW{suffix}", "This coupon is only for new users"),
        (f"OFF{suffix}", "This coupon has been withdrawn"),
    ):
        redeem(code)
        expect(page.get_by_role("alert")).to_contain_text(sentence)
    app.screenshot("coupons")
    # None of the refusals moved money: the trial dollar plus WELCOME10.
    assert _balance(app, user) == 11 * USD


def test_an_admin_allocates_credits_and_creates_then_disables_a_coupon(app: App) -> None:
    user = new_user("carol")
    assert app.api("GET", "/api/v1/credits/balance", user=user, role="user").status_code == 200  # opens the account
    page = app.sign_in("ops-admin", role="admin", path="/admin/credits")
    expect(page.get_by_role("heading", level=1, name="Accounts", exact=True)).to_be_visible()
    page.get_by_label("Search by user id").fill(user)
    page.get_by_role("link", name=user).click()
    expect(page.get_by_test_id("balance")).to_have_text("$1.00")

    page.get_by_label("Amount (USD)").fill("25.50")
    page.get_by_label("Reason").fill("goodwill for the outage")
    page.get_by_role("button", name="Allocate").click()
    expect(page.get_by_role("status").filter(has_text="Allocated $25.50")).to_be_visible()
    expect(page.get_by_test_id("balance")).to_have_text("$26.50")
    assert _balance(app, user) == 26_500_000_000

    page.get_by_role("combobox", name="Tier").click()
    page.get_by_role("option", name="Starter").click()
    page.get_by_role("button", name="Change tier").click()
    expect(page.get_by_role("status").filter(has_text="Moved from trial to starter")).to_be_visible()
    app.screenshot("admin-account")

    page.get_by_role("tab", name="Transactions").click()
    allocation = page.get_by_test_id("transaction-row").filter(has_text="goodwill for the outage")
    expect(allocation).to_have_count(1)

    code = f"SPRING{uuid.uuid4().hex[:6].upper()}"
    page.get_by_role("link", name="Coupon admin").click()
    page.get_by_label("Code").fill(code)
    page.get_by_label("Description").fill("Spring promotion")
    page.get_by_label("Credits (USD)").fill("5")
    page.get_by_label("Total redemptions").fill("100")
    page.get_by_role("button", name="Create coupon").click()
    expect(page.get_by_role("status").filter(has_text=f"Coupon {code} created")).to_be_visible()
    row = page.get_by_test_id(f"coupon-{code}")
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text("$5.00")
    app.screenshot("admin-coupons")
    row.get_by_role("button", name=f"Disable {code}").click()
    page.get_by_role("button", name="Disable coupon").click()
    expect(row).to_contain_text("Disabled")
    found = app.api("GET", f"/api/v1/coupons/by-code/{code}", user="ops", role="admin")
    assert found.json()["coupon"]["disabled"] is True

    # A new page starts at its top, whatever the last one was scrolled to.
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    assert page.evaluate("window.scrollY") > 0
    page.get_by_role("link", name="Platform").click()
    expect(page.get_by_role("heading", level=1, name="Platform", exact=True)).to_be_visible()
    assert page.evaluate("window.scrollY") == 0
    expect(page.get_by_role("table", name="By tier")).to_contain_text("Starter")
    # The pipeline's parked events are listed for operators (none here: the panel says so).
    parked = page.get_by_role("region", name="Parked usage events")
    expect(parked.get_by_text("No parked usage events")).to_be_visible()
    app.screenshot("admin-platform")


def _stuck_event(app: App, user: str, *, parked: bool) -> str:
    """A priced usage event of ``user`` left where the pipeline leaves it when a dependency keeps failing:
    pending with its next attempt an hour away, or parked. Put in place with metering's own recording and
    parking functions: no API makes an event fail on purpose."""
    priced = _track(app, user)  # the price and price version a real event of the same shape gets
    event_id = f"web-{'parked' if parked else 'pending'}-{uuid.uuid4().hex}"

    async def record(conn: asyncpg.Connection) -> None:
        event = Event(event_id, user, "LLM", PAID, "", 1000, 500, 0, False, "", datetime.now(UTC))
        await repository.record_events(conn, [event], [int(priced["cost_nanos"])], [str(priced["price_version"])])
        if parked:
            await repository.park(conn, [event_id], ["LEDGER_REFUSED"])
        else:
            await repository.retry_later(conn, [event_id], "UNAVAILABLE", 3600)
            await conn.execute(
                "UPDATE events SET next_attempt_at = now() + interval '1 hour' WHERE event_id = $1", event_id
            )

    _in_metering_db(app, record)
    return event_id


def _in_metering_db(app: App, work: Callable[[asyncpg.Connection], Awaitable[None]]) -> None:
    """Runs ``work`` on a connection to the stack's metering schema. Playwright's sync API owns this
    thread's event loop, so the database work runs on a thread of its own."""

    async def run() -> None:
        conn = await asyncpg.connect(app.stack.database_url, server_settings={"search_path": "metering"})
        try:
            await work(conn)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, run()).result()


def test_admins_see_pending_usage_until_the_outbox_charges_it(app: App) -> None:
    user = new_user("quinn")
    event_id = _stuck_event(app, user, parked=False)
    before = _balance(app, user)
    page = app.sign_in("ops-admin", role="admin", path="/admin/platform")
    pending = page.get_by_role("region", name="Pending usage events")
    expect(pending.get_by_test_id("pending-total")).to_contain_text("waiting to be charged")
    row = pending.get_by_role("row").filter(has_text=event_id)
    expect(row).to_contain_text("UNAVAILABLE")
    expect(row).to_contain_text(user)

    async def due_now(conn: asyncpg.Connection) -> None:
        await conn.execute("UPDATE events SET next_attempt_at = now() WHERE event_id = $1", event_id)

    _in_metering_db(app, due_now)
    page.reload()
    expect(
        page.get_by_role("region", name="Pending usage events").get_by_role("row").filter(has_text=event_id)
    ).to_have_count(0, timeout=30_000)
    deadline = time.monotonic() + 30
    while _balance(app, user) != before - 495_000:
        assert time.monotonic() < deadline, "the outbox did not charge the pending event"
        time.sleep(0.2)


def test_an_admin_retries_a_parked_event_from_the_platform_page(app: App) -> None:
    user = new_user("pat")
    event_id = _stuck_event(app, user, parked=True)
    before = _balance(app, user)
    page = app.sign_in("ops-admin", role="admin", path="/admin/platform")
    parked = page.get_by_role("region", name="Parked usage events")
    row = parked.get_by_role("row").filter(has_text=event_id)
    expect(row).to_contain_text("LEDGER_REFUSED")
    row.get_by_role("button", name=f"Retry {event_id}").click()
    expect(parked.get_by_role("status").filter(has_text="retried")).to_have_text("1 of 1 retried, 1 charged.")
    expect(parked.get_by_role("row").filter(has_text=event_id)).to_have_count(0)
    # Charged exactly once, at its recorded price.
    assert _balance(app, user) == before - 495_000
    events = app.api("GET", f"/api/v1/metering/events?user_id={user}", user="ops", role="admin").json()["events"]
    states = {e["event"]["event_id"]: e["state"] for e in events}
    assert states[event_id] == "EVENT_STATE_CHARGED"


def test_a_user_cannot_reach_admin_pages_or_other_users_data(app: App) -> None:
    user = new_user("dave")
    page = app.sign_in(user)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("link", name="Accounts")).to_have_count(0)
    for path in ("/admin/credits", "/admin/coupons", "/admin/platform", "/admin/credits/accounts/ops"):
        page.evaluate(
            f"window.history.pushState(null, '', '{path}'); window.dispatchEvent(new PopStateEvent('popstate'))"
        )
        expect(page.get_by_role("alert")).to_contain_text("for administrators only")
    # The API refuses them anyway, whatever the browser shows.
    assert app.api("GET", "/api/v1/credits/accounts", user=user, role="user").status_code == 403
    assert app.api("GET", "/api/v1/credits/balance?user_id=ops", user=user, role="user").status_code == 403
    assert app.api("GET", "/api/v1/credits/platform/report", user=user, role="user").status_code == 403
    assert app.api("GET", "/api/v1/coupons", user=user, role="user").status_code == 403


def test_transactions_filter_page_and_export_exactly(app: App) -> None:
    user = new_user("erin")
    assert app.api("GET", "/api/v1/credits/balance", user=user, role="user").status_code == 200
    # 22 small grants of $0.10 (more than one page of 20) — exact sums, no float drift.
    for _ in range(22):
        response = app.api(
            "POST",
            "/api/v1/credits/allocate",
            user="ops",
            role="admin",
            user_id=user,
            amount_nanos=str(USD // 10),
            reason="dime",
            request_id=uuid.uuid4().hex,
        )
        assert response.status_code == 200
    page = app.sign_in(user, path="/credits/transactions")
    rows = page.get_by_test_id("transaction-row")
    expect(rows).to_have_count(20)
    page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(3)  # two more dimes and the tier allocation
    page.get_by_role("button", name="Previous page").click()
    expect(rows).to_have_count(20)

    page.get_by_role("combobox", name="Kind").click()
    page.get_by_role("option", name="Tier allocation").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("+$1.00")

    page.get_by_role("combobox", name="Kind").click()
    page.get_by_role("option", name="All kinds").click()
    expect(rows).to_have_count(20)
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) == 23
    assert [r["amount_usd"] for r in records if r["reason"] == "dime"] == ["0.1"] * 22
    assert records[0]["balance_after_usd"] == "3.2"  # 1 + 22 * 0.1, exactly (no float drift)


def test_plans_come_from_the_catalog_and_highlight_the_current_tier(app: App) -> None:
    page = app.open("/credits/tiers")
    cards = page.get_by_role("article")
    expect(cards).to_have_count(4)
    expect(page.get_by_role("article", name="Starter plan")).to_contain_text("$19")
    expect(page.get_by_role("table", name="Compare features")).to_contain_text("Unlimited")
    # The public page offers sign-in and comes back to itself afterwards.
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("User id").fill(new_user("fay"))
    page.get_by_role("button", name="Sign in (development)").click()
    expect(page.get_by_role("article", name="Trial plan (your current plan)")).to_be_visible()
    page.get_by_role("button", name="Select the Professional plan").click()
    expect(page.get_by_role("dialog")).to_contain_text("Online checkout is not set up")
    app.screenshot("plans")


def test_account_key_lifecycle_and_byok(app: App) -> None:
    user = new_user("gus")
    page = app.sign_in(user, path="/credits/account")
    page.get_by_role("button", name="Create my key").click()
    expect(page.get_by_test_id("active-key")).to_have_text("Provisioned")
    page.get_by_role("button", name="Sync usage").click()
    expect(page.get_by_role("status").filter(has_text="Usage synced")).to_be_visible()
    # Trial accounts cannot bring their own key: the server's reason is shown.
    page.get_by_label("OpenRouter API key").fill("sk-or-v1-" + "a" * 40)
    page.get_by_role("button", name="Save key").click()
    expect(page.get_by_role("alert")).to_contain_text("BYOK_NOT_ALLOWED")
    app.screenshot("account")


def test_phone_layout_has_no_sideways_scrolling(phone: App) -> None:
    user = new_user("hal")
    page = phone.sign_in(user)
    expect(page.get_by_test_id("balance")).to_have_text("$1.00")
    for path, heading in (
        ("/credits", "Overview"),
        ("/credits/usage", "Usage"),
        ("/credits/transactions", "Transactions"),
        ("/credits/coupons", "Coupons"),
        ("/credits/tiers", "Plans"),
        ("/credits/account", "Account"),
    ):
        page.evaluate(
            f"window.history.pushState(null, '', '{path}'); window.dispatchEvent(new PopStateEvent('popstate'))"
        )
        expect(page.get_by_role("heading", level=1, name=heading, exact=True)).to_be_visible()
        expect(page.locator("[aria-busy=true]")).to_have_count(0)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide on a 375px phone"
    page.get_by_role("button", name="Open navigation").click()
    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_test_id("balance")).to_be_visible()
    expect(page.locator(".MuiDrawer-modal")).to_have_count(0)  # the menu has finished closing: a clean screenshot
    phone.screenshot("phone-overview")


def test_a_reload_asks_to_sign_in_and_returns_to_the_same_page(app: App) -> None:
    page = app.sign_in(new_user("ivy"), path="/credits/transactions")
    expect(page.get_by_role("heading", level=1, name="Transactions", exact=True)).to_be_visible()
    page.reload()  # tokens live in memory only
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Fcredits%2Ftransactions"))
    page.get_by_role("button", name="Sign in (development)").click()
    expect(page.get_by_role("heading", level=1, name="Transactions", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/credits/transactions$"))


def _scan(page: Page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_pages_have_no_serious_accessibility_violations(app: App) -> None:
    page = app.open("/signin")
    expect(page.get_by_label("User id")).to_be_visible()
    found = {"/signin": _scan(page)}
    app.sign_in("axe-admin", role="admin")
    for path, heading in (
        ("/credits", "Overview"),
        ("/credits/usage", "Usage"),
        ("/credits/transactions", "Transactions"),
        ("/credits/account", "Account"),
        ("/credits/coupons", "Coupons"),
        ("/credits/tiers", "Plans"),
        ("/admin/credits", "Accounts"),
        ("/admin/coupons", "Coupon admin"),
        ("/admin/platform", "Platform"),
    ):
        page.evaluate(
            f"window.history.pushState(null, '', '{path}'); window.dispatchEvent(new PopStateEvent('popstate'))"
        )
        expect(page.get_by_role("heading", level=1, name=heading, exact=True)).to_be_visible()
        expect(page.locator("[aria-busy=true]")).to_have_count(0)
        found[path] = _scan(page)
    assert not {p: v for p, v in found.items() if v}, found
