"""Browser tests: the console in Debian's headless Chromium, driven by Playwright.

One browser for the session; one console (SQLite, uvicorn on loopback) and one Constant
Contact sandbox (a real HTTP server on loopback) for the session, so the suite stays short.
Each test saves a screenshot of its main screen into docs/screenshots/.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from contactsync.api import create_app
from contactsync.hub import workspaces
from contactsync.hub.bulk import UpsertMode, upsert_customers
from contactsync.hub.context import WriteContext
from contactsync.sandbox.constantcontact import ConstantContactSandbox, ServedSandbox
from contactsync.settings import Settings
from contactsync.store.db import Database
from contactsync.web import auth
from tests.conftest import _missing, free_port

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "screenshots"
PASSWORD = "correct horse battery staple"
CLIENT_ID = "console-test-app"
CLIENT_SECRET = "console-test-secret"
HUB_PEOPLE = [("Ada", "Lovelace"), ("Alan", "Turing"), ("Grace", "Hopper")]


@dataclass
class Console:
    url: str
    db: Database
    workspace_id: str
    node_id: str
    cc: ConstantContactSandbox
    cc_url: str
    newsletter: str  # the CC list id
    exchange_root: Path  # file:// exchange endpoints live under it


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        _missing("Chromium (scripts/services.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    db = Database(f"sqlite:///{folder / 'hub.db'}")
    db.migrate()
    ws = workspaces.create_workspace(db, "acme")
    node = workspaces.create_node(db, ws.id, "main")
    workspaces.create_node(db, ws.id, "shop")
    people = [
        {
            "externalId": f"crm-{i}",
            "base": {
                "firstName": first,
                "lastName": last,
                "contacts": {"email": f"{first.lower()}@example.com"},
                "subscriptions": [{"id": "newsletter", "subscribed": True}],
            },
        }
        for i, (first, last) in enumerate(HUB_PEOPLE)
    ]
    upsert_customers(
        db, ws.id, node.id, people, ctx=WriteContext(origin="import:crm-file"), mode=UpsertMode.REPLACE
    )
    auth.create_user(db, ws.id, "admin", PASSWORD, "admin", "en")
    exchange_root = folder / "exchange"
    exchange_root.mkdir()
    settings = Settings(secret_key_file=str(folder / "secret.key"), exchange_local_root=str(exchange_root))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cc = ConstantContactSandbox(seed=7)
    cc.register_app(CLIENT_ID, CLIENT_SECRET, [f"{url}/oauth/callback"])
    newsletter = cc.create_list("Newsletter")
    cc.create_list("Offers")
    served: ServedSandbox = cc.serve()
    server = uvicorn.Server(
        uvicorn.Config(create_app(db, settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the console did not start")
        time.sleep(0.02)
    yield Console(url, db, ws.id, node.id, cc, served.url, newsletter, exchange_root)
    server.should_exit = True
    thread.join(timeout=10)
    served.close()
    db.dispose()


@pytest.fixture
def page(browser: object, console: Console) -> Iterator[object]:
    context = browser.new_context(  # type: ignore[attr-defined]
        base_url=console.url, locale="en-US", viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def sign_in(page: object, name: str = "admin") -> None:
    page.goto("/login")  # type: ignore[attr-defined]
    page.get_by_label("User name").fill(name)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(PASSWORD)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    page.wait_for_url("**/nodes")  # type: ignore[attr-defined]


def screenshot(page: object, name: str) -> None:
    """Take a screenshot of the page (endpoint URLs, which hold this machine's temporary paths,
    are masked): into docs/screenshots/NAME.png under ``make screenshots``
    (CONTACTSYNC_UPDATE_SCREENSHOTS=1), else into a temporary folder, so that a test run does
    not change the documentation's pictures."""
    folder = SCREENSHOTS if os.environ.get("CONTACTSYNC_UPDATE_SCREENSHOTS") else _scratch()
    folder.mkdir(parents=True, exist_ok=True)
    masked = [page.locator(".endpoint")]  # type: ignore[attr-defined]
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True, mask=masked)  # type: ignore[attr-defined]


def _scratch() -> Path:
    return Path(tempfile.gettempdir()) / "contactsync-screenshots"
