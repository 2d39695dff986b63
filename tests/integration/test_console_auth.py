"""The console's sign-in, sessions, roles and CSRF protection, over HTTP against the live server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from contactsync.cli import app as cli_app
from contactsync.cli import users as _user_commands  # noqa: F401 - registers the commands
from contactsync.connectors import memory
from contactsync.secrets import SecretBox
from contactsync.settings import Settings, get_settings
from contactsync.store.console_tables import console_sessions, console_users
from contactsync.store.db import Database
from contactsync.sync import sources
from contactsync.sync.sources import SyncEnv
from contactsync.web import auth
from tests.conftest import Hub

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_user(hub: Hub, name: str = "ada", role: str = "admin", language: str | None = None) -> auth.User:
    return auth.create_user(hub.db, hub.workspace_id, name, PASSWORD, role, language)


def login_response(client: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    page = client.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert token, page.text
    return client.post(
        "/login", data={"name": name, "password": password, "login_csrf": token[1], "next": "/"}
    )


@contextmanager
def signed_in(base: str, name: str, **headers: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
        done = login_response(client, name)
        assert done.status_code == 303, done.text
        yield client


def csrf_of(client: httpx.Client, path: str = "/nodes") -> str:
    found = _CSRF.search(client.get(path).text)
    assert found
    return found[1]


@pytest.fixture
def admin(live_server: str, hub: Hub) -> Iterator[httpx.Client]:
    make_user(hub)
    with signed_in(live_server, "ada") as client:
        yield client


def memory_source(hub: Hub, name: str = "crm") -> sources.Source:
    udb = memory.user_db(f"console-{hub.workspace_id}-{name}")
    env = SyncEnv(hub.db, SecretBox.from_settings(Settings()))  # the live server's key
    spec = {
        "name": name,
        "node": hub.node_id,
        "provider": "memory",
        "config": {"user_db": udb.name},
        "sync": {
            "field_map": [{"hub": "base.contacts.email", "provider": "email"}],
            "match_keys": ["base.contacts.email"],
        },
    }
    return sources.create_source(env, hub.workspace_id, spec)


def test_sign_in_session_cookie_and_sign_out(live_server: str, hub: Hub) -> None:
    make_user(hub)
    with httpx.Client(base_url=live_server, timeout=30) as client:
        first = client.get("/sources")
        assert first.status_code == 303 and first.headers["location"] == "/login?next=%2Fsources"

        wrong = login_response(client, "ada", "not the password")
        assert wrong.status_code == 401 and "E800" in wrong.text
        unknown = login_response(client, "nobody", PASSWORD)
        assert unknown.status_code == 401 and "E800" in unknown.text  # the same answer: names stay private

        done = login_response(client, "ada")
        assert done.status_code == 303
        cookie = done.headers["set-cookie"]
        assert "contactsync_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        token = client.cookies["contactsync_session"]
        with hub.db.read() as conn:
            stored = conn.execute(sa.select(console_sessions.c.id)).scalars().all()
        assert len(stored) == 1 and token not in stored[0]  # the table holds a hash, never the cookie

        page = client.get("/nodes")
        assert page.status_code == 200 and "main" in page.text and "ada" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]

        out = client.post("/logout", data={"csrf_token": csrf_of(client)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
    with httpx.Client(base_url=live_server, timeout=30, cookies={"contactsync_session": token}) as replay:
        assert replay.get("/nodes").status_code == 303  # the signed-out session is gone server-side


def test_an_expired_session_asks_to_sign_in_again(live_server: str, hub: Hub) -> None:
    make_user(hub)
    with signed_in(live_server, "ada") as client:
        with hub.db.write() as conn:
            conn.execute(console_sessions.update().values(expires_at=1))
        again = client.get("/customers/x")
        assert again.status_code == 303 and again.headers["location"].startswith("/login?next=")


def test_five_failures_lock_the_user_until_an_admin_resets_the_password(live_server: str, hub: Hub) -> None:
    make_user(hub)
    with httpx.Client(base_url=live_server, timeout=30) as client:
        codes = [login_response(client, "ada", f"wrong-{i}").status_code for i in range(auth.LOCK_AFTER)]
        assert codes == [401] * (auth.LOCK_AFTER - 1) + [429]
        locked = login_response(client, "ada")  # even the right password, while locked
        assert locked.status_code == 429 and "E802" in locked.text
        auth.set_password(hub.db, "ada", PASSWORD + "!")
        assert login_response(client, "ada", PASSWORD + "!").status_code == 303


def test_passwords_are_stored_as_scrypt_hashes(hub: Hub) -> None:
    make_user(hub)
    with hub.db.read() as conn:
        stored = conn.execute(sa.select(console_users.c.password_hash)).scalar_one()
    assert stored.startswith("scrypt$32768$8$3$") and PASSWORD not in stored
    assert auth.verify_password(PASSWORD, stored) and not auth.verify_password(PASSWORD + "x", stored)
    with pytest.raises(auth.InputError) as short:
        auth.create_user(hub.db, hub.workspace_id, "bob", "short", "viewer")
    assert short.value.code == "E806"


def test_forms_without_the_session_csrf_token_are_refused(
    live_server: str, hub: Hub, admin: httpx.Client
) -> None:
    make_user(hub, "bob")
    missing = admin.post("/tokens", data={"name": "x", "role": "user"})
    assert missing.status_code == 403 and "E803" in missing.text
    with signed_in(live_server, "bob") as other:
        foreign = admin.post("/tokens", data={"name": "x", "role": "user", "csrf_token": csrf_of(other)})
    assert foreign.status_code == 403 and "E803" in foreign.text
    ok = admin.post("/tokens", data={"name": "x", "role": "user", "csrf_token": csrf_of(admin)})
    assert ok.status_code == 201

    with httpx.Client(base_url=live_server, timeout=30) as stranger:  # no login form fetched first
        forged = stranger.post("/login", data={"name": "ada", "password": PASSWORD, "login_csrf": "x"})
    assert forged.status_code == 403 and "E803" in forged.text


def test_roles_admin_editor_viewer(live_server: str, hub: Hub) -> None:
    source = memory_source(hub)
    make_user(hub, "vera", "viewer")
    make_user(hub, "ed", "editor")
    with signed_in(live_server, "vera") as viewer:
        listing = viewer.get("/sources")
        assert listing.status_code == 200 and "crm" in listing.text and "/settings" not in listing.text
        assert viewer.get(f"/sources/{source.id}/log").status_code == 200
        for path in ("/sources/new", f"/sources/{source.id}/settings", "/tokens"):
            refused = viewer.get(path)
            assert refused.status_code == 403 and "E804" in refused.text, path
        run = viewer.post(f"/sources/{source.id}/runs", data={"csrf_token": csrf_of(viewer)})
        assert run.status_code == 403 and "E804" in run.text
    with signed_in(live_server, "ed") as editor:
        assert editor.get(f"/sources/{source.id}/settings").status_code == 403
        started = editor.post(f"/sources/{source.id}/runs", data={"csrf_token": csrf_of(editor)})
        assert started.status_code == 303 and f"/sources/{source.id}/runs/" in started.headers["location"]


@pytest.fixture
def cli_env(hub: Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("CONTACTSYNC_DATABASE_URL", hub.db.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_user_commands(hub: Hub, cli_env: None) -> None:
    runner = CliRunner()
    created = runner.invoke(
        cli_app, ["user", "create", "ada", "--role", "admin", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert created.exit_code == 0, created.output
    prompted = runner.invoke(cli_app, ["user", "create", "vera"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.exit_code == 0, prompted.output
    twice = runner.invoke(cli_app, ["user", "create", "ada", "--password-stdin"], input=PASSWORD + "\n")
    assert twice.exit_code == 1 and "E805" in twice.output

    listed = runner.invoke(cli_app, ["user", "list", "--json"])
    assert [(u["name"], u["role"]) for u in orjson.loads(listed.stdout)] == [
        ("ada", "admin"),
        ("vera", "viewer"),
    ]
    last = runner.invoke(cli_app, ["user", "delete", "ada"])
    assert last.exit_code == 1 and "E807" in last.output
    assert runner.invoke(cli_app, ["user", "role", "vera", "admin"]).exit_code == 0
    assert runner.invoke(cli_app, ["user", "delete", "ada"]).exit_code == 0

    changed = runner.invoke(
        cli_app, ["user", "passwd", "vera", "--password-stdin"], input="new " + PASSWORD + "\n"
    )
    assert changed.exit_code == 0, changed.output
    assert auth.login(hub.db, "vera", "new " + PASSWORD)[1].user.role == auth.Role.ADMIN


@pytest.mark.slow  # CLI subprocesses end to end: in `make test`, not the quick loop
def test_demo_prints_a_console_admin_once(tmp_path: Path) -> None:
    from tests.integration.test_bulk_and_cli import run_cli

    db_url = f"sqlite:///{tmp_path}/demo.db"
    first = run_cli(db_url, "demo", "--json")
    assert first.returncode == 0, first.stderr
    console = orjson.loads(first.stdout)["console"]
    assert console["user"] == "admin" and len(console["password"]) >= auth.MIN_PASSWORD
    again = orjson.loads(run_cli(db_url, "demo", "--json").stdout)["console"]
    assert again["password"] is None  # the admin exists: no new password, none reprinted
    db = Database(db_url)
    try:
        assert auth.login(db, "admin", console["password"])[1].user.is_admin
    finally:
        db.dispose()
