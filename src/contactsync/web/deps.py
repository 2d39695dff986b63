"""Request dependencies of the console: the database, the signed-in session, roles and CSRF.

No ``from __future__ import annotations`` here: FastAPI reads the dependencies' annotations, and
the role and CSRF ones refer to closure variables that only an evaluated annotation can see.
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Form, Request

from contactsync.errors import AuthError, ForbiddenError
from contactsync.secrets import SecretBox
from contactsync.settings import Settings
from contactsync.store.db import Database
from contactsync.sync.sources import SyncEnv
from contactsync.web import auth
from contactsync.web.auth import Session

COOKIE = "contactsync_session"


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def settings(request: Request) -> Settings:
    conf: Settings = request.app.state.settings
    return conf


def sync_env(request: Request) -> SyncEnv:
    env: SyncEnv | None = getattr(request.app.state, "sync_env", None)
    if env is None:
        env = SyncEnv(request.app.state.db, SecretBox.from_settings(request.app.state.settings))
        request.app.state.sync_env = env
    return env


Db = Annotated[Database, Depends(database)]
Conf = Annotated[Settings, Depends(settings)]
Env = Annotated[SyncEnv, Depends(sync_env)]


def optional_session(request: Request, db: Db) -> Session | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        session = auth.session_for(db, token)
    except AuthError:
        return None
    request.state.session = session
    return session


def signed_in(session: Annotated[Session | None, Depends(optional_session)]) -> Session:
    if session is None:
        raise AuthError("sign in to use the console", code="E801")
    return session


def _role(allowed: Callable[[auth.User], bool], what: str) -> Callable[..., Session]:
    def dependency(session: Annotated[Session, Depends(signed_in)]) -> Session:
        if not allowed(session.user):
            raise ForbiddenError(
                f"{what}; you are signed in as {session.user.name} ({session.user.role.value})",
                code="E804",
            )
        return session

    return dependency


_admin = _role(lambda u: u.is_admin, "only admins may see or change this")
_runner = _role(lambda u: u.can_run, "only admins and editors may start runs")


def _posted(guard: Callable[..., Session]) -> Callable[..., Session]:
    def dependency(
        session: Annotated[Session, Depends(guard)], csrf_token: Annotated[str, Form()] = ""
    ) -> Session:
        auth.check_csrf(session, csrf_token)
        return session

    return dependency


Viewer = Annotated[Session, Depends(signed_in)]
Runner = Annotated[Session, Depends(_runner)]
Admin = Annotated[Session, Depends(_admin)]
PostedViewer = Annotated[Session, Depends(_posted(signed_in))]
PostedRunner = Annotated[Session, Depends(_posted(_runner))]
PostedAdmin = Annotated[Session, Depends(_posted(_admin))]
MaybeSession = Annotated[Session | None, Depends(optional_session)]
