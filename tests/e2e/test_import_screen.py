"""The column-mapping screen in a real browser (Debian's chromium driven by Playwright) against the running ingest
and identity processes: an organizer uploads a CSV, sees the proposed fields, changes them, is told why a mapping is
refused, imports, follows the summary and reads the rows that failed."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from shared.auth import mint_token
from tests.support.browser import ACTION_MS, CHROMIUM, csv_payload, require_chromium, screenshot_on_failure
from tests.support.isolation import Isolation
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.e2e

FINISH_MS = 90_000
"""How long an import may take to finish: identity resolution goes through Kafka on a shared machine."""


class Screen:
    def __init__(self, isolation: Isolation, browser: Browser, client: httpx.AsyncClient) -> None:
        self.isolation = isolation
        self.browser = browser
        self.client = client
        self.ingest = isolation.base_url("ingest")

    def token(self, organizer: str) -> str:
        return mint_token(secret=self.isolation.auth_secret, organizer_id=organizer, ttl_seconds=600)

    async def api(self, organizer: str, path: str) -> Any:
        response = await self.client.get(
            f"{self.ingest}{path}", headers={"Authorization": f"Bearer {self.token(organizer)}"}
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
async def screen(
    database_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Screen]:
    """ingest and identity as processes and one headless chromium for the whole module; tests keep apart by
    organizer and each gets its own page."""
    require_chromium()
    isolation = Isolation(database_url=database_url, kafka_bootstrap=kafka_bootstrap)
    isolation.migrate(("ingest", "identity"))
    logs = tmp_path_factory.mktemp("import-screen-logs")
    processes = [ServiceProcess.for_isolation(isolation, name, log_dir=logs) for name in ("ingest", "identity")]
    try:
        await asyncio.gather(*(process.start() for process in processes))
        async with async_playwright() as playwright, httpx.AsyncClient(timeout=20) as client:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            try:
                yield Screen(isolation, browser, client)
            finally:
                await browser.close()
    finally:
        await asyncio.gather(*(process.stop() for process in processes), return_exceptions=True)
        isolation.drop_schemas()


@pytest.fixture
async def page(screen: Screen, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    context = await screen.browser.new_context()
    context.set_default_timeout(ACTION_MS)
    page = await context.new_page()
    console_errors: list[str] = []
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    try:
        yield page
        assert console_errors == [], console_errors
    finally:
        await context.close()


def organizer() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


async def upload(page: Page, name: str, content: bytes) -> None:
    await page.get_by_label(re.compile("^CSV file")).set_input_files(files=[csv_payload(name, content)])
    await page.get_by_role("button", name="Upload").click()


def field_of(page: Page, column: int) -> Locator:
    return page.locator(f"#field-{column}")


def alias_file(domain: str) -> bytes:
    """Alias headers, a decoy ("Email Domain") and a value that looks like markup; addresses unique per test,
    since identity matches an address already known from any earlier test."""
    return (
        "E-mail,Given name,Surname,Organisation,Email Domain\r\n"
        f"ada@{domain},Ada,Lovelace,Analytical Engines,{domain}\r\n"
        f"grace@{domain},Grace,Hopper,US Navy,{domain}\r\n"
        f"alan@{domain},Alan,Turing,<b>Bletchley</b>,{domain}\r\n"
    ).encode()


async def test_map_alias_columns_fix_a_refused_mapping_and_import(screen: Screen, page: Page) -> None:
    org = organizer()
    async with screenshot_on_failure(page, "mapping-aliases"):
        await page.goto(f"{screen.ingest}/")
        assert page.url.endswith("/app/")
        await page.get_by_label(re.compile("^Token")).fill(screen.token(org))
        await page.get_by_role("button", name="Use token").click()
        await expect(page.locator("#token-state")).to_have_text("Token set.")

        await upload(page, "contacts.csv", alias_file(f"{org}.example"))

        await expect(page.get_by_role("heading", name="3. Map the columns")).to_be_visible()
        headers = page.locator("#mapping-table tbody th")
        await expect(headers).to_have_text(["E-mail", "Given name", "Surname", "Organisation", "Email Domain"])
        for column, field in enumerate(["email", "first_name", "last_name", "company", ""]):
            await expect(field_of(page, column)).to_have_value(field)
        await expect(page.locator("#reason-0")).to_have_text("known alias, 95% sure")
        await expect(page.locator("#reason-4")).to_contain_text("not recognized")
        await expect(page.locator("#fact-encoding")).to_have_text("utf-8")
        await expect(page.locator("#fact-delimiter")).to_have_text("comma (,)")
        await expect(page.locator("#fact-hubspot")).to_have_text("no")
        # a value that looks like markup is shown as text, never interpreted
        await expect(page.locator("#mapping-table tbody tr").nth(3).locator("li").nth(2)).to_have_text(
            "<b>Bletchley</b>"
        )
        assert await page.locator("#mapping-table b").count() == 0

        await field_of(page, 3).select_option(label="Skip this column")
        await field_of(page, 4).select_option("first_name")
        await page.get_by_role("button", name="Import").click()
        await expect(page.locator("#mapping-error")).to_contain_text(
            "the field 'first_name' is mapped twice: column 1 ('Given name') and column 4 ('Email Domain')"
        )
        await field_of(page, 0).select_option("")
        await field_of(page, 4).select_option("")
        await page.get_by_role("button", name="Import").click()
        await expect(page.locator("#mapping-error")).to_contain_text("no column is mapped to 'email'")
        imports = (await screen.api(org, "/v1/imports"))["items"]
        assert [item["status"] for item in imports] == ["uploaded"]  # nothing started while refused

        await field_of(page, 0).select_option("email")
        await page.get_by_role("button", name="Import").click()
        await expect(page.locator("#mapping-error")).to_have_text("")
        await expect(page.locator("#summary-status")).to_have_text("processed", timeout=FINISH_MS)
        summary = {
            name: await page.locator(f"#summary-{name}").text_content()
            for name in ("total", "processed", "created", "matched", "errors")
        }
        assert summary == {"total": "3", "processed": "3", "created": "3", "matched": "0", "errors": "0"}
        await expect(page.locator("#errors-section")).to_be_hidden()

        import_id = imports[0]["import_id"]
        mapping = await screen.api(org, f"/v1/imports/{import_id}/mapping")
        assert mapping["confirmed"] == [
            {"index": 0, "field": "email"}, {"index": 1, "field": "first_name"}, {"index": 2, "field": "last_name"}
        ]


async def test_rows_with_errors_are_listed_after_the_import(screen: Screen, page: Page) -> None:
    org = organizer()
    domain = f"{org}.example"
    content = (
        "email,first_name,Notes\n"
        f"ada@{domain},Ada,fine\n"
        "not-an-email,Bob,<img src=x onerror=alert(1)>\n"
        f"grace@{domain},Grace,fine\n"
    ).encode()
    async with screenshot_on_failure(page, "error-rows"):
        await page.goto(f"{screen.ingest}/app/#token={screen.token(org)}")
        await expect(page.locator("#token-state")).to_have_text("Token set.")
        assert "token" not in page.url  # taken from the address, kept in sessionStorage only

        await upload(page, "with-errors.csv", content)
        await expect(field_of(page, 0)).to_have_value("email")
        await page.get_by_role("button", name="Import").click()

        await expect(page.locator("#summary-status")).to_have_text("error", timeout=FINISH_MS)
        await expect(page.locator("#summary-errors")).to_have_text("1")
        await expect(page.locator("#summary-created")).to_have_text("2")
        await expect(page.locator("#errors-section")).to_be_visible()
        rows = page.locator("#errors-table tbody tr")
        await expect(rows).to_have_count(1)
        cells = rows.first.locator("td")
        [refused] = (await screen.api(org, "/v1/imports"))["items"]
        [api_row] = (await screen.api(org, f"/v1/imports/{refused['import_id']}/rows?outcome=error"))["items"]
        await expect(cells.nth(0)).to_have_text(str(api_row["row_number"]))
        await expect(cells.nth(1)).to_have_text("INVALID_EMAIL")
        await expect(cells.nth(2)).to_have_text(api_row["error_message"])
        await expect(cells.nth(3).locator("li")).to_have_text(["not-an-email", "Bob", "<img src=x onerror=alert(1)>"])
        assert await page.locator("#errors-table img").count() == 0


async def test_a_file_refused_as_a_whole_shows_why(screen: Screen, page: Page) -> None:
    org = organizer()
    async with screenshot_on_failure(page, "refused-file"):
        await page.goto(f"{screen.ingest}/app/#token={screen.token(org)}")
        await upload(page, "header-only.csv", b"email,first_name\n")

        await expect(page.locator("#summary-status")).to_have_text("error")
        [refused] = (await screen.api(org, "/v1/imports"))["items"]
        assert refused["error"]
        await expect(page.locator("#summary-error")).to_have_text(refused["error"])
        await expect(page.locator("#mapping-section")).to_be_hidden()


async def test_a_hubspot_export_is_recognized_and_mapped(screen: Screen, page: Page) -> None:
    org = organizer()
    content = (
        "Record ID,First Name,Last Name,Email,Company size,Marketing contact status\n"
        f"101,Ada,Lovelace,ada@{org}.example,10,Marketing contact\n"
    ).encode()
    async with screenshot_on_failure(page, "hubspot"):
        await page.goto(f"{screen.ingest}/app/#token={screen.token(org)}")
        await upload(page, "hubspot-crm-exports-all-contacts-2026-11-23.csv", content)

        await expect(page.locator("#fact-hubspot")).to_contain_text("yes")
        for column, field in enumerate(
            ["external_id", "first_name", "last_name", "email", "", "marketing_contact_status"]
        ):
            await expect(field_of(page, column)).to_have_value(field)
        await expect(page.locator("#reason-3")).to_have_text("HubSpot column, 99% sure")


async def test_the_page_never_takes_a_token_from_the_query_string(screen: Screen, page: Page) -> None:
    """A token in the query string has already gone to the server and into logs and history: the page does not
    use it, and takes it out of the address bar."""
    org = organizer()
    async with screenshot_on_failure(page, "token-in-query"):
        await page.goto(f"{screen.ingest}/app/?token={screen.token(org)}")

        await expect(page.locator("#token-state")).to_have_text("No token yet.")
        assert "token" not in page.url
        assert await page.evaluate("sessionStorage.length") == 0
