"""Sign in, sign out, and the language switcher."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from contactsync.errors import AuthError, ForbiddenError
from contactsync.web import auth, i18n
from contactsync.web.deps import COOKIE, Db, MaybeSession, PostedViewer
from contactsync.web.errors import error_page
from contactsync.web.render import LANG_COOKIE, redirect, render

router = APIRouter()
LOGIN_CSRF = "contactsync_login_csrf"


def _local(target: str | None) -> str:
    """Only a path on this site (no open redirect to another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_page(request: Request, status: int = 200, error: AuthError | None = None) -> Response:
    token = request.cookies.get(LOGIN_CSRF) or secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        status=status,
        error=error,
        login_csrf=token,
        next=_local(request.query_params.get("next")),
    )
    response.set_cookie(
        LOGIN_CSRF, token, httponly=True, samesite="strict", secure=_secure(request), path="/login"
    )
    return response


@router.get("/login")
def login_form(request: Request, session: MaybeSession, lang: str | None = None) -> Response:
    if session is not None:
        return redirect("/")
    if lang in i18n.LANGUAGES:
        response = redirect("/login", next=request.query_params.get("next"))
        response.set_cookie(LANG_COOKIE, lang, samesite="lax", max_age=365 * 86400)
        return response
    return _login_page(request)


@router.post("/login")
def login(
    request: Request,
    db: Db,
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
    login_csrf: Annotated[str, Form()] = "",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF, "")
    if not cookie or not secrets.compare_digest(cookie.encode(), login_csrf.encode()):
        refused = ForbiddenError(
            "this sign-in form is stale or came from another site (CSRF token missing)", code="E803"
        )
        return error_page(request, refused)
    try:
        token, _ = auth.login(db, name, password)
    except AuthError as e:
        return _login_page(request, status=429 if e.code == "E802" else 401, error=e)
    response = redirect(_local(next))
    response.set_cookie(
        COOKIE,
        token,
        max_age=auth.SESSION_MS // 1000,
        httponly=True,
        samesite="lax",  # the OAuth callback is a top-level GET from the provider: Lax lets it in
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF, path="/login")
    return response


@router.post("/logout")
def logout(db: Db, session: PostedViewer) -> Response:
    auth.logout(db, session.id)
    response = redirect("/login")
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/language")
def set_language(
    request: Request,
    db: Db,
    session: PostedViewer,
    language: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "/",
) -> Response:
    auth.set_language(db, session.user.id, language or None)
    return redirect(_local(back))
