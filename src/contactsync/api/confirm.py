"""The double opt-in confirmation page (``GET /confirm/{token}``): plain HTML, English or Italian.

Opening the link from the email confirms the subscription once; opening it again says it
is already confirmed. A link that is altered, expired or withdrawn gets a page that says
so and what to do, with the error code, and changes nothing.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from contactsync.errors import ContactsyncError
from contactsync.hub import optin
from contactsync.store.db import Database

router = APIRouter(include_in_schema=False)

_TEXT = {
    "en": {
        "confirmed_title": "Subscription confirmed",
        "confirmed": "Thank you: {email} is now subscribed to {lists}.",
        "already_title": "Already confirmed",
        "already": "This subscription of {email} was already confirmed; nothing else to do.",
        "refused_title": "This link cannot be used",
        "E700": "This confirmation link is not valid: it may have been cut or altered.",
        "E701": "This confirmation link has expired.",
        "E702": "This subscription request was withdrawn.",
        "next": "To subscribe, fill in the subscription form again: you will get a new email.",
        "code": "Error code",
    },
    "it": {
        "confirmed_title": "Iscrizione confermata",
        "confirmed": "Grazie: {email} ora è iscritto a {lists}.",
        "already_title": "Iscrizione già confermata",
        "already": "L'iscrizione di {email} era già confermata; non serve altro.",
        "refused_title": "Questo link non può essere usato",
        "E700": "Questo link di conferma non è valido: potrebbe essere stato troncato o modificato.",
        "E701": "Questo link di conferma è scaduto.",
        "E702": "Questa richiesta di iscrizione è stata ritirata.",
        "next": "Per iscriverti, compila di nuovo il modulo di iscrizione: riceverai una nuova email.",
        "code": "Codice di errore",
    },
}
_STATUS = {"E700": 404, "E701": 410, "E702": 410}


def _page(language: str, title: str, lines: list[str], status: int) -> HTMLResponse:
    body = "".join(f"<p>{escape(line)}</p>" for line in lines)
    html = (
        f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head>"
        f'<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em">'
        f"<h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _language(request: Request, given: object = None) -> str:
    if isinstance(given, str) and given in _TEXT:
        return given
    accept = request.headers.get("accept-language", "").strip().lower()
    return "it" if accept.startswith("it") else "en"


@router.get("/confirm/{token}", response_class=HTMLResponse)
async def confirm_page(token: str, request: Request) -> HTMLResponse:
    db: Database = request.app.state.db
    ip = request.client.host if request.client else None
    try:
        done = await run_in_threadpool(
            optin.confirm, db, token, ip=ip, user_agent=request.headers.get("user-agent")
        )
    except ContactsyncError as e:
        lang = _language(request, (e.data or {}).get("language"))
        words = _TEXT[lang]
        return _page(
            lang,
            words["refused_title"],
            [words.get(e.code, words["E700"]), words["next"], f"{words['code']}: {e.code}"],
            _STATUS.get(e.code, 400),
        )
    lang = _language(request, done.language)
    words = _TEXT[lang]
    values = {"email": done.email, "lists": ", ".join(done.subscription_ids)}
    if done.already:
        return _page(lang, words["already_title"], [words["already"].format(**values)], 200)
    return _page(lang, words["confirmed_title"], [words["confirmed"].format(**values)], 200)
