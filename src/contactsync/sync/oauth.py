"""OAuth2 "Sign in" for sources, and the drafts of sources being set up in the console.

A **draft** is a source form not saved yet (or a sign-in for an existing source): its values,
its credentials (sealed like a source's) and the provider's description once loaded. Drafts
belong to one console session and expire with it (or after :data:`DRAFT_MS`).

Sign-in, for providers whose connector has ``authorization_url`` / ``exchange_code`` (Constant
Contact: authorization code with PKCE S256):

1. :func:`begin` asks the connector for the authorize URL with a fresh ``state``; the PKCE
   verifier is sealed in the draft and only the state's SHA-256 is stored;
2. the provider sends the browser back to the redirect URI with ``code`` and ``state``;
3. :func:`complete` finds the draft by the state *and* the session that began it (a state is
   single-use and lasts :data:`STATE_MS`), trades the code for tokens and keeps them sealed in
   the draft. The console then saves the source (new) or updates its credentials (existing).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from contactsync.connectors import registry
from contactsync.connectors.base import ConnectorContext, Description, FieldInfo, ListInfo
from contactsync.errors import AuthError, ConfigError
from contactsync.hub.ids import new_id
from contactsync.hub.times import now_ms
from contactsync.store import users as store
from contactsync.sync.sources import SyncEnv

DRAFT_MS = 12 * 3600 * 1000
STATE_MS = 30 * 60 * 1000
TOKEN_FIELDS = ("access_token", "refresh_token")


class _OAuthConnector(Protocol):
    def authorization_url(self, state: str) -> tuple[str, str]: ...

    def exchange_code(self, code: str, verifier: str) -> None: ...

    def close(self) -> None: ...


@dataclass
class Draft:
    id: str
    workspace_id: str
    provider: str
    source_id: str | None = None
    values: dict[str, Any] = field(default_factory=dict)  # the form's plain values
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # credentials, tokens
    description: dict[str, Any] | None = None  # describe_json() of the provider, once loaded

    @property
    def signed_in(self) -> bool:
        return bool(self.secrets.get("access_token"))


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _context(env: SyncEnv, secrets_out: dict[str, str]) -> ConnectorContext:
    ctx = ConnectorContext(http=env.http, save_secrets=secrets_out.update)
    if env.sleep is not None:
        ctx.sleep = env.sleep
    if env.clock is not None:
        ctx.clock = env.clock
    return ctx


def supports_sign_in(provider: str) -> bool:
    """Whether a provider's sources sign in with OAuth: its config takes a redirect URI and the
    tokens the sign-in gets (the connector then has ``authorization_url``/``exchange_code``)."""
    fields = registry.get(provider).config.model_fields
    return all(name in fields for name in ("redirect_uri", *TOKEN_FIELDS))


# --- drafts ----------------------------------------------------------------------------------


def _seal(env: SyncEnv, draft: Draft, verifier: str | None = None) -> str:
    data: dict[str, Any] = {
        "values": draft.values,
        "secrets": draft.secrets,
        "description": draft.description,
    }
    if verifier:
        data["verifier"] = verifier
    return env.box.seal({"draft": orjson.dumps(data).decode()})


def _open(env: SyncEnv, row: Any) -> tuple[Draft, str | None]:
    data = orjson.loads(env.box.open(row.data)["draft"])
    draft = Draft(
        row.id,
        row.workspace_id,
        row.provider,
        row.source_id,
        data.get("values") or {},
        data.get("secrets") or {},
        data.get("description"),
    )
    return draft, data.get("verifier")


def save_draft(env: SyncEnv, session_id: str, draft: Draft) -> Draft:
    """Insert or update a draft owned by ``session_id``; a new draft gets its id here."""
    at = now_ms()
    with env.db.write() as conn:
        existing = store.get_draft(conn, draft.id, session_id, at) if draft.id else None
        if existing is None:
            draft.id = new_id()
            store.insert_draft(
                conn,
                {
                    "id": draft.id,
                    "session_id": session_id,
                    "workspace_id": draft.workspace_id,
                    "source_id": draft.source_id,
                    "provider": draft.provider,
                    "state_hash": None,
                    "data": _seal(env, draft),
                    "created_at": at,
                    "expires_at": at + DRAFT_MS,
                },
            )
        else:
            store.update_draft(
                conn, draft.id, {"provider": draft.provider, "data": _seal(env, draft), "state_hash": None}
            )
    return draft


def load_draft(env: SyncEnv, session_id: str, draft_id: str) -> Draft | None:
    """The session's draft, or None when it is unknown or expired (the form starts over)."""
    with env.db.read() as conn:
        row = store.get_draft(conn, draft_id, session_id, now_ms())
    return _open(env, row)[0] if row is not None else None


def drop_draft(env: SyncEnv, draft_id: str) -> None:
    with env.db.write() as conn:
        store.delete_draft(conn, draft_id)


def describe(env: SyncEnv, provider_name: str, config: dict[str, Any]) -> tuple[Description, dict[str, str]]:
    """Check a provider config that is not a source yet and describe its fields and lists.
    Returns the description and the credentials the provider rotated meanwhile."""
    provider = registry.get(provider_name)
    rotated: dict[str, str] = {}
    conn = provider.create(provider.parse_config(config), _context(env, rotated))
    try:
        conn.check()
        return conn.describe(), rotated
    finally:
        conn.close()


def description_of(data: dict[str, Any]) -> Description:
    """A description kept in a draft (``describe_json`` form) as the dataclass again."""
    return Description(
        [FieldInfo(**f) for f in data.get("fields", [])],
        [ListInfo(**li) for li in data.get("lists", [])],
        int(data.get("recordCount") or 0),
        str(data.get("userDb") or ""),
    )


# --- sign-in ---------------------------------------------------------------------------------


def _oauth_connector(env: SyncEnv, draft: Draft, secrets_out: dict[str, str]) -> _OAuthConnector:
    if not supports_sign_in(draft.provider):
        label = registry.get(draft.provider).label
        raise ConfigError(f"{label} has no OAuth sign-in: enter its credentials instead", code="E810")
    provider = registry.get(draft.provider)
    config = {**draft.values.get("options", {}), **draft.secrets}
    conn = provider.create(provider.parse_config(config), _context(env, secrets_out))
    if not callable(getattr(conn, "authorization_url", None)):
        conn.close()
        raise ConfigError(
            f"{provider.label} has no OAuth sign-in: enter its credentials instead", code="E810"
        )
    return conn  # type: ignore[return-value]


def begin(env: SyncEnv, session_id: str, draft: Draft) -> str:
    """Start a sign-in for a saved draft; returns the provider URL to send the browser to."""
    connector = _oauth_connector(env, draft, {})
    try:
        state = secrets.token_urlsafe(32)
        url, verifier = connector.authorization_url(state)
    finally:
        connector.close()
    at = now_ms()
    with env.db.write() as conn:
        if store.get_draft(conn, draft.id, session_id, at) is None:
            raise AuthError("the source form expired; fill it in again", code="E808")
        store.update_draft(
            conn,
            draft.id,
            {
                "state_hash": _hash(state),
                "data": _seal(env, draft, verifier),
                "expires_at": max(at + STATE_MS, at + DRAFT_MS),
            },
        )
    return url


def complete(env: SyncEnv, session_id: str, state: str, code: str | None, error: str | None = None) -> Draft:
    """Finish a sign-in: the draft now holds the provider's tokens (sealed)."""
    at = now_ms()
    with env.db.write() as conn:
        row = store.draft_by_state(conn, _hash(state), at) if state else None
        if row is None or row.session_id != session_id or at - row.created_at > DRAFT_MS:
            raise AuthError(
                "this sign-in answer matches no sign-in started from your console session", code="E808"
            )
        store.update_draft(conn, row.id, {"state_hash": None})  # single use
    draft, verifier = _open(env, row)
    if error or not code or not verifier:
        raise AuthError(f"the provider did not grant access ({error or 'no code'})", code="E809")
    received: dict[str, str] = {}
    connector = _oauth_connector(env, draft, received)
    try:
        connector.exchange_code(code, verifier)
    except AuthError as e:
        raise AuthError(f"the provider refused the sign-in: {e.message}", code="E809") from None
    finally:
        connector.close()
    draft.secrets.update(received)
    with env.db.write() as conn:
        store.update_draft(conn, draft.id, {"data": _seal(env, draft)})
    return draft
