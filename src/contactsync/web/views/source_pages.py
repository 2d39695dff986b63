"""Sources: the list, "New source" (seed 000's page) and a source's settings (admins only).

The form is one page whose buttons say what to do next (``action``): ``provider`` (switch the
provider's options), ``fields`` ("Show additional fields": check the credentials and load the
provider's fields and lists), ``add_sub`` (the "+" of the subscription panel), ``signin`` (OAuth)
and ``save``. Between clicks the form lives in a *draft* (sealed server-side), so credentials are
never sent back to the browser and survive the trip to the provider's sign-in page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from contactsync.connectors import registry
from contactsync.errors import ContactsyncError, InputError
from contactsync.hub import workspaces
from contactsync.settings import Settings
from contactsync.sync import oauth, sources
from contactsync.sync.oauth import Draft
from contactsync.sync.settings import ConflictPolicy, DeleteBehaviour
from contactsync.sync.sources import Source, SyncEnv
from contactsync.web import source_form
from contactsync.web.auth import Session
from contactsync.web.deps import Admin, Conf, Db, Env, PostedAdmin, Viewer
from contactsync.web.render import redirect, render

router = APIRouter()


class SourceFormIn(BaseModel):
    """Every field of the form (their names vary with the provider and the rows)."""

    model_config = ConfigDict(extra="allow")

    action: str = "save"
    draft: str = ""
    provider: str = ""

    def fields(self) -> dict[str, Any]:
        return {**(self.model_extra or {}), "provider": self.provider}


FormIn = Annotated[SourceFormIn, Form()]


def callback_url(request: Request, settings: Settings) -> str:
    base = settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    return f"{base}/oauth/callback"


def _providers() -> list[tuple[str, str]]:
    return [(name, registry.get(name).label) for name in registry.names()]


def _extended_names(db: Any, workspace_id: str) -> list[str]:
    schema = workspaces.get_workspace(db, workspace_id).extended_schema
    return sorted((schema.get("properties") or {}).keys())


def _form_page(
    request: Request,
    db: Any,
    session: Session,
    values: dict[str, Any],
    *,
    draft: Draft | None,
    source: Source | None = None,
    error: ContactsyncError | None = None,
    status: int = 200,
) -> Response:
    wid = session.user.workspace_id
    nodes = workspaces.list_nodes(db, wid)
    node = next((n for n in nodes if n.id == values.get("node")), nodes[0] if nodes else None)
    provider = values["provider"]
    description = draft.description if draft else None
    stored = set(draft.secrets) if draft else set()
    if source is not None:
        stored |= {k for k, v in source.secrets.items() if v}
    choices = [f["name"] for f in description["fields"]] if description else []
    for m in values.get("field_map", []):
        if m.get("provider") and m["provider"] not in choices:
            choices.append(m["provider"])
    lists = [(li["id"], li["name"]) for li in description["lists"]] if description else []
    for s in values.get("subs", []):
        if s.get("provider") and s["provider"] not in [x for x, _ in lists]:
            lists.append((s["provider"], s["provider"]))
    signed_in = bool(draft and draft.signed_in) or bool(source and source.secrets.get("access_token"))
    return render(
        request,
        "source_form.html",
        status=status,
        mode="edit" if source else "new",
        source=source,
        draft_id=draft.id if draft else "",
        values=values,
        stored=stored,
        options=source_form.option_fields(provider),
        hub_fields=source_form.hub_fields(_extended_names(db, wid), values),
        mapped={m["hub"]: m for m in values.get("field_map", [])},
        description=description,
        provider_fields={f["name"]: f for f in (description or {}).get("fields", [])},
        choices=choices,
        lists=lists,
        nodes=nodes,
        aggregate=node is not None and node.kind == workspaces.NodeKind.AGGREGATE,
        signin=oauth.supports_sign_in(provider),
        signed_in=signed_in,
        providers=_providers(),
        frequencies=source_form.FREQUENCIES,
        conflict_policies=[p.value for p in ConflictPolicy],
        delete_behaviours=[b.value for b in DeleteBehaviour],
        error=error,
    )


# --- list ------------------------------------------------------------------------------------


@router.get("/sources")
def source_list(request: Request, env: Env, session: Viewer) -> Response:
    found = sources.list_sources(env, session.user.workspace_id)
    nodes = {n.id: n for n in workspaces.list_nodes(env.db, session.user.workspace_id)}
    labels = dict(_providers())
    return render(request, "sources.html", sources=found, nodes=nodes, labels=labels)


# --- new source ------------------------------------------------------------------------------


@router.get("/sources/new")
def new_source(
    request: Request, db: Db, env: Env, conf: Conf, session: Admin, provider: str = "", draft: str = ""
) -> Response:
    found = oauth.load_draft(env, session.id, draft) if draft else None
    if found is not None and found.source_id is None:
        return _form_page(request, db, session, found.values, draft=found)
    name = provider if provider in registry.names() else "constantcontact"
    nodes = workspaces.list_nodes(db, session.user.workspace_id)
    values = source_form.blank(name, nodes[0].id if nodes else "", callback_url(request, conf))
    return _form_page(request, db, session, values, draft=None)


def _draft(env: SyncEnv, session: Session, form: SourceFormIn, source: Source | None) -> Draft:
    """The posted form as the session's draft (created on the first post)."""
    provider = source.provider if source else form.provider
    registry.get(provider)
    values, typed = source_form.parse(form.fields(), provider)
    found = oauth.load_draft(env, session.id, form.draft) if form.draft else None
    if found is None or found.provider != provider:
        found = Draft("", session.user.workspace_id, provider, source.id if source else None)
    found.values = values
    found.secrets.update(typed)
    return found


def _load_fields(env: SyncEnv, session: Session, draft: Draft, source: Source | None) -> None:
    """ "Show additional fields": check the credentials and keep the provider's description."""
    values = draft.values
    if (
        source is not None
        and not draft.secrets
        and values["options"] == {k: v for k, v in source.options.items() if v is not None}
    ):
        found = sources.check_source(env, session.user.workspace_id, source.id)
        rotated: dict[str, str] = {}
    else:
        stored = source.secrets if source else {}
        cfg = source_form.config(values, {**stored, **draft.secrets}, draft.provider)
        found, rotated = oauth.describe(env, draft.provider, cfg)
    draft.secrets.update(rotated)
    draft.description = sources.describe_json(found)
    source_form.guess_mapping(values, draft.description)


@router.post("/sources/new")
def post_new_source(
    request: Request, db: Db, env: Env, conf: Conf, session: PostedAdmin, form: FormIn
) -> Response:
    draft = _draft(env, session, form, None)
    if form.action == "provider":
        values = source_form.blank(draft.provider, draft.values["node"], callback_url(request, conf))
        values.update(name=draft.values["name"], description=draft.values["description"])
        draft = oauth.save_draft(
            env, session.id, Draft(draft.id, draft.workspace_id, draft.provider, None, values)
        )
        return _form_page(request, db, session, values, draft=draft)
    try:
        if form.action == "fields":
            _load_fields(env, session, draft, None)
        elif form.action == "add_sub":
            draft.values["subs"].append({"hub": "", "provider": "", "webform": ""})
        elif form.action == "signin":
            draft = oauth.save_draft(env, session.id, draft)
            return redirect(oauth.begin(env, session.id, draft))
        elif form.action == "save":
            node = _node(db, session, draft.values["node"])
            spec = source_form.spec(draft.values, draft.secrets, aggregate=node.kind == "aggregate")
            created = sources.create_source(env, session.user.workspace_id, spec)
            if draft.id:
                oauth.drop_draft(env, draft.id)
            return redirect(f"/sources/{created.id}/log", notice="source_created")
    except ContactsyncError as e:
        draft = oauth.save_draft(env, session.id, draft)
        return _form_page(request, db, session, draft.values, draft=draft, error=e, status=_status(e))
    draft = oauth.save_draft(env, session.id, draft)
    return _form_page(request, db, session, draft.values, draft=draft)


def _status(error: ContactsyncError) -> int:
    from contactsync.api.errors import status_of

    return status_of(error) if not isinstance(error, InputError) else 400


def _node(db: Any, session: Session, node_id: str) -> workspaces.Node:
    for node in workspaces.list_nodes(db, session.user.workspace_id):
        if node.id == node_id:
            return node
    raise InputError("choose the node the source syncs", code="E206")


# --- an existing source's settings -----------------------------------------------------------


@router.get("/sources/{ref}/settings")
def source_settings(
    request: Request, ref: str, db: Db, env: Env, session: Admin, draft: str = ""
) -> Response:
    source = sources.get_source(env, session.user.workspace_id, ref)
    found = oauth.load_draft(env, session.id, draft) if draft else None
    if found is not None and found.source_id == source.id and found.values:
        return _form_page(request, db, session, found.values, draft=found, source=source)
    return _form_page(request, db, session, source_form.from_source(source), draft=None, source=source)


def _changes(db: Any, session: Session, source: Source, draft: Draft) -> dict[str, Any]:
    values = draft.values
    node = _node(db, session, values["node"])
    changes: dict[str, Any] = {
        "name": values["name"],
        "description": values["description"],
        "sync": source_form.sync_settings(values, aggregate=node.kind == "aggregate"),
        "enabled": values["enabled"],
    }
    if node.id != source.node_id:
        changes["node"] = node.id
    current = {k: v for k, v in source.options.items() if v is not None}
    if values["options"] != current or draft.secrets:
        typed = {k: v for k, v in draft.secrets.items() if k not in oauth.TOKEN_FIELDS}
        changes["config"] = source_form.config(values, typed, source.provider)
    return changes


@router.post("/sources/{ref}/settings")
def post_source_settings(
    request: Request, ref: str, db: Db, env: Env, session: PostedAdmin, form: FormIn
) -> Response:
    source = sources.get_source(env, session.user.workspace_id, ref)
    draft = _draft(env, session, form, source)
    try:
        if form.action == "fields":
            _load_fields(env, session, draft, source)
        elif form.action == "add_sub":
            draft.values["subs"].append({"hub": "", "provider": "", "webform": ""})
        elif form.action == "signin":
            typed = {k: v for k, v in draft.secrets.items() if k not in oauth.TOKEN_FIELDS}
            signing = Draft(
                draft.id,
                draft.workspace_id,
                source.provider,
                source.id,
                {**draft.values, "options": {**source.options, **draft.values["options"]}},
                {**source.secrets, **typed},
                draft.description,
            )
            signing = oauth.save_draft(env, session.id, signing)
            return redirect(oauth.begin(env, session.id, signing))
        elif form.action == "save":
            sources.update_source(
                env, session.user.workspace_id, source.id, _changes(db, session, source, draft)
            )
            if draft.id:
                oauth.drop_draft(env, draft.id)
            return redirect(f"/sources/{source.id}/settings", notice="source_saved")
    except ContactsyncError as e:
        draft = oauth.save_draft(env, session.id, draft)
        return _form_page(
            request, db, session, draft.values, draft=draft, source=source, error=e, status=_status(e)
        )
    draft = oauth.save_draft(env, session.id, draft)
    return _form_page(request, db, session, draft.values, draft=draft, source=source)


@router.post("/sources/{ref}/delete")
def delete_source(ref: str, env: Env, session: PostedAdmin) -> Response:
    sources.delete_source(env, session.user.workspace_id, ref)
    return redirect("/sources", notice="source_deleted")


@router.post("/sources/{ref}/revoke")
def revoke_access(ref: str, env: Env, session: PostedAdmin, back: Annotated[str, Form()] = "") -> Response:
    source = sources.revoke_access(env, session.user.workspace_id, ref)
    target = back if back in ("log", "settings") else "settings"
    return redirect(f"/sources/{source.id}/{target}", notice="revoked")
