"""Hub API: customers and their sub-resources (Contacthub-compatible)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse

from contactsync.api.auth import Conf, Db, Member, check_node, list_node
from contactsync.hub import customer_items, customers
from contactsync.hub.context import WriteContext
from contactsync.hub.schema import SUBSCRIPTION_SCHEMA, customer_schema
from contactsync.hub.tokens import Principal

router = APIRouter(prefix="/workspaces/{wid}/customers", tags=["customers"])
Json = Annotated[Any, Body()]
_CUSTOMER_BODY = {
    "requestBody": {"content": {"application/json": {"schema": customer_schema({"type": "object"})}}}
}
_SUBSCRIPTION_BODY = {"requestBody": {"content": {"application/json": {"schema": SUBSCRIPTION_SCHEMA}}}}


def context(request: Request, who: Principal) -> WriteContext:
    client = request.client.host if request.client else None
    return WriteContext(
        origin="api",
        actor=f"token:{who.name}",
        ip=client,
        user_agent=request.headers.get("user-agent"),
    )


def _owned(db: Any, wid: str, cid: str, who: Principal) -> None:
    if who.node_id is not None:
        check_node(who, customers.get(db, wid, cid)["nodeId"])


@router.get("")
def list_customers(
    wid: str,
    db: Db,
    who: Member,
    conf: Conf,
    nodeId: str | None = None,
    externalId: str | None = None,
    query: str | None = None,
    fields: str | None = None,
    sort: str | None = None,
    page: int = 0,
    size: Annotated[int | None, Query()] = None,
) -> dict[str, Any]:
    return customers.list_page(
        db,
        wid,
        list_node(who, nodeId),
        external_id=externalId,
        query=query,
        fields=[f.strip() for f in fields.split(",") if f.strip()] if fields else (),
        sort=sort,
        page=page,
        size=size or conf.default_page_size,
        max_size=conf.max_page_size,
    )


@router.post("", status_code=201, openapi_extra=_CUSTOMER_BODY)
def create_customer(wid: str, body: Json, request: Request, db: Db, who: Member) -> JSONResponse:
    if isinstance(body, dict):
        check_node(who, body.get("nodeId"))
    customer, created = customers.create(db, wid, body, context(request, who))
    return JSONResponse(customer, status_code=201 if created else 200)


@router.get("/{cid}")
def get_customer(wid: str, cid: str, db: Db, who: Member) -> dict[str, Any]:
    customer = customers.get(db, wid, cid)
    check_node(who, customer["nodeId"])
    return customer


@router.put("/{cid}", openapi_extra=_CUSTOMER_BODY)
def replace_customer(wid: str, cid: str, body: Json, request: Request, db: Db, who: Member) -> dict[str, Any]:
    _owned(db, wid, cid, who)
    return customers.replace(db, wid, cid, body, context(request, who))


@router.patch("/{cid}", openapi_extra=_CUSTOMER_BODY)
def patch_customer(wid: str, cid: str, body: Json, request: Request, db: Db, who: Member) -> dict[str, Any]:
    _owned(db, wid, cid, who)
    return customers.patch(db, wid, cid, body, context(request, who))


@router.delete("/{cid}")
def delete_customer(wid: str, cid: str, request: Request, db: Db, who: Member) -> dict[str, Any]:
    """Delete the customer; the body is the customer as it was (the Python SDK reads it)."""
    _owned(db, wid, cid, who)
    return customers.delete(db, wid, cid, context(request, who))


@router.get("/{cid}/consent-ledger")
def consent_ledger(wid: str, cid: str, db: Db, who: Member) -> dict[str, Any]:
    """The ledger outlives the customer, so a bound token is checked against its last known node."""
    if who.node_id is not None:
        check_node(who, customers.node_of(db, wid, cid))
    return {"elements": customers.consent_ledger(db, wid, cid)}


@router.post("/{cid}/subscriptions", status_code=201, openapi_extra=_SUBSCRIPTION_BODY)
def add_subscription(wid: str, cid: str, body: Json, request: Request, db: Db, who: Member) -> dict[str, Any]:
    _owned(db, wid, cid, who)
    return customer_items.put_subscription(db, wid, cid, body, context(request, who))


@router.get("/{cid}/subscriptions/{sid}")
def get_subscription(wid: str, cid: str, sid: str, db: Db, who: Member) -> dict[str, Any]:
    _owned(db, wid, cid, who)
    return customer_items.get_subscription(db, wid, cid, sid)


@router.put("/{cid}/subscriptions/{sid}", openapi_extra=_SUBSCRIPTION_BODY)
def put_subscription(
    wid: str, cid: str, sid: str, body: Json, request: Request, db: Db, who: Member
) -> dict[str, Any]:
    _owned(db, wid, cid, who)
    return customer_items.put_subscription(db, wid, cid, body, context(request, who), sid=sid)


@router.delete("/{cid}/subscriptions/{sid}", status_code=204)
def delete_subscription(wid: str, cid: str, sid: str, request: Request, db: Db, who: Member) -> Response:
    _owned(db, wid, cid, who)
    customer_items.delete_subscription(db, wid, cid, sid, context(request, who))
    return Response(status_code=204)


@router.get("/{cid}/tags")
def get_tags(wid: str, cid: str, db: Db, who: Member) -> dict[str, Any]:
    _owned(db, wid, cid, who)
    return dict(customers.get(db, wid, cid)["tags"])


@router.post("/{cid}/tags", status_code=201)
def add_tag(wid: str, cid: str, body: Json, request: Request, db: Db, who: Member) -> dict[str, Any]:
    """Add a manual tag: ``{"tag": "vip"}`` (atomic, unlike read-modify-write PATCH)."""
    _owned(db, wid, cid, who)
    tag = body.get("tag") if isinstance(body, dict) else None
    return customer_items.add_tag(db, wid, cid, tag, context(request, who))  # type: ignore[arg-type]


@router.delete("/{cid}/tags/{tag}")
def remove_tag(wid: str, cid: str, tag: str, request: Request, db: Db, who: Member) -> dict[str, Any]:
    _owned(db, wid, cid, who)
    return customer_items.remove_tag(db, wid, cid, tag, context(request, who))


@router.post("/{cid}/sessions", status_code=201)
def add_session(wid: str, cid: str, body: Json, db: Db, who: Member) -> dict[str, Any]:
    _owned(db, wid, cid, who)
    return customer_items.add_session(db, wid, cid, body.get("value") if isinstance(body, dict) else None)


@router.get("/{cid}/sessions")
def list_sessions(wid: str, cid: str, db: Db, who: Member) -> dict[str, Any]:
    _owned(db, wid, cid, who)
    return {"elements": customer_items.list_sessions(db, wid, cid)}


@router.delete("/{cid}/sessions/{value}", status_code=204)
def delete_session(wid: str, cid: str, value: str, db: Db, who: Member) -> Response:
    _owned(db, wid, cid, who)
    customer_items.delete_session(db, wid, cid, value)
    return Response(status_code=204)


@router.post("/{cid}/{kind}", status_code=201)
def add_item(
    wid: str, cid: str, kind: str, body: Json, request: Request, db: Db, who: Member
) -> dict[str, Any]:
    """Add an education, like or job (``kind``: educations | likes | jobs)."""
    _owned(db, wid, cid, who)
    return customer_items.put_item(db, wid, cid, kind, body, create=True, ctx=context(request, who))


@router.get("/{cid}/{kind}/{item_id}")
def get_item(wid: str, cid: str, kind: str, item_id: str, db: Db, who: Member) -> dict[str, Any]:
    _owned(db, wid, cid, who)
    return customer_items.get_item(db, wid, cid, kind, item_id)


@router.put("/{cid}/{kind}/{item_id}")
def put_item(
    wid: str, cid: str, kind: str, item_id: str, body: Json, request: Request, db: Db, who: Member
) -> dict[str, Any]:
    _owned(db, wid, cid, who)
    return customer_items.put_item(
        db, wid, cid, kind, body, item_id=item_id, create=False, ctx=context(request, who)
    )


@router.delete("/{cid}/{kind}/{item_id}", status_code=204)
def delete_item(
    wid: str, cid: str, kind: str, item_id: str, request: Request, db: Db, who: Member
) -> Response:
    _owned(db, wid, cid, who)
    customer_items.delete_item(db, wid, cid, kind, item_id, context(request, who))
    return Response(status_code=204)
