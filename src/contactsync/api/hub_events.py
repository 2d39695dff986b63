"""Hub API: events, the updates feed and the workspace configuration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse

from contactsync.api.auth import Admin, Conf, Db, Member, check_node, list_node
from contactsync.api.hub_customers import context
from contactsync.errors import FieldProblem, invalid
from contactsync.hub import events, updates, workspaces
from contactsync.hub.tokens import Principal
from contactsync.hub.workspaces import UniquenessPolicy

router = APIRouter(prefix="/workspaces/{wid}")
Json = Annotated[Any, Body()]


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _binding(who: Principal) -> events.NodeCheck:
    """The token's node binding, checked by the hub against the node of the event it touches."""
    return lambda node_id: check_node(who, node_id)


@router.post("/events", status_code=202, tags=["events"])
def post_event(wid: str, body: Json, request: Request, db: Db, who: Member) -> JSONResponse:
    """Store an event (202 Accepted, as Contacthub answers). Returns ``{"id"}``."""
    stored = events.post_event(db, wid, body, context(request, who), allow=_binding(who))
    return JSONResponse(stored, status_code=202)


@router.get("/events", tags=["events"])
def list_events(
    wid: str,
    db: Db,
    who: Member,
    conf: Conf,
    customerId: str | None = None,
    nodeId: str | None = None,
    type: str | None = None,
    context: str | None = None,
    mode: str | None = None,
    dateFrom: str | None = None,
    dateTo: str | None = None,
    page: int = 0,
    size: Annotated[int | None, Query()] = None,
) -> dict[str, Any]:
    return events.list_events(
        db,
        wid,
        customer_id=customerId,
        node_id=list_node(who, nodeId),
        types=_csv(type),
        contexts=_csv(context),
        mode=mode,
        date_from=dateFrom,
        date_to=dateTo,
        page=page,
        size=size or conf.default_page_size,
        max_size=conf.max_page_size,
    )


@router.get("/events/{eid}", tags=["events"])
def get_event(wid: str, eid: str, db: Db, who: Member) -> dict[str, Any]:
    return events.get_event(db, wid, eid, allow=_binding(who))


@router.put("/events/{eid}", status_code=202, tags=["events"])
def put_event(wid: str, eid: str, body: Json, request: Request, db: Db, who: Member) -> dict[str, Any]:
    return events.replace_event(db, wid, eid, body, context(request, who), allow=_binding(who))


@router.delete("/events/{eid}", status_code=204, tags=["events"])
def delete_event(wid: str, eid: str, request: Request, db: Db, who: Member) -> Response:
    events.delete_event(db, wid, eid, context(request, who), allow=_binding(who))
    return Response(status_code=204)


@router.get("/updates", tags=["updates"])
def read_updates(
    wid: str,
    db: Db,
    who: Member,
    conf: Conf,
    offset: int | None = None,
    timestamp: int | None = None,
    size: int = 50,
    nodeId: str | None = None,
    entity: str | None = None,
) -> dict[str, Any]:
    """Changes after ``offset`` (exclusive), oldest first; ``nextOffset`` is the offset to send next."""
    nodeId = list_node(who, nodeId)
    if not 1 <= size <= conf.max_updates_page:
        raise invalid([FieldProblem("size", f"size must be 1..{conf.max_updates_page}")])
    return updates.read_updates(
        db, wid, offset=offset, timestamp=timestamp, size=size, node_id=nodeId, entity=entity
    )


@router.get("/updates/last-offset", tags=["updates"])
def last_offset(
    wid: str, db: Db, who: Member, nodeId: str | None = None, entity: str | None = None
) -> dict[str, int]:
    return updates.last_offset(db, wid, list_node(who, nodeId), entity)


@router.get("/configuration/unique-customer-matching-policy", tags=["configuration"])
def get_matching_policy(wid: str, db: Db, who: Member) -> dict[str, Any]:
    return workspaces.get_workspace(db, wid).matching_json()


@router.put("/configuration/unique-customer-matching-policy", tags=["configuration"])
def put_matching_policy(wid: str, body: Json, db: Db, who: Admin) -> dict[str, Any]:
    """``{"properties": [...], "caseSensitive": false, "customerUniquenessPolicy": "BLOCK"}``"""
    if not isinstance(body, dict) or not isinstance(body.get("properties"), list):
        raise invalid([FieldProblem("properties", "a list of property paths is required", "E206")])
    current = workspaces.get_workspace(db, wid)
    policy = body.get("customerUniquenessPolicy", current.uniqueness_policy.value)
    if policy not in UniquenessPolicy.__members__:
        raise invalid([FieldProblem("customerUniquenessPolicy", "must be NO_CHECK, BLOCK or MERGE", "E203")])
    ws = workspaces.set_matching_policy(
        db,
        wid,
        properties=[str(p) for p in body["properties"]],
        case_sensitive=bool(body.get("caseSensitive", False)),
        policy=UniquenessPolicy(policy),
    )
    return ws.matching_json()


@router.get("/configuration/properties/extended", tags=["configuration"])
def get_extended_schema(wid: str, db: Db, who: Member) -> dict[str, Any]:
    return workspaces.get_workspace(db, wid).extended_schema


@router.put("/configuration/properties/extended", tags=["configuration"])
def put_extended_schema(wid: str, body: Json, db: Db, who: Admin) -> dict[str, Any]:
    """Replace the JSON Schema (type object) that every customer's ``extended`` must match."""
    return workspaces.set_extended_schema(db, wid, body).extended_schema
