"""The console in English and Italian: catalogues complete, language by user or by browser."""

from __future__ import annotations

import re

import httpx

from contactsync.web import i18n
from tests.conftest import Hub
from tests.integration.test_console_auth import csrf_of, make_user, signed_in

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def test_every_console_string_has_an_italian_translation() -> None:
    assert i18n.missing("it") == {}, "translate these in web/locale/it/LC_MESSAGES/messages.po"
    catalog = i18n.read_catalog("it")
    for message in catalog:
        if message.id:
            assert message.string, message.id
            assert set(PLACEHOLDER.findall(str(message.id))) == set(
                PLACEHOLDER.findall(str(message.string))
            ), message.id


def test_accept_language_negotiation() -> None:
    assert i18n.negotiate("it-IT,it;q=0.9,en;q=0.8") == "it"
    assert i18n.negotiate("en-GB,en;q=0.9,it;q=0.8") == "en"
    assert i18n.negotiate("de-DE,de;q=0.9,it;q=0.5") == "it"
    assert i18n.negotiate("fr") == "en"
    assert i18n.negotiate(None) == "en"
    assert i18n.choose("en", "it", "it") == "en"  # the user's setting wins over cookie and browser


def test_login_page_follows_the_browser_and_the_switcher(live_server: str) -> None:
    with httpx.Client(base_url=live_server, timeout=30) as client:
        english = client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})
        assert '<html lang="en">' in english.text and ">Sign in<" in english.text
        italian = client.get("/login", headers={"Accept-Language": "it-IT,it;q=0.9"})
        assert (
            '<html lang="it">' in italian.text
            and ">Accedi<" in italian.text
            and "Nome utente" in italian.text
        )
        switched = client.get("/login?lang=it", headers={"Accept-Language": "en"})
        assert switched.status_code == 303
        assert '<html lang="it">' in client.get("/login", headers={"Accept-Language": "en"}).text


def test_a_users_language_setting_wins_over_the_browser(live_server: str, hub: Hub) -> None:
    make_user(hub, "ada", "admin", language="it")
    with signed_in(live_server, "ada", **{"Accept-Language": "en"}) as client:
        page = client.get("/nodes")
        assert '<html lang="it">' in page.text and ">Nodi<" in page.text and "Esci" in page.text
        changed = client.post(
            "/language", data={"csrf_token": csrf_of(client), "language": "en", "back": "/sources"}
        )
        assert changed.status_code == 303 and changed.headers["location"] == "/sources"
        page = client.get("/sources")
        assert '<html lang="en">' in page.text and ">Sources<" in page.text
        client.post(
            "/language", data={"csrf_token": csrf_of(client), "language": ""}
        )  # back to the browser's
        page = client.get("/sources", headers={"Accept-Language": "it"})
        assert ">Sorgenti<" in page.text
        outside = client.post(
            "/language",
            data={"csrf_token": csrf_of(client), "language": "it", "back": "https://evil.example/"},
        )
        assert outside.headers["location"] == "/"  # never a redirect off the site
