"""MailUp-compatible frontend endpoints, so existing web forms and CMS plugins work unchanged.

``/frontend/xmlSubscribe.aspx``, ``/frontend/xmlUnSubscribe.aspx`` and
``/frontend/xmlChkSubscriber.aspx`` take MailUp's parameters by GET or POST (form), with
case-insensitive page and parameter names as on MailUp's servers, and answer MailUp's
return codes as plain text (always HTTP 200). They need no token: the caller's address must
be on the workspace's frontend allow-list, else the answer is ``-1011``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from contactsync.errors import ContactsyncError, ForbiddenError
from contactsync.hub import frontend
from contactsync.hub.consent import Status
from contactsync.settings import Settings
from contactsync.store.db import Database

log = logging.getLogger("contactsync.frontend")
router = APIRouter(prefix="/frontend", include_in_schema=False)

IP_NOT_REGISTERED = -1011
SUBSCRIBE_TEXT = {
    0: "Operation completed successfully",
    1: "Generic error",
    2: "Invalid email address or mobile number",
    3: "User already subscribed",
    IP_NOT_REGISTERED: "IP not registered",
}
CHECK_CODES = {Status.SUBSCRIBED: 2, Status.UNSUBSCRIBED: 3, Status.CLEANED: 3, Status.PENDING: 4}

Params = Mapping[str, str]
Page = Callable[[Database, Settings, Params, frontend.Caller], int]


def _subscribe(db: Database, settings: Settings, params: Params, caller: frontend.Caller) -> int:
    try:
        outcomes = frontend.subscribe(db, settings, params, caller)
    except ContactsyncError as e:
        return _code(e, {"E201": 2, "E206": 2})  # an invalid or missing address
    return 3 if all(o.already_subscribed for o in outcomes) else 0


def _unsubscribe(db: Database, settings: Settings, params: Params, caller: frontend.Caller) -> int:
    try:
        outcome = frontend.unsubscribe(db, params, caller)
    except ContactsyncError as e:
        return _code(e, {"E705": 3})
    return 0 if outcome.changed else 3


def _check(db: Database, settings: Settings, params: Params, caller: frontend.Caller) -> int:
    try:
        found = frontend.check(db, params, caller)
    except ContactsyncError as e:
        return _code(e, {})
    return CHECK_CODES.get(found, 1) if found is not None else 1


def _code(error: ContactsyncError, codes: Mapping[str, int]) -> int:
    if isinstance(error, ForbiddenError):
        return IP_NOT_REGISTERED
    log.info("frontend call refused: %s", error, extra={"action": "frontend.refused", "code": error.code})
    return codes.get(error.code, 1)


PAGES: dict[str, Page] = {
    "xmlsubscribe.aspx": _subscribe,
    "xmlunsubscribe.aspx": _unsubscribe,
    "xmlchksubscriber.aspx": _check,
}


async def _params(request: Request) -> dict[str, str]:
    """Query and form parameters, names lower-cased (the form wins over the query)."""
    params = {k.lower(): v for k, v in request.query_params.items()}
    if request.method == "POST":
        form = await request.form()
        params.update({k.lower(): v for k, v in form.items() if isinstance(v, str)})
    return params


@router.api_route("/{page}", methods=["GET", "POST"])
async def frontend_page(page: str, request: Request) -> PlainTextResponse:
    handler = PAGES.get(page.lower())
    if handler is None:
        return PlainTextResponse("Not found", status_code=404)
    params = await _params(request)
    caller = frontend.Caller(
        request.client.host if request.client else None, request.headers.get("user-agent")
    )
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    try:
        code = await run_in_threadpool(handler, db, settings, params, caller)
    except Exception:
        log.exception("frontend call failed", extra={"action": "frontend.error"})
        code = 1
    if handler is _subscribe and params.get("retcode", "0").strip() != "1":
        return PlainTextResponse(SUBSCRIBE_TEXT[code])
    return PlainTextResponse(str(code))
