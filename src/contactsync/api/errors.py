"""Domain errors → HTTP responses with Contacthub's error body.

``{"message", "logref", "data", "errors": [{"message", "path", "data", "code"}], "code"}``
(``code`` is contactsync's stable error code; the rest is Contacthub's shape).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from contactsync.errors import (
    AuthError,
    ConflictError,
    ContactsyncError,
    ForbiddenError,
    InputError,
    NotFoundError,
    ReadOnlyError,
    TransientError,
)

log = logging.getLogger("contactsync.api")

_STATUS: list[tuple[type[ContactsyncError], int]] = [
    (ForbiddenError, 403),
    (AuthError, 401),
    (ReadOnlyError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (InputError, 400),
    (TransientError, 503),
]


def status_of(error: ContactsyncError) -> int:
    return next((status for cls, status in _STATUS if isinstance(error, cls)), 400)


def error_body(
    message: str, code: str, errors: list[dict[str, Any]] | None = None, data: Any = None
) -> dict[str, Any]:
    return {
        "message": message,
        "logref": str(uuid.uuid4()),
        "data": data,
        "errors": errors or [],
        "code": code,
    }


def _domain(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ContactsyncError)
    data = error.data
    if isinstance(error, ConflictError) and data and "customer" in data:
        cid = data["customer"]["id"]
        base = str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
        wid = request.path_params.get("wid", "")
        data = {"customer": {"id": cid, "href": f"{base}/workspaces/{wid}/customers/{cid}"}}
    body = error_body(error.message, error.code, [p.as_dict() for p in error.problems], data)
    if error.hint:
        body["hint"] = error.hint
    headers = {"Retry-After": "2"} if isinstance(error, TransientError) else None
    if isinstance(error, AuthError) and not isinstance(error, ForbiddenError):
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(body, status_code=status_of(error), headers=headers)


def _validation(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = []
    for e in error.errors():
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path", "header")]
        problems.append(
            {
                "message": e.get("msg", "invalid"),
                "path": ".".join(loc),
                "data": None,
                "code": "E200",
            }
        )
    first = problems[0] if problems else {"path": "", "message": "invalid request"}
    message = f"{first['path']}: {first['message']}" if first["path"] else str(first["message"])
    return JSONResponse(error_body(message, "E200", problems), status_code=400)


def _http(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = {401: "E110", 403: "E111", 404: "E120"}.get(error.status_code, "E200")
    return JSONResponse(error_body(str(error.detail), code), status_code=error.status_code)


def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    body = error_body("internal error; the details are in the service log under this logref", "E999")
    log.exception("unexpected error", extra={"action": "api.error", "logref": body["logref"]})
    return JSONResponse(body, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ContactsyncError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
