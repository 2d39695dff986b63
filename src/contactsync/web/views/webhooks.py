"""Webhooks (admins): register URLs (the signing secret is shown once), see the deliveries and
their attempts, redeliver one, enable/disable or delete a webhook."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from contactsync.errors import ContactsyncError
from contactsync.hub import workspaces
from contactsync.notify import delivery, webhooks
from contactsync.notify.webhooks import ALL, EventType
from contactsync.web.deps import Admin, Db, Env, PostedAdmin
from contactsync.web.render import redirect, render

router = APIRouter()


def _page(request: Request, db: Db, workspace_id: str, status: int = 200, **context: Any) -> Response:
    return render(
        request,
        "webhooks.html",
        status=status,
        webhooks=webhooks.list_webhooks(db, workspace_id),
        deliveries=delivery.list_deliveries(db, workspace_id, limit=50),
        event_types=[t.value for t in EventType],
        nodes=workspaces.list_nodes(db, workspace_id),
        **context,
    )


@router.get("/webhooks")
def webhook_list(request: Request, db: Db, session: Admin) -> Response:
    return _page(request, db, session.user.workspace_id)


@router.post("/webhooks")
def create_webhook(
    request: Request,
    env: Env,
    session: PostedAdmin,
    url: Annotated[str, Form()] = "",
    events: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
    node: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    wid = session.user.workspace_id
    try:
        hook, secret = webhooks.create_webhook(
            env.db, env.box, wid, url=url, events=events or [ALL], node=node or None, description=description
        )
    except ContactsyncError as e:
        return _page(request, env.db, wid, status=400, error=e)
    return _page(request, env.db, wid, status=201, created=hook, secret=secret)


@router.post("/webhooks/{webhook_id}/enabled")
def toggle_webhook(
    webhook_id: str, db: Db, session: PostedAdmin, enabled: Annotated[str, Form()] = ""
) -> Response:
    webhooks.update_webhook(db, session.user.workspace_id, webhook_id, {"enabled": enabled == "on"})
    return redirect("/webhooks", notice="webhook_saved")


@router.post("/webhooks/{webhook_id}/delete")
def delete_webhook(webhook_id: str, db: Db, session: PostedAdmin) -> Response:
    webhooks.delete_webhook(db, session.user.workspace_id, webhook_id)
    return redirect("/webhooks", notice="webhook_deleted")


@router.get("/webhooks/deliveries/{delivery_id}")
def delivery_page(request: Request, delivery_id: str, db: Db, session: Admin) -> Response:
    found = delivery.get_delivery(db, session.user.workspace_id, delivery_id)
    return render(request, "webhook_delivery.html", delivery=found)


@router.post("/webhooks/deliveries/{delivery_id}/redeliver")
def redeliver(delivery_id: str, db: Db, session: PostedAdmin) -> Response:
    delivery.redeliver(db, session.user.workspace_id, delivery_id)
    return redirect(f"/webhooks/deliveries/{delivery_id}", notice="redelivered")
