"""Pages: Jinja2 templates rendered in the request's language, with the console's headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from contactsync.web import i18n, messages
from contactsync.web.auth import Session

TEMPLATES = Path(__file__).parent / "templates"
LANG_COOKIE = "contactsync_lang"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

# no inline script or style: the console works without JS, and its one script is a file
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def session_of(request: Request) -> Session | None:
    session: Session | None = getattr(request.state, "session", None)
    return session


def language(request: Request) -> str:
    session = session_of(request)
    return i18n.choose(
        session.user.language if session else None,
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
    )


def gettext(request: Request) -> i18n.Gettext:
    return i18n.gettext_for(language(request))


def with_query(path: str, **params: Any) -> str:
    query = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(query)}" if query else path


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    session = session_of(request)
    lang = language(request)
    _ = i18n.gettext_for(lang)
    html = _env.get_template(template).render(
        request=request,
        _=_,
        lang=lang,
        languages=i18n.LANGUAGES,
        session=session,
        user=session.user if session else None,
        csrf=session.csrf_token if session else "",
        path=request.url.path,
        with_query=with_query,
        notice=messages.notice(_, request.query_params.get("notice")),
        option_label=lambda name: messages.option_label(_, name),
        word=lambda value: messages.word(_, value),
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def redirect(url: str, **params: Any) -> RedirectResponse:
    """After a POST: see-other to ``url`` (``notice=`` names a message to show there)."""
    return RedirectResponse(with_query(url, **params), status_code=303, headers=HEADERS)
