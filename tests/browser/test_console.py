"""Acceptance: the console in a real browser, against the Constant Contact sandbox on loopback."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import CLIENT_ID, CLIENT_SECRET, Console, screenshot, sign_in

# a real browser end to end (about 40 s): in `make test` and CI, not the quick loop; the console's
# HTTP-level tests (tests/integration/test_console_*.py) stay in it
pytestmark = pytest.mark.slow

SOURCE = "Constant Contact"


def test_sign_in_and_find_a_customer(page: Page, console: Console) -> None:
    page.goto("/sources")
    expect(page).to_have_url(f"{console.url}/login?next=%2Fsources")
    screenshot(page, "login")
    sign_in(page)
    expect(page.get_by_role("heading", name="Nodes")).to_be_visible()
    page.get_by_role("link", name="main").click()
    page.get_by_label("Search by email or name").fill("love")
    page.get_by_label("Search by email or name").press("Enter")
    expect(page.locator("tbody tr")).to_have_count(1)
    screenshot(page, "customers")
    page.get_by_role("link", name="ada@example.com").click()
    expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()
    expect(page.locator(".timeline .origin-import")).to_be_visible()
    screenshot(page, "customer")


def _provider_options(page: Page, console: Console) -> None:
    page.get_by_label("Name", exact=True).fill(SOURCE)
    page.get_by_label("Description").fill("Our Constant Contact account")
    page.get_by_label("Client ID (API key)").fill(CLIENT_ID)
    page.get_by_label("Client secret").fill(CLIENT_SECRET)
    page.get_by_text("Advanced provider options").click()
    page.get_by_label("API URL").fill(f"{console.cc_url}/v3")
    page.get_by_label("Authorization URL").fill(f"{console.cc_url}/oauth2/default/v1/authorize")
    page.get_by_label("Token URL").fill(f"{console.cc_url}/oauth2/default/v1/token")
    page.get_by_label("Revoke URL").fill(f"{console.cc_url}/oauth2/default/v1/revoke")


def test_create_a_constant_contact_source_with_oauth_mapping_and_a_subscription(
    page: Page, console: Console
) -> None:
    sign_in(page)
    page.get_by_role("link", name="Sources").click()
    page.get_by_role("link", name="New source").click()
    expect(page.get_by_label("Provider", exact=True)).to_have_value("constantcontact")
    expect(page.get_by_label("Redirect URI")).to_have_value(f"{console.url}/oauth/callback")
    _provider_options(page, console)
    page.get_by_role("button", name="Sign in").click()  # to the sandbox's authorize page and back
    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.get_by_label("Client secret")).to_have_value("")  # never sent back to the browser
    expect(page.get_by_label("Client secret")).to_have_attribute(
        "placeholder", "stored — leave empty to keep"
    )

    page.get_by_role("button", name="Show additional fields").click()
    expect(page.get_by_text("holds 0 records")).to_be_visible()
    expect(page.get_by_label("Email", exact=True)).to_have_value("email_address")  # guessed, and the match
    expect(page.get_by_label("Match on Email")).to_be_checked()
    page.get_by_label("First name", exact=True).select_option("first_name")
    page.get_by_label("Last name", exact=True).select_option("last_name")
    page.get_by_label("Hub subscription system ID 1").fill("newsletter")
    page.get_by_label("Provider subscription system 1").select_option(label="Newsletter")
    page.get_by_label("Webform code 1").fill("CC-WF-1")
    page.get_by_role("button", name="Add another subscription").click()  # "+": a second row
    expect(page.get_by_label("Hub subscription system ID 2")).to_be_visible()
    page.get_by_label("Debug mode").check()
    screenshot(page, "source_new")
    page.get_by_role("button", name="Save", exact=True).last.click()
    expect(page.get_by_role("heading", name=f"Sync log: {SOURCE}")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Source created.")


def test_a_second_source_on_the_same_node_is_refused_with_the_reason(page: Page, console: Console) -> None:
    sign_in(page)
    page.goto("/sources/new")
    page.get_by_label("Provider", exact=True).select_option("memory")  # JS submits the provider switch
    expect(page.get_by_label("User DB")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Second source")
    page.get_by_label("User DB").fill("crm-copy")
    page.get_by_role("button", name="Show additional fields").click()
    expect(page.get_by_label("Match on Email")).to_be_checked()
    page.get_by_role("button", name="Save", exact=True).last.click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("E400")
    expect(alert).to_contain_text(f"node 'main' already has source '{SOURCE}': one source per node")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Second source")  # the form is kept
    screenshot(page, "source_refused")


def _source_id(console: Console) -> str:
    """The source the creation test made (the tests of this module run in order)."""
    with console.db.read() as conn:
        row = conn.exec_driver_sql("SELECT id FROM sources WHERE name = ?", (SOURCE,)).first()
    assert row is not None, "the source test runs first"
    return str(row[0])


def test_sync_now_counts_drill_down_and_csv(page: Page, console: Console) -> None:
    source_id = _source_id(console)
    console.cc.seed_contacts(
        [
            {
                "email_address": {"address": "margaret@example.com", "permission_to_send": "explicit"},
                "first_name": "Margaret",
                "last_name": "Hamilton",
                "list_memberships": [console.newsletter],
            },
            {
                "email_address": {"address": "katherine@example.com", "permission_to_send": "explicit"},
                "first_name": "Katherine",
                "last_name": "Johnson",
                "list_memberships": [console.newsletter],
            },
        ]
    )
    sign_in(page)
    page.goto(f"/sources/{source_id}/log")
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#run-counts")).to_have_attribute("data-status", "succeeded", timeout=45_000)
    screenshot(page, "run")
    page.get_by_role("link", name="Back to the sync log").click()
    provider = page.locator("#log-provider tbody tr").first
    hub = page.locator("#log-hub tbody tr").first
    expect(provider.get_by_role("link", name="3 created")).to_be_visible()  # Ada, Alan, Grace went to CC
    expect(hub.get_by_role("link", name="2 created")).to_be_visible()  # Margaret and Katherine came in
    screenshot(page, "sync_log")

    hub.get_by_role("link", name="2 created").click()
    rows = page.locator("#records tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#records")).to_contain_text("margaret@example.com")
    expect(page.locator("#records")).to_contain_text("Contacts")
    screenshot(page, "run_records")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download as CSV").click()
    download: Any = info.value
    text = Path(download.path()).read_text(encoding="utf-8")
    got = list(csv.reader(io.StringIO(text)))
    assert got[0][:4] == ["side", "action", "record_name", "source_module"]
    assert sorted(r[2] for r in got[1:]) == ["katherine@example.com", "margaret@example.com"]

    page.get_by_role("link", name="Katherine".lower() + "@example.com").click()
    expect(page.locator(".timeline .origin-sync")).to_be_visible()
    expect(page.locator(".timeline")).to_contain_text(SOURCE)


def test_switch_to_italian(page: Page, console: Console) -> None:
    sign_in(page)
    page.goto("/sources")
    page.get_by_label("Language").select_option("it")  # JS submits the switcher
    expect(page.get_by_role("heading", name="Sorgenti")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "it")
    page.get_by_role("link", name="Clienti").click()  # the choice stays with the user
    expect(page.get_by_role("heading", name="Nodi")).to_be_visible()
    page.goto("/sources")
    log = page.get_by_role("link", name="Log di sincronizzazione")
    if log.count():  # a source exists when the other tests ran first: its log, in Italian
        log.first.click()
        expect(page.get_by_role("button", name="Sincronizza ora")).to_be_visible()
        screenshot(page, "sync_log_it")
    page.get_by_label("Lingua").select_option("en")
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_exchange_job_schedule_pause_resume_run_now_and_failed_report(page: Page, console: Console) -> None:
    inbox = console.exchange_root / "crm"
    inbox.mkdir()
    (inbox / "contacts_20260101.csv").write_text(
        "email,first\nmary@example.com,Mary\nnot-an-email,Bad\n", encoding="utf-8"
    )
    sign_in(page)
    page.get_by_role("link", name="Data Exchange").click()
    page.get_by_role("link", name="New exchange job").click()
    page.get_by_label("Name", exact=True).fill("daily-contacts")
    page.get_by_label("Module", exact=True).select_option("importer")
    page.get_by_label("URL (sftp://, file:// or a database URL)").fill(f"file://{inbox}")
    page.get_by_label("File name or pattern").fill("contacts_*.csv")
    page.get_by_label("Mapping: one `column = hub property` per line").fill(
        "email = base.contacts.email\nfirst = base.firstName"
    )
    page.get_by_role("button", name="Create job").click()
    expect(page.get_by_role("heading", name="daily-contacts")).to_be_visible()

    page.get_by_label("Times of day (HH:MM, comma-separated)").fill("06:00, 18:30")
    for day in ("mon", "tue", "wed", "thu", "fri"):
        page.get_by_label(day, exact=True).check()
    page.get_by_label("Time zone", exact=True).fill("Europe/Rome")
    page.get_by_label("Start date").fill("2026-01-01")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.get_by_role("status")).to_have_text("Schedule saved.")
    expect(page.locator("#schedule-state")).to_contain_text("Next runs:")

    page.get_by_role("button", name="Pause", exact=True).click()
    expect(page.locator("#schedule-state")).to_contain_text("Paused")
    page.get_by_role("button", name="Activate recurrence", exact=True).click()
    expect(page.locator("#schedule-state")).to_contain_text("Next runs:")

    page.get_by_role("button", name="Run now", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Run started.")
    for _ in range(50):  # the run goes on in the background: reload until it is in the history
        if page.locator("#runs .status-succeeded").count():
            break
        page.wait_for_timeout(200)
        page.reload()
    row = page.locator("#runs tbody tr").first
    expect(row.locator(".status-succeeded")).to_be_visible()
    expect(row.locator("td.num").nth(1)).to_have_text("1")  # inserted
    expect(row.locator("td.num").nth(5)).to_have_text("1")  # failed
    screenshot(page, "exchange_job")
    with page.expect_download() as info:
        row.get_by_role("link", name="Failed operations report", exact=False).click()
    download: Any = info.value
    report = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert [(r["row"], r["error_code"], r["email"]) for r in report] == [("2", "E201", "not-an-email")]

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Data Exchange").click()
    expect(page.locator("#jobs")).to_contain_text("daily-contacts")
    expect(page.get_by_role("button", name="Pause daily-contacts")).to_be_visible()
    screenshot(page, "exchange")


# what every form control must have: a <label for>, a wrapping <label>, or an aria-label
_UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden' && el.type !== 'submit' && el.type !== 'button')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML.slice(0, 120))"""


def test_every_form_field_has_a_label_and_actions_are_reachable_by_keyboard(
    page: Page, console: Console
) -> None:
    page.goto("/login")
    assert page.evaluate(_UNLABELLED) == []
    sign_in(page)
    for path in (
        "/",
        "/nodes",
        "/sources",
        "/sources/new",
        "/exchange",
        "/exchange/new",
        "/webhooks",
        "/tokens",
    ):
        response = page.goto(path)
        assert response is not None and response.ok, path
        assert page.evaluate(_UNLABELLED) == [], path
    for form in ("/sources/new", "/exchange/new", "/tokens"):  # the check above saw real forms
        page.goto(form)
        assert page.locator("input:visible, select:visible, textarea:visible").count() >= 2, form
    # keyboard only: Tab from the top of the page reaches the "New source" action, Enter follows it
    page.goto("/sources")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.textContent.trim()") == "New source":
            break
    else:
        raise AssertionError("the New source link cannot be reached with the Tab key")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="New source")).to_be_visible()
