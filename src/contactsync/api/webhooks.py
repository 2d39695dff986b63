"""Webhooks over HTTP: outbound registrations and their delivery log (``/api/v1``), the inbound
token of a source, and the inbound endpoint ``/webhooks/{provider}/{source_id}`` (root app).

See docs/webhooks.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from contactsync.api.auth import Admin, Db, Member
from contactsync.api.sources import Env, sync_env
from contactsync.errors import not_found
from contactsync.notify import delivery, webhooks
from contactsync.notify.webhooks import WebhookConfig
from contactsync.settings import Settings
from contactsync.store.db import Database
from contactsync.sync import inbound

router = APIRouter(prefix="/workspaces/{wid}", tags=["webhooks"])
inbound_router = APIRouter(include_in_schema=False)


class WebhookIn(BaseModel):
    url: str = Field(description="The receiver: an absolute http(s) URL")
    events: list[str] = Field(
        default_factory=lambda: ["*"], description="Event types to send (see docs/webhooks.md), or `*`"
    )
    node: str | None = Field(None, description="Only the events of this node (id or name)")
    description: str = ""
    enabled: bool = True


class WebhookPatch(BaseModel):
    url: str | None = None
    events: list[str] | None = None
    node: str | None = None
    description: str | None = None
    enabled: bool | None = None


@router.get("/webhooks")
def list_webhooks(wid: str, db: Db, who: Admin) -> dict[str, Any]:
    return {"elements": webhooks.list_webhooks(db, wid)}


@router.post("/webhooks", status_code=201)
def create_webhook(wid: str, body: Annotated[WebhookIn, Body()], env: Env, who: Admin) -> dict[str, Any]:
    """Register a webhook. The answer's ``secret`` signs its deliveries: it is shown this once."""
    hook, secret = webhooks.create_webhook(
        env.db,
        env.box,
        wid,
        url=body.url,
        events=body.events,
        node=body.node,
        description=body.description,
        enabled=body.enabled,
    )
    return {**hook, "secret": secret}


@router.get("/webhooks/{webhook_id}")
def get_webhook(wid: str, webhook_id: str, db: Db, who: Admin) -> dict[str, Any]:
    return webhooks.get_webhook(db, wid, webhook_id)


@router.patch("/webhooks/{webhook_id}")
def update_webhook(
    wid: str, webhook_id: str, body: Annotated[WebhookPatch, Body()], db: Db, who: Admin
) -> dict[str, Any]:
    return webhooks.update_webhook(db, wid, webhook_id, body.model_dump(exclude_unset=True))


@router.delete("/webhooks/{webhook_id}")
def delete_webhook(wid: str, webhook_id: str, db: Db, who: Admin) -> dict[str, Any]:
    webhooks.delete_webhook(db, wid, webhook_id)
    return {"deleted": webhook_id}


@router.post("/webhooks/{webhook_id}/secret")
def rotate_secret(wid: str, webhook_id: str, env: Env, who: Admin) -> dict[str, Any]:
    """A new signing secret, shown once; the old one stops signing at once."""
    hook, secret = webhooks.rotate_secret(env.db, env.box, wid, webhook_id)
    return {**hook, "secret": secret}


@router.get("/webhooks/{webhook_id}/deliveries")
def list_deliveries(
    wid: str,
    webhook_id: str,
    db: Db,
    who: Admin,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The delivery log, newest first (``status``: pending, delivered or failed)."""
    webhooks.get_webhook(db, wid, webhook_id)
    return {"elements": delivery.list_deliveries(db, wid, webhook_id=webhook_id, status=status, limit=limit)}


def _delivery_of(db: Database, wid: str, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    found = delivery.get_delivery(db, wid, delivery_id)
    if found["webhookId"] != webhook_id:
        raise not_found("delivery", delivery_id)
    return found


@router.get("/webhooks/{webhook_id}/deliveries/{delivery_id}")
def get_delivery(wid: str, webhook_id: str, delivery_id: str, db: Db, who: Admin) -> dict[str, Any]:
    """A delivery with its payload and the log of its attempts."""
    return _delivery_of(db, wid, webhook_id, delivery_id)


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202)
def redeliver(wid: str, webhook_id: str, delivery_id: str, db: Db, who: Admin) -> dict[str, Any]:
    """Send the delivery again (same event id and payload), with a new retry window."""
    _delivery_of(db, wid, webhook_id, delivery_id)
    return delivery.redeliver(db, wid, delivery_id)


@router.post("/sources/{ref}/webhook-token", tags=["sources"])
def rotate_inbound_token(wid: str, ref: str, env: Env, who: Admin, request: Request) -> dict[str, Any]:
    """A new token for the source's inbound webhook URL (shown once; the old one stops working).
    Register the answer's ``url`` with the provider."""
    settings: Settings = request.app.state.settings
    public = settings.public_url or f"{request.url.scheme}://{request.url.netloc}"
    return inbound.rotate_token(env, wid, ref, public)


@router.get("/sources/{ref}/webhook-events", tags=["sources"])
def list_inbound_events(
    wid: str, ref: str, env: Env, who: Member, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """The source's latest inbound events and what became of them."""
    return {"elements": inbound.list_events(env, wid, ref, limit)}


# --- inbound -----------------------------------------------------------------------------------


def _token(request: Request) -> str | None:
    token = request.query_params.get("token") or request.headers.get("x-contactsync-token")
    if token:
        return token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@inbound_router.get("/webhooks/{provider}/{source_id}")
async def validate_inbound(provider: str, source_id: str, request: Request) -> Response:
    """Providers check a URL with a GET before they use it (Mailchimp does): 200 when the token
    is right."""
    await run_in_threadpool(inbound.authenticate, sync_env(request), provider, source_id, _token(request))
    return JSONResponse({"ok": True})


@inbound_router.post("/webhooks/{provider}/{source_id}")
async def receive_inbound(provider: str, source_id: str, request: Request) -> Response:
    """Check and queue one provider event; it is processed in the background (a targeted pull)."""
    body = await request.body()
    config = WebhookConfig.from_settings(request.app.state.settings)
    queued = await run_in_threadpool(
        inbound.receive,
        sync_env(request),
        config,
        provider,
        source_id,
        _token(request),
        body,
        request.headers.get("content-type", ""),
    )
    return JSONResponse(queued)
