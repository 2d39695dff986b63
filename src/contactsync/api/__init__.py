"""HTTP interfaces: the Contacthub-compatible hub API (``/hub/v1``) and management (``/api/v1``)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from contactsync import __version__
from contactsync.api import (
    confirm,
    errors,
    exchange,
    frontend,
    hub_customers,
    hub_events,
    management,
    sources,
    subscriptions,
    webhooks,
)
from contactsync.api.openapi import ContacthubErrorsApp
from contactsync.settings import Settings
from contactsync.store.db import Database


def _sub_app(title: str, description: str, db: Database, settings: Settings) -> FastAPI:
    app = ContacthubErrorsApp(
        title=title,
        version=__version__,
        description=description,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.db = db
    app.state.settings = settings
    errors.install(app)
    return app


def create_app(db: Database, settings: Settings) -> FastAPI:
    """The whole service: the console at ``/``, the hub API, the management API, the public
    endpoints (MailUp forms, opt-in confirmation, inbound provider webhooks), a health check."""
    from contactsync.web import create_console

    hub = _sub_app(
        "contactsync hub API",
        "Customer hub REST API, compatible with the Contacthub API 1.51 (customers, events, updates).",
        db,
        settings,
    )
    hub.include_router(hub_customers.router)
    hub.include_router(hub_events.router)
    manage = _sub_app(
        "contactsync management API",
        "Workspaces, nodes, API tokens, sources and their runs, exchange jobs and schedules, "
        "the subscribe API, webhooks.",
        db,
        settings,
    )
    for router in (management.router, sources.router, exchange.router, subscriptions.router, webhooks.router):
        manage.include_router(router)

    root = FastAPI(title="contactsync", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    root.state.db = db
    root.state.settings = settings
    errors.install(root)

    @root.get("/healthz")
    def healthz() -> dict[str, Any]:
        with db.read() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {"status": "ok", "version": __version__}

    @root.get("/about.json")
    def about() -> dict[str, Any]:
        return {
            "service": "contactsync",
            "version": __version__,
            "console": "/",
            "hubApi": "/hub/v1/openapi.json",
            "managementApi": "/api/v1/openapi.json",
        }

    root.include_router(frontend.router)  # MailUp-compatible /frontend/xml*.aspx
    root.include_router(confirm.router)  # double opt-in confirmation links
    root.include_router(webhooks.inbound_router)  # /webhooks/{provider}/{source}
    root.mount("/hub/v1", hub)
    root.mount("/api/v1", manage)
    root.mount("/", create_console(db, settings))  # every path not taken above
    return root
