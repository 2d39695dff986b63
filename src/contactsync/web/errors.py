"""Domain errors → console pages: the code, the message, and what to do next.

A missing or expired session (E801) sends the browser to the sign-in page and back.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from contactsync.api.errors import status_of
from contactsync.errors import CATALOGUE, AuthError, ContactsyncError, ForbiddenError
from contactsync.web.render import redirect, render

log = logging.getLogger("contactsync.web")


def error_page(request: Request, error: ContactsyncError, status: int | None = None) -> Response:
    return render(
        request,
        "error.html",
        status=status or status_of(error),
        error=error,
        info=CATALOGUE.get(error.code),
    )


def _domain(request: Request, error: Exception) -> Response:
    assert isinstance(error, ContactsyncError)
    if isinstance(error, AuthError) and not isinstance(error, ForbiddenError) and error.code == "E801":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET" or request.url.path.endswith("/progress"):
            target = "/"
        return redirect("/login", next=target)
    return error_page(request, error)


def _validation(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0] if error.errors() else {}
    where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path"))
    message = f"{where}: {first.get('msg', 'invalid')}" if where else "the request is invalid"
    return error_page(request, ContactsyncError(message, code="E200"), status=400)


def _http(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 404:
        return error_page(request, ContactsyncError(f"no page at {request.url.path}", code="E120"), 404)
    if error.status_code == 405:
        return error_page(request, ContactsyncError("this page does not take that method", code="E200"), 405)
    return error_page(request, ContactsyncError(str(error.detail), code="E200"), error.status_code)


def _unexpected(request: Request, error: Exception) -> Response:
    logref = str(uuid.uuid4())
    log.exception("unexpected error", extra={"action": "web.error", "logref": logref})
    bug = ContactsyncError(f"internal error; the details are in the service log under {logref}", code="E999")
    return error_page(request, bug, status=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ContactsyncError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
