"""MailUp-compatible frontend endpoints: every documented return code, GET and POST, the allow-list.

MailUp's codes (providers.md §3.7): xmlSubscribe 0 success, 1 generic error, 2 invalid
address, 3 already subscribed; xmlUnSubscribe 0 unsubscribed, 1 error, 3 unknown or already
unsubscribed; xmlChkSubscriber 1 error / not subscribed, 2 opt-in, 3 opt-out, 4 pending;
all three -1011 for an address not on the allow-list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from contactsync.cli import app as cli_app
from contactsync.cli import frontend as _frontend_commands  # noqa: F401 - registers the commands
from contactsync.errors import NotFoundError
from contactsync.hub import frontend, subscribe, workspaces
from contactsync.hub.context import WriteContext
from contactsync.settings import Settings
from contactsync.store import subscriptions as sub_store
from tests.conftest import Hub
from tests.fixtures.smtp import Mailbox
from tests.integration.test_double_optin import link_in, serving

GUID = "6f1c1f5e-0a4b-4c1e-9d7e-1a2b3c4d5e6f"


@pytest.fixture(autouse=True)
def _secret_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACTSYNC_SECRET_KEY_FILE", str(tmp_path / "secret.key"))


@pytest.fixture
def forms(hub: Hub) -> Hub:
    """List 3 → newsletter, list 4 → offers (with a GUID); loopback allowed."""
    frontend.map_list(hub.db, hub.workspace_id, 3, hub.node_id, "newsletter")
    frontend.map_list(hub.db, hub.workspace_id, "4", "main", "offers", list_guid=GUID.upper())
    frontend.allow(hub.db, hub.workspace_id, "127.0.0.1", "tests")
    return hub


def call(base: str, page: str, method: str = "GET", **params: Any) -> str:
    url = f"{base}/frontend/{page}"
    r = httpx.post(url, data=params) if method == "POST" else httpx.get(url, params=params)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def sub(base: str, **params: Any) -> str:
    return call(base, "xmlSubscribe.aspx", retCode=1, **params)


def status(hub: Hub, email: str) -> dict[str, Any]:
    found = subscribe.status(hub.db, hub.workspace_id, hub.node_id, email)
    return {s["id"]: s["status"] for s in found["subscriptions"]}


def test_subscribe_codes(live_server: str, forms: Hub) -> None:
    assert sub(live_server, Email="ada@example.com", List=3, Confirm=0) == "0"
    assert status(forms, "ada@example.com") == {"newsletter": "subscribed"}
    assert sub(live_server, Email="ada@example.com", List=3, Confirm=0) == "3"  # already subscribed
    assert sub(live_server, Email="not an address", List=3, Confirm=0) == "2"
    assert sub(live_server, Sms="3331234567", List=3, Confirm=0) == "2"  # no Email: SMS lists are not kept
    assert sub(live_server, Email="ada@example.com", List=99, Confirm=0) == "1"  # unknown list
    assert sub(live_server, Email="ada@example.com", Confirm=0) == "1"  # no List
    mismatch = {"csvFldNames": "campo1;campo2", "csvFldValues": "Ada"}
    assert sub(live_server, Email="bob@example.com", List=3, Confirm=0, **mismatch) == "1"
    # one list new, one already subscribed: success
    assert sub(live_server, Email="ada@example.com", List="3,4", Confirm=0) == "0"
    assert status(forms, "ada@example.com") == {"newsletter": "subscribed", "offers": "subscribed"}


def test_subscribe_without_retcode_answers_text(live_server: str, forms: Hub) -> None:
    assert call(live_server, "xmlSubscribe.aspx", Email="ada@example.com", List=3, Confirm=0) == (
        "Operation completed successfully"
    )
    assert call(live_server, "xmlSubscribe.aspx", Email="ada@example.com", List=3, Confirm="false") == (
        "User already subscribed"
    )


def test_post_form_with_profile_fields(live_server: str, forms: Hub) -> None:
    code = call(
        live_server,
        "xmlsubscribe.aspx",  # page names are case-insensitive, as on MailUp's servers
        "POST",
        email="Grace@Example.com",
        list="3",
        confirm="0",
        retcode="1",
        csvFldNames="campo1;campo2;campo4;campo99",
        csvFldValues="Grace;Hopper;Arlington;ignored",
    )
    assert code == "0"
    found = subscribe.status(forms.db, forms.workspace_id, forms.node_id, "grace@example.com")
    customer = httpx.get(
        f"{live_server}/hub/v1/workspaces/{forms.workspace_id}/customers/{found['customerId']}",
        headers=forms.headers,
    ).json()
    assert customer["base"]["firstName"] == "Grace"
    assert customer["base"]["lastName"] == "Hopper"
    assert customer["base"]["address"] == {"city": "Arlington"}
    with forms.db.read() as conn:
        (entry,) = sub_store.ledger(conn, found["customerId"])
    assert (entry.origin, entry.actor, entry.ip, entry.webform_code) == (
        "frontend",
        "frontend list 3",
        "127.0.0.1",
        "mailup-list:3",
    )


def test_double_opt_in_is_the_default(smtp_server: Mailbox, forms: Hub) -> None:
    with serving(forms.db) as (base, _):
        assert sub(base, Email="dee@example.com", List="3,4") == "0"
        assert status(forms, "dee@example.com") == {"newsletter": "pending", "offers": "pending"}
        assert call(base, "xmlChkSubscriber.aspx", Email="dee@example.com", List=3) == "4"
        (message,) = smtp_server.wait_for(1)  # one email for both lists of the node
        assert "newsletter, offers" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert httpx.get(link_in(message)).status_code == 200
        assert status(forms, "dee@example.com") == {"newsletter": "subscribed", "offers": "subscribed"}
        assert call(base, "xmlChkSubscriber.aspx", Email="dee@example.com", List=3) == "2"


def test_unsubscribe_codes(live_server: str, forms: Hub) -> None:
    sub(live_server, Email="ada@example.com", List="3,4", Confirm=0)
    assert call(live_server, "xmlUnSubscribe.aspx", Email="ada@example.com", List=3) == "0"
    assert status(forms, "ada@example.com")["newsletter"] == "unsubscribed"
    assert call(live_server, "xmlUnSubscribe.aspx", Email="ada@example.com", List=3) == "3"  # already
    assert call(live_server, "xmlUnSubscribe.aspx", Email="zed@example.com", List=3) == "3"  # unknown
    # list 4 has a GUID: it must come with the call, and match
    assert call(live_server, "xmlUnSubscribe.aspx", Email="ada@example.com", List=4) == "1"
    assert call(live_server, "xmlUnSubscribe.aspx", Email="ada@example.com", List=4, ListGuid="x") == "1"
    assert status(forms, "ada@example.com")["offers"] == "subscribed"
    assert (
        call(live_server, "Xmlunsubscribe.aspx", "POST", Email="ada@example.com", List=4, ListGuid=GUID)
        == "0"
    )
    assert status(forms, "ada@example.com")["offers"] == "unsubscribed"
    assert call(live_server, "xmlUnSubscribe.aspx", Email="ada@example.com") == "1"  # no List
    assert call(live_server, "xmlUnSubscribe.aspx", List=3) == "1"  # no Email


def test_unsubscribe_reason_and_consent(live_server: str, forms: Hub) -> None:
    sub(live_server, Email="ada@example.com", List=3, Confirm=0)
    call(live_server, "xmlUnSubscribe.aspx", Email="ada@example.com", List=3)
    found = subscribe.status(forms.db, forms.workspace_id, forms.node_id, "ada@example.com")
    assert found["subscriptions"][0]["reason"] == "FRONTEND_UNSUBSCRIBE"
    # a single opt-in form cannot undo an unsubscribe: pending until confirmed
    assert sub(live_server, Email="ada@example.com", List=3, Confirm=0) == "0"
    assert status(forms, "ada@example.com")["newsletter"] == "pending"


def test_check_codes(live_server: str, forms: Hub) -> None:
    settings = Settings(smtp_host="127.0.0.1")  # the email is queued; delivery is not this test's business
    pending = subscribe.SubscribeRequest(
        forms.node_id, "pat@example.com", ("newsletter",), double_opt_in=True
    )
    subscribe.subscribe(forms.db, settings, forms.workspace_id, pending, WriteContext())
    sub(live_server, Email="ada@example.com", List="3,4", Confirm=0)
    call(live_server, "xmlUnSubscribe.aspx", Email="ada@example.com", List=4, ListGuid=GUID)

    def chk(**params: Any) -> str:
        return call(live_server, "xmlChkSubscriber.aspx", **params)

    assert chk(Email="ada@example.com", List=3) == "2"  # OPT-IN
    assert chk(Email="ada@example.com", List=4, ListGuid=GUID.lower()) == "3"  # OPT-OUT
    assert chk(Email="pat@example.com", List=3) == "4"  # PENDING
    assert chk(Email="pat@example.com", List=4, ListGuid=GUID) == "1"  # no such subscription
    assert chk(Email="nobody@example.com", List=3) == "1"  # unknown address
    assert chk(Email="ada@example.com", List=4, ListGuid="wrong") == "1"  # ListGuid does not match List
    assert chk(Email="ada@example.com", List=77) == "1"  # unknown list


def test_an_address_not_allowed_gets_minus_1011(live_server: str, hub: Hub) -> None:
    frontend.map_list(hub.db, hub.workspace_id, 3, hub.node_id, "newsletter")
    pages = ("xmlSubscribe.aspx", "xmlUnSubscribe.aspx", "xmlChkSubscriber.aspx")
    for page in pages:  # nobody is allowed yet
        assert call(live_server, page, Email="ada@example.com", List=3, retCode=1) == "-1011"
    assert call(live_server, "xmlSubscribe.aspx", Email="ada@example.com", List=3) == "IP not registered"

    frontend.allow(hub.db, hub.workspace_id, "10.1.0.0/16")
    forwarded = {"X-Forwarded-For": "10.2.0.9"}  # the service sees the proxy's client address
    for page in pages:
        r = httpx.get(
            f"{live_server}/frontend/{page}",
            params={"Email": "ada@example.com", "List": 3, "retCode": 1, "Confirm": 0},
            headers=forwarded,
        )
        assert r.text == "-1011"
    # an unknown list from an address allowed nowhere: -1011 too (list ids are not revealed)
    assert call(live_server, "xmlSubscribe.aspx", Email="ada@example.com", List=12345, retCode=1) == "-1011"
    with pytest.raises(NotFoundError, match="E705"):
        subscribe.status(hub.db, hub.workspace_id, hub.node_id, "ada@example.com")  # nothing was written

    r = httpx.get(
        f"{live_server}/frontend/xmlSubscribe.aspx",
        params={"Email": "ada@example.com", "List": 3, "retCode": 1, "Confirm": 0},
        headers={"X-Forwarded-For": "10.1.200.3"},
    )
    assert r.text == "0"


def test_an_address_allowed_in_another_workspace_only(live_server: str, hub: Hub) -> None:
    frontend.map_list(hub.db, hub.workspace_id, 3, hub.node_id, "newsletter")
    other = workspaces.create_workspace(hub.db, "agency")
    frontend.allow(hub.db, other.id, "127.0.0.1")
    assert sub(live_server, Email="ada@example.com", List=3, Confirm=0) == "-1011"
    frontend.allow(hub.db, hub.workspace_id, "127.0.0.1")
    assert sub(live_server, Email="ada@example.com", List=3, Confirm=0) == "0"


def test_unknown_frontend_page_is_404(live_server: str) -> None:
    assert httpx.get(f"{live_server}/frontend/xmlUpdSubscriber.aspx").status_code == 404


def test_cli_configures_the_frontend(hub: Hub, cli_database: None, live_server: str) -> None:
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli_app, ["frontend", *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    run("list", "add", "7", "--node", "main", "--subscription", "newsletter", "--guid", GUID)
    run("allow", "127.0.0.0/8", "--note", "web server")
    assert "already allowed" in run("allow", "127.0.0.1/8")
    run("field", "campo12", "base.contacts.mobilePhone")
    bad = runner.invoke(cli_app, ["frontend", "field", "campo3", "base.jobs"])  # not a text property
    assert bad.exit_code == 2 and "E709" in bad.output
    conf = orjson.loads(run("show", "--json"))
    assert conf["lists"] == [
        {
            "list": 7,
            "nodeId": hub.node_id,
            "subscriptionId": "newsletter",
            "listGuid": GUID,
            "webformCode": None,
        }
    ]
    assert conf["allowedIps"][0]["network"] == "127.0.0.0/8"
    fields = {"csvFldNames": "campo12", "csvFldValues": "+39 333 1234567"}
    assert sub(live_server, Email="cli@example.com", List=7, Confirm=0, **fields) == "0"
    assert conf["fields"]["campo12"] == "base.contacts.mobilePhone"

    bad = runner.invoke(cli_app, ["frontend", "allow", "not-an-ip"])
    assert bad.exit_code == 2 and "E709" in bad.output
    bad = runner.invoke(cli_app, ["frontend", "list", "add", "8", "--node", "nope", "--subscription", "x"])
    assert bad.exit_code == 2 and "E120" in bad.output
    run("deny", "127.0.0.0/8")
    assert sub(live_server, Email="cli@example.com", List=7, Confirm=0) == "-1011"
    run("list", "remove", "7")
    assert orjson.loads(run("show", "--json"))["lists"] == []
