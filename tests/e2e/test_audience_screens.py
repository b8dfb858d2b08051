"""The organizer's screens in a real browser (Debian's chromium driven by Playwright) against ingest, identity and
profiles as processes: the organizer imports a file on ingest's screen, reads its result row by row (a refused row
links to its error, a resolved one to the contact), follows a row to the contact's page on the profiles screen (the
token travels in the fragment, a navigation to another origin: no CORS), tags the contact and notes something,
sees the interaction history with its own events, saves the tag as a segment, counts it and exports it as CSV.
A screenshot of each screen is saved under the test's tmp dir (the path is printed)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Download, Page, async_playwright, expect

from shared.auth import mint_token
from shared.events import EventCheckedInV1, TicketPurchasedV1
from shared.topics import INTERACTIONS
from tests.support.browser import (
    ACTION_MS,
    CHROMIUM,
    csv_payload,
    require_chromium,
    save_screenshot,
    screenshot_on_failure,
)
from tests.support.isolation import Isolation
from tests.support.kafka import publish_events
from tests.support.processes import SERVICE_PROCESSES, ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

SERVICES = ("ingest", "identity", "profiles")
FINISH_MS = 60_000
"""How long the import may take to finish: identity resolution goes through Kafka on a shared machine."""
PROFILES_SECONDS = 30
"""How long profiles may take to show the imported contacts and their interactions."""


@pytest.fixture
async def services(
    isolation: Isolation, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[dict[str, ServiceProcess]]:
    """ingest, identity and profiles as processes (enrichment plays no part in these screens)."""
    isolation.migrate(SERVICES)
    processes = {name: ServiceProcess.for_isolation(isolation, name, log_dir=tmp_path / "logs") for name in SERVICES}
    request.node.stash[SERVICE_PROCESSES] = processes
    try:
        started = await asyncio.gather(*(p.start() for p in processes.values()), return_exceptions=True)
        failures = [result for result in started if isinstance(result, BaseException)]
        if failures:
            raise failures[0]
        yield processes
    finally:
        await asyncio.gather(*(process.stop() for process in processes.values()), return_exceptions=True)


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = await browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
            context.set_default_timeout(ACTION_MS)
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page
            assert errors == [], errors
        finally:
            await browser.close()


async def downloaded(page: Page, button: str) -> tuple[str, list[list[str]]]:
    """Click ``button`` and read the file it downloads: its suggested name and its CSV rows."""
    async with page.expect_download() as started:
        await page.get_by_role("button", name=button).click()
    download: Download = await started.value
    content = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8-sig")
    return download.suggested_filename, list(csv.reader(io.StringIO(content)))


async def test_import_row_contact_tag_segment_export(
    services: dict[str, ServiceProcess], isolation: Isolation, page: Page, tmp_path: Path
) -> None:
    shots = tmp_path / "screens"
    shots.mkdir()
    print(f"screenshots: {shots}")
    ingest, profiles = services["ingest"].base_url, services["profiles"].base_url
    org = f"org-{uuid.uuid4().hex[:8]}"
    ada, grace = f"ada@{org}.example", f"grace@{org}.example"
    token = mint_token(secret=isolation.auth_secret, organizer_id=org, ttl_seconds=600)
    headers = {"Authorization": f"Bearer {token}"}
    content = (
        "email,first_name,last_name,company\n"
        f"{ada},Ada,Lovelace,Analytical Engines\n"
        'not-an-email,Bob,,"=HYPERLINK(""http://evil.example"")"\n'
        f"{grace},Grace,Hopper,US Navy\n"
    ).encode()

    async with screenshot_on_failure(page, "audience-screens"), httpx.AsyncClient(timeout=10) as client:

        async def contact(email: str, **expected: Any) -> dict[str, Any]:
            async def shown() -> dict[str, Any] | None:
                found = (await client.get(f"{profiles}/v1/contacts", params={"email": email},
                                          headers=headers)).json()["items"]
                return found[0] if found and all(found[0]["insights"][k] == v for k, v in expected.items()) else None

            return await wait_until(shown, timeout=PROFILES_SECONDS, description=f"{email} with {expected}")

        # import: the result page lists the rows by outcome
        await page.goto(f"{ingest}/app/#token={token}&profiles={quote(f'{profiles}/app/', safe='')}")
        await expect(page.locator("#token-state")).to_have_text("Token set.")
        assert "token" not in page.url and "profiles" not in page.url
        await page.get_by_label(re.compile("^CSV file")).set_input_files(files=[csv_payload("people.csv", content)])
        await page.get_by_role("button", name="Upload").click()
        await expect(page.locator("#field-0")).to_have_value("email")
        await page.get_by_role("button", name="Import").click()
        await expect(page.locator("#summary-status")).to_have_text("error", timeout=FINISH_MS)  # a row failed
        await expect(page.locator("#summary-created")).to_have_text("2")
        await expect(page.locator("#summary-errors")).to_have_text("1")
        rows = page.locator("#rows-table tbody tr")
        await expect(rows).to_have_count(3)

        # the refused row links to its error, with the cells as read; the error file neutralizes the formula
        await page.get_by_label("Show").select_option("error")
        await expect(rows).to_have_count(1)
        await rows.first.get_by_role("link", name=re.compile("^INVALID_EMAIL: ")).click()
        await expect(page.locator("#errors-table tr:target li")).to_have_text(
            ["not-an-email", "Bob", "", '=HYPERLINK("http://evil.example")'])
        name, error_file = await downloaded(page, "Download the error rows (CSV)")
        assert name.endswith("-errors.csv")
        assert error_file[1][1:5] == ["not-an-email", "Bob", "", '\'=HYPERLINK("http://evil.example")']
        assert error_file[1][5] == "INVALID_EMAIL"
        await save_screenshot(page, shots, "1-import-result")

        # the result stays reachable: a new visit lists the import, which opens its result again (#import=ID)
        await page.goto(f"{ingest}/app/")
        await page.locator("#imports-list").get_by_role("link", name="people.csv").click()
        await expect(page.locator("#summary-errors")).to_have_text("1")
        await expect(rows).to_have_count(3)

        # the person buys tickets for one of the organizer's events and attends it
        at = datetime(2026, 11, 20, 18, tzinfo=UTC)
        await publish_events(isolation.kafka_bootstrap, topic=isolation.topic(INTERACTIONS), events=[
            (ada, TicketPurchasedV1(organizer_id=org, email=ada, occurred_at=at, kagibag_event_id="ev-gala",
                                    order_id="o-1", ticket_count=2)),
            (ada, EventCheckedInV1(organizer_id=org, email=ada, occurred_at=at.replace(hour=19),
                                   kagibag_event_id="ev-gala")),
        ])
        ada_contact = await contact(ada, events_attended=1, tickets_purchased=2)
        await contact(grace)

        # a created row opens the contact's page on the profiles screen, the token in the fragment
        await page.get_by_label("Show").select_option("created")
        await expect(rows).to_have_count(2)
        link = rows.first.get_by_role("link", name="Open the contact")
        href = await link.get_attribute("href")
        assert href is not None and href.startswith(f"{profiles}/app/#") and "?" not in href
        await link.click()
        await expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()
        assert page.url == f"{profiles}/app/#contact={ada_contact['contact_id']}"  # the token left the address
        await expect(page.locator('#profile-facts dd[data-field="Company"]')).to_contain_text("Analytical Engines")
        await expect(page.locator('#insights-facts dd[data-field="Events attended"]')).to_have_text("1")
        await expect(page.locator("#insights-events li")).to_have_text(["ev-gala"])
        history = page.locator("#history-table tbody tr")
        await expect(history).to_have_count(2)
        await expect(history.nth(0).locator("td").nth(1)).to_have_text("Checked in")  # newest first
        await expect(history.nth(1).locator("td")).to_have_text(
            [re.compile("."), "Bought tickets", "ev-gala", "o-1", "2"])

        # tag, notes and permission through the PATCH route
        await page.get_by_label("New tag", exact=True).fill("VIP")
        await page.get_by_role("button", name="Add tag").click()
        await expect(page.get_by_role("button", name="Remove tag vip")).to_be_visible()
        await page.get_by_role("textbox", name="Notes", exact=True).fill("Met at the gala; wants <b>speaker</b> slots.")
        await page.get_by_role("button", name="Save notes").click()
        await expect(page.locator("#contact-notice")).to_have_text("Notes saved.")
        await page.locator("#permission-input").select_option("subscribed")
        await page.get_by_role("button", name="Save permission").click()
        await expect(page.locator("#permission-facts")).to_contain_text("subscribed, stated by")
        stored = (await client.get(f"{profiles}/v1/contacts/{ada_contact['contact_id']}", headers=headers)).json()
        assert stored["relationship"]["tags"] == ["vip"]
        assert stored["relationship"]["notes"] == "Met at the gala; wants <b>speaker</b> slots."
        assert stored["email_permission"] == "subscribed"
        await save_screenshot(page, shots, "2-contact")

        # the list, filtered by the tag, saved as a segment, counted
        await page.get_by_role("link", name="← All contacts").click()
        listed = page.locator("#contacts-table tbody tr")
        await expect(listed).to_have_count(2)
        await save_screenshot(page, shots, "3-contacts")
        await page.get_by_label("Tags", exact=True).fill("vip")
        await page.get_by_role("button", name="Apply").click()
        await expect(listed).to_have_count(1)
        await expect(listed.first.locator("td").nth(1)).to_have_text(ada)
        await page.locator("#segment-create summary").click()
        await page.get_by_label("Name", exact=True).fill("VIPs")
        await page.get_by_role("button", name="Use the filters above").click()
        editor = page.get_by_label(re.compile("^Filter"))
        await expect(editor).to_have_value('{\n  "tag": "vip"\n}')
        await editor.fill('{"and": [{"tag": "vip"}, {"colour": "red"}]}')
        await page.get_by_role("button", name="Create segment").click()
        await expect(page.locator("#segment-error")).to_contain_text("colour")  # the 422 names the field
        await editor.fill('{"and": [{"tag": "vip"}, {"attended": "ev-gala"}, {"not": {"permission": "unsubscribed"}}]}')
        await save_screenshot(page, shots, "4-segment-create")
        await page.get_by_role("button", name="Create segment").click()
        await expect(page.locator("#segment-picker option:checked")).to_have_text("VIPs")
        await expect(page.locator("#segment-count")).to_have_text("1 contact in this segment.")
        await expect(page.locator("#segment-error")).to_have_text("")
        await expect(listed).to_have_count(1)

        # export: the segment, then the filtered list, downloaded with the token as blobs
        _, segment_file = await downloaded(page, "Export CSV")
        await expect(page.locator("#export-state")).to_contain_text("Downloaded")
        await save_screenshot(page, shots, "5-export")
        header = segment_file[0]
        assert [(row[header.index("email")], row[header.index("tags")]) for row in segment_file[1:]] == [(ada, "vip")]
        await page.locator("#segment-picker").select_option("")
        await expect(page.locator("#segment-count")).to_have_text("")
        _, filtered_file = await downloaded(page, "Export CSV")
        assert [row[filtered_file[0].index("email")] for row in filtered_file[1:]] == [ada]
