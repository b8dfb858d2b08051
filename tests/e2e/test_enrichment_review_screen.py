"""The attendee's review screen in a real browser (Debian's chromium driven by Playwright) against the running
identity and enrichment processes: the attendee signs in with their token (from the address's fragment, or pasted;
never from the query string), accepts a suggestion, edits one before accepting it, rejects one, completes their
profile, and sees their statements in their profile once identity applied them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from shared.auth import mint_attendee_token, mint_token
from shared.events import WaitlistRegisteredV1
from shared.topics import INTERACTIONS
from tests.support.browser import ACTION_MS, CHROMIUM, require_chromium, screenshot_on_failure
from tests.support.isolation import Isolation
from tests.support.kafka import publish_events
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

SUGGESTIONS_SECONDS = 60
"""How long the suggestions may take: identity creates the contact, enrichment's worker runs behind."""
APPLIED_MS = 30_000
"""How long a statement may take to show in the profile: enrichment -> identity -> the contact log -> enrichment."""


class Screen:
    def __init__(self, isolation: Isolation, browser: Browser) -> None:
        self.isolation = isolation
        self.browser = browser
        self.enrichment = isolation.base_url("enrichment")

    def token(self, email: str) -> str:
        return mint_attendee_token(secret=self.isolation.auth_secret, email=email, ttl_seconds=600)

    async def person(self) -> str:
        """A new person who registered for an event's waitlist (no name, a corporate domain), once enrichment
        has made their three suggestions: their email."""
        letters = "".join(chr(ord("a") + int(digit, 16)) for digit in uuid.uuid4().hex[:8])
        email = f"ada.lovelace@engines-{letters}.example"
        event = WaitlistRegisteredV1(organizer_id="org-screen", email=email, occurred_at=datetime.now(UTC),
                                     kagibag_event_id="ev-1")
        await publish_events(self.isolation.kafka_bootstrap, topic=self.isolation.topic(INTERACTIONS),
                             events=[(email, event)])
        headers = {"Authorization": f"Bearer {self.token(email)}"}
        async with httpx.AsyncClient(timeout=10) as client:

            async def suggested() -> bool:
                answer = await client.get(f"{self.enrichment}/v1/me/suggestions", headers=headers)
                return len(answer.json()["items"]) == 3

            await wait_until(suggested, timeout=SUGGESTIONS_SECONDS, description=f"suggestions for {email}")
        return email


@pytest.fixture(scope="module")
async def screen(
    database_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Screen]:
    require_chromium()
    isolation = Isolation(database_url=database_url, kafka_bootstrap=kafka_bootstrap)
    isolation.migrate(("identity", "enrichment"))
    logs = tmp_path_factory.mktemp("review-screen-logs")
    processes = [ServiceProcess.for_isolation(isolation, name, log_dir=logs) for name in ("identity", "enrichment")]
    try:
        await asyncio.gather(*(process.start() for process in processes))
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            try:
                yield Screen(isolation, browser)
            finally:
                await browser.close()
    finally:
        await asyncio.gather(*(process.stop() for process in processes), return_exceptions=True)
        isolation.drop_schemas()


@pytest.fixture
async def page(screen: Screen) -> AsyncIterator[Page]:
    context = await screen.browser.new_context()
    context.set_default_timeout(ACTION_MS)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
        assert errors == [], errors
    finally:
        await context.close()


def fact(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#profile-facts dd[data-field="{name}"]')


async def test_accept_edit_then_accept_reject_and_complete_the_profile(screen: Screen, page: Page) -> None:
    email = await screen.person()
    company = "Engines " + email.split("engines-")[1].split(".")[0].capitalize()
    async with screenshot_on_failure(page, "review-screen"):
        await page.goto(f"{screen.enrichment}/app/review#token={screen.token(email)}")
        await expect(page.locator("#token-state")).to_have_text("Signed in.")
        assert "token" not in page.url  # taken from the fragment, kept in sessionStorage only

        rows = page.locator("#suggestions-table tbody tr")
        await expect(rows).to_have_count(3)
        await expect(rows.locator("th")).to_have_text(["First name", "Last name", "Company"])  # the profile's order
        await expect(rows.nth(2).locator("td").nth(0)).to_have_text("(none)")
        await expect(rows.nth(2).locator("td").nth(1)).to_have_text(company)
        await expect(rows.nth(2).locator("td").nth(2)).to_have_text("your email's domain · 50% sure")

        await page.get_by_role("button", name="Accept first name Ada").click()
        await expect(page.locator("#suggestions-notice")).to_have_text('Saved: your first name is now "Ada".',
                                                                        timeout=APPLIED_MS)
        await expect(rows).to_have_count(2)

        await page.get_by_role("button", name="Edit company before accepting").click()
        editor = page.get_by_label("Your company")
        await expect(editor).to_have_value(company)
        await editor.fill("Analytical Engines")
        await page.get_by_role("button", name="Accept my version").click()
        await expect(page.locator("#suggestions-notice")).to_have_text(
            'Saved: your company is now "Analytical Engines".', timeout=APPLIED_MS)
        await expect(rows).to_have_count(1)

        await page.get_by_role("button", name="Reject last name Lovelace").click()
        await expect(page.locator("#suggestions-notice")).to_have_text(  # a decision's answer: slow under load
            'Rejected: Last name "Lovelace" will not be suggested again.', timeout=APPLIED_MS)
        await expect(page.locator("#suggestions-empty")).to_be_visible()
        await expect(page.locator("#suggestions-table")).to_be_hidden()

        await expect(fact(page, "First name")).to_contain_text("Ada (stated by you here,", timeout=APPLIED_MS)
        await expect(fact(page, "Company")).to_contain_text("Analytical Engines (stated by you here,",
                                                            timeout=APPLIED_MS)
        await expect(fact(page, "Last name")).to_have_text("(not stated)")
        await expect(page.get_by_label("Company")).to_have_value("Analytical Engines")

        await page.get_by_label("Job title").fill("Analyst")
        await page.get_by_label("Bio").fill("Poetical <b>scientist</b>.")
        await page.get_by_label("Network of link 1").fill("GitHub")
        await page.get_by_label("URL or handle of link 1").fill("@ada")
        await page.get_by_role("button", name="Save my profile").click()
        await expect(page.locator("#profile-notice")).to_have_text("Saved: your profile shows it in a moment.")
        await expect(fact(page, "Job title")).to_contain_text("Analyst (stated by you here,", timeout=APPLIED_MS)
        await expect(fact(page, "Bio")).to_contain_text("Poetical <b>scientist</b>.", timeout=APPLIED_MS)
        await expect(fact(page, "Link (github)")).to_contain_text("@ada", timeout=APPLIED_MS)
        assert await page.locator("#profile-facts b").count() == 0  # shown as text, never as markup

        await page.get_by_role("button", name="Save my profile").click()
        await expect(page.locator("#profile-notice")).to_have_text("Nothing changed.")
        await page.reload()
        await expect(page.locator("#suggestions-empty")).to_be_visible()  # decided ones never come back


async def test_a_pasted_token_signs_in_and_a_token_in_the_query_string_is_ignored(screen: Screen, page: Page) -> None:
    email = await screen.person()
    async with screenshot_on_failure(page, "review-screen-token"):
        await page.goto(f"{screen.enrichment}/app/review?token={screen.token(email)}")
        await expect(page.locator("#token-state")).to_have_text("Not signed in.")
        await expect(page.locator("#signin-error")).to_contain_text("Paste your attendee token")

        organizer = mint_token(secret=screen.isolation.auth_secret, organizer_id="org-screen", ttl_seconds=600)
        await page.get_by_label("Attendee token").fill(organizer)
        await page.get_by_role("button", name="Use token").click()
        await expect(page.locator("#suggestions-error")).to_have_text(
            "This page is for attendees (an organizer token cannot call attendee routes).")

        await page.get_by_label("Attendee token").fill(screen.token(email))
        await page.get_by_role("button", name="Use token").click()
        await expect(page.locator("#token-state")).to_have_text("Signed in.")
        await expect(page.locator("#suggestions-error")).to_have_text("")
        await expect(page.locator("#suggestions-table tbody tr")).to_have_count(3)
