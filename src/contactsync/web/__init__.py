"""The web console: server-rendered pages over the same services as the API.

Every page works without JavaScript; ``static/console.js`` only adds conveniences (auto-submit of
the language menu, live run progress, "+" rows without a round trip). Mounted at ``/`` by
:func:`contactsync.api.create_app`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from contactsync import __version__
from contactsync.settings import Settings
from contactsync.store.db import Database
from contactsync.web import errors
from contactsync.web.views import customers, exchange, login, oauth, runs, source_pages, tokens, webhooks

STATIC = Path(__file__).parent / "static"


def create_console(db: Database, settings: Settings) -> FastAPI:
    app = FastAPI(
        title="contactsync console", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.db = db
    app.state.settings = settings
    errors.install(app)
    for module in (login, customers, source_pages, oauth, runs, exchange, webhooks, tokens):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
