"""Real-time subscribe / unsubscribe API (``/api/v1/workspaces/{wid}/subscriptions``).

Subscribe an address (with profile fields) to subscription systems of a node, single or
double opt-in; unsubscribe with a reason; read its status; cancel (remove the customer).
A server calling on behalf of a person passes the person's ``ip`` and ``userAgent``: they
are recorded in the consent ledger (the caller's own are used otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from contactsync.api.auth import check_node, principal, requires
from contactsync.hub import subscribe
from contactsync.hub.context import WriteContext
from contactsync.hub.tokens import Principal, Role
from contactsync.settings import Settings
from contactsync.store.db import Database

router = APIRouter(prefix="/workspaces/{wid}/subscriptions", tags=["subscriptions"])


class Person(BaseModel):
    nodeId: str = Field(min_length=1, max_length=36)
    email: str = Field(max_length=320)
    ip: str | None = Field(None, max_length=64, description="the person's IP address, for the ledger")
    userAgent: str | None = Field(None, max_length=512, description="the person's browser, for the ledger")


class SubscribeIn(Person):
    subscriptions: list[str] = Field(min_length=1, description="subscription system ids")
    profile: dict[str, Any] | None = Field(
        None, description="customer fields (base, extended, tags, externalId), merged onto the customer"
    )
    updateProfile: bool = Field(True, description="false: the profile is used only to create the customer")
    doubleOptIn: bool = Field(False, description="send a confirmation email; subscribed once confirmed")
    consentEvidence: dict[str, Any] | None = Field(
        None, description="single opt-in evidence {type, date, ip, userAgent, webformCode}"
    )
    webformCode: str | None = Field(None, max_length=255)
    language: str = Field("en", description="language of the confirmation email and page: en or it")


class UnsubscribeIn(Person):
    subscriptions: list[str] = Field(min_length=1)
    reason: str | None = Field(None, max_length=64, description="stored as the subscription's reason")


def _context(request: Request, who: Principal, person: Person) -> WriteContext:
    client = request.client.host if request.client else None
    return WriteContext(
        origin="api",
        actor=f"token:{who.name}",
        ip=person.ip or client,
        user_agent=person.userAgent or request.headers.get("user-agent"),
    )


_member = requires(Role.ADMIN, Role.USER, Role.SOURCE)
Work = Callable[[Database, Settings, Principal], dict[str, Any]]


async def _as_member(request: Request, wid: str, work: Work) -> Response:
    """Authenticate and run ``work`` in one hop to the thread pool, answer its JSON.

    The routes are ``async`` and call the auth functions themselves instead of declaring
    them as dependencies: FastAPI runs each synchronous dependency in a thread of its own,
    and these routes are the real-time path (bench/realtime_api.py).
    """

    def run() -> dict[str, Any]:
        db: Database = request.app.state.db
        return work(db, request.app.state.settings, _member(principal(request, db), wid))

    return Response(orjson.dumps(await run_in_threadpool(run)), media_type="application/json")


_DOCS: dict[str, Any] = {"responses": {200: {"content": {"application/json": {}}}}}


@router.post("", **_DOCS)
async def subscribe_person(wid: str, body: Annotated[SubscribeIn, Body()], request: Request) -> Response:
    """Subscribe an address; the answer lists each subscription's status before and after."""

    def work(db: Database, conf: Settings, who: Principal) -> dict[str, Any]:
        check_node(who, body.nodeId)
        req = subscribe.SubscribeRequest(
            node_id=body.nodeId,
            email=body.email,
            subscription_ids=tuple(body.subscriptions),
            profile=body.profile,
            update_profile=body.updateProfile,
            double_opt_in=body.doubleOptIn,
            evidence=body.consentEvidence,
            webform_code=body.webformCode,
            language=body.language,
        )
        return subscribe.subscribe(db, conf, wid, req, _context(request, who, body)).as_json()

    return await _as_member(request, wid, work)


@router.post("/unsubscribe", **_DOCS)
async def unsubscribe_person(wid: str, body: Annotated[UnsubscribeIn, Body()], request: Request) -> Response:
    """Unsubscribe an address (with a reason) from subscription systems of a node."""

    def work(db: Database, conf: Settings, who: Principal) -> dict[str, Any]:
        check_node(who, body.nodeId)
        ctx = _context(request, who, body)
        return subscribe.unsubscribe(
            db, wid, body.nodeId, body.email, body.subscriptions, ctx, reason=body.reason
        ).as_json()

    return await _as_member(request, wid, work)


@router.get("", **_DOCS)
async def subscription_status(
    wid: str,
    request: Request,
    node_id: Annotated[str, Query(alias="nodeId")],
    email: Annotated[str, Query()],
) -> Response:
    """The address's subscriptions and its recent double opt-in requests."""

    def work(db: Database, conf: Settings, who: Principal) -> dict[str, Any]:
        check_node(who, node_id)
        return subscribe.status(db, wid, node_id, email)

    return await _as_member(request, wid, work)


@router.post("/cancel", **_DOCS)
async def cancel_person(wid: str, body: Annotated[Person, Body()], request: Request) -> Response:
    """Remove the address's customer from the node; answers the customer as it was."""

    def work(db: Database, conf: Settings, who: Principal) -> dict[str, Any]:
        check_node(who, body.nodeId)
        ctx = _context(request, who, body)
        return {"deleted": subscribe.cancel(db, wid, body.nodeId, body.email, ctx)}

    return await _as_member(request, wid, work)
