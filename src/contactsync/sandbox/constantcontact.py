"""A Constant Contact v3 sandbox: the API and its authorization server, in memory.

Built from Constant Contact's public API reference and its official, OpenAPI-generated client
libraries (``constant-contact-api-client`` on PyPI, ``constant-contact-v3api-client-php``);
the facts it encodes are listed with their sources in ``shared/providers.md`` §4. It serves:

* the authorization server (``/oauth2/default/v1/authorize|token|revoke``): authorization code
  flow with PKCE (S256), single-use codes valid 5 minutes, client id/secret checks, access
  tokens with a configurable lifetime (24 h by default), refresh tokens that **rotate** (a used
  one is invalid afterwards; issuing tokens expires the earlier refresh tokens of the same app
  and account) or are long-lived, and expire after 180 idle days; revocation; 1 request/s;
* the API under ``/v3``: account summary, contacts (list with filters and cursor paging, create,
  get, replace, delete, ``sign_up_form`` upsert), custom fields, lists, and the bulk activities
  ``contacts_json_import``, ``add_list_memberships``, ``remove_list_memberships`` and
  ``contact_delete`` whose state moves ``initialized → processing → completed`` one step per poll,
  or all at once when ``activity_seconds`` have passed on the sandbox clock;
* the limits of a standard API key: 4 requests per second and 10,000 per day (429 with a
  ``Retry-After`` header: CC does not document one, the sandbox sends it so clients can be
  tested both ways — see ``retry_after``);
* fault injection: ``error_rate`` (a fraction of API requests answered 500/503 before they are
  processed) and ``burst_429`` (that many consecutive 429s), from a seeded RNG.

Errors have CC's shape, a JSON list of ``{"error_key", "error_message"}``; the authorization
server answers ``{"error", "error_description"}``. Where the reference is silent the sandbox
picks the stricter reading and says so (``[INFERRED]`` below).

Use :meth:`ConstantContactSandbox.transport` for an in-process ``httpx`` transport, or
:meth:`ConstantContactSandbox.serve` for a real HTTP server on loopback. The ``seed_contacts``,
``edit``, ``unsubscribe``, ``delete`` … helpers act as a person in CC's own UI would.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import random
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

JsonDict = dict[str, Any]

AUTH_PREFIX = "/oauth2/default/v1"
API_PREFIX = "/v3"
PERMISSIONS = ("explicit", "implicit", "not_set", "pending_confirmation", "temp_hold", "unsubscribed")
STATUS_FILTERS = frozenset({"all", "active", "deleted", *PERMISSIONS})
INCLUDES = frozenset(
    {"custom_fields", "list_memberships", "taggings", "notes", "phone_numbers", "street_addresses"}
)
SUBRESOURCES = ("custom_fields", "phone_numbers", "street_addresses", "list_memberships", "taggings", "notes")
TOP_LEVEL = (
    "first_name",
    "last_name",
    "job_title",
    "company_name",
    "birthday_month",
    "birthday_day",
    "anniversary",
)
MAX_LENGTHS = {"first_name": 50, "last_name": 50, "job_title": 50, "company_name": 50, "anniversary": 10}
IMPORT_COLUMNS = (
    "first_name",
    "last_name",
    "job_title",
    "company_name",
    "birthday_month",
    "birthday_day",
    "anniversary",
)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DAY = 86_400


class ManualClock:
    """A clock that only moves when told to: ``now()`` is epoch seconds, ``monotonic()`` the
    seconds since creation, ``sleep(s)`` advances it. Thread-safe."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._start = start
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._start + self._offset

    def monotonic(self) -> float:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += max(0.0, seconds)

    sleep = advance


@dataclass
class SandboxRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8")).items()}


@dataclass
class SandboxResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class LoggedRequest:
    at: float  # sandbox clock, epoch seconds
    method: str
    path: str
    query: str
    status: int
    client_id: str | None


class ApiError(Exception):
    """An error answer of the API (a JSON list of error objects)."""

    def __init__(self, status: int, key: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.key, self.message = status, key, message
        self.headers = dict(headers or {})


class OAuthError(Exception):
    """An error answer of the authorization server."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


@dataclass
class App:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    long_lived_refresh_tokens: bool = False


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scope: list[str]
    challenge: str | None
    expires_at: float
    used: bool = False


@dataclass
class _Token:
    client_id: str
    scope: list[str]
    grant: str
    expires_at: float
    revoked: bool = False


@dataclass
class _Refresh:
    client_id: str
    scope: list[str]
    grant: str
    last_used_at: float
    valid: bool = True


@dataclass
class _Activity:
    activity_id: str
    kind: str
    payload: JsonDict
    created_at: float
    state: str = "initialized"
    updated_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    status: JsonDict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def iso(ts: float) -> str:
    """CC's timestamp format: ISO 8601, UTC, second resolution."""
    return _iso_second(int(ts))


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> float:
    text = value.strip().replace(" ", "+")
    if len(text) == 10:
        text += "T00:00:00Z"
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of a code verifier."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


class ConstantContactSandbox:
    """One Constant Contact account behind one authorization server, in memory."""

    def __init__(
        self,
        *,
        now: Callable[[], float] | None = None,
        seed: int = 0,
        account_id: str = "a07e1ksandbox",
        organization_name: str = "Sandbox Org",
        access_token_ttl: float = 86_400.0,
        refresh_idle_ttl: float = 180 * DAY,
        code_ttl: float = 300.0,
        rate_limit_per_s: int = 4,
        daily_limit: int = 10_000,
        token_rate_limit_per_s: int = 1,
        retry_after: bool = True,
        error_rate: float = 0.0,
        burst_429: int = 0,
        burst_retry_after: float = 1.0,
        confirmed_opt_in: bool = False,
        activity_seconds: float = 2.0,
        import_max_rows: int = 40_000,
        import_max_bytes: int = 4 * 1024 * 1024,
        consent: bool = True,
    ) -> None:
        self.now: Callable[[], float] = now or time.time
        self.rng = random.Random(seed)
        self.account_id = account_id
        self.organization_name = organization_name
        self.access_token_ttl = access_token_ttl
        self.refresh_idle_ttl = refresh_idle_ttl
        self.code_ttl = code_ttl
        self.rate_limit_per_s = rate_limit_per_s
        self.daily_limit = daily_limit
        self.token_rate_limit_per_s = token_rate_limit_per_s
        self.retry_after = retry_after
        self.error_rate = error_rate
        self.burst_429 = burst_429
        self.burst_retry_after = burst_retry_after
        self.confirmed_opt_in = confirmed_opt_in
        self.activity_seconds = activity_seconds
        self.import_max_rows = import_max_rows
        self.import_max_bytes = import_max_bytes
        self.consent = consent  # False: the user refuses on the consent screen
        self.request_log: list[LoggedRequest] = []
        self.apps: dict[str, App] = {}
        self._lock = threading.RLock()
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, _Token] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._contacts: dict[str, JsonDict] = {}
        self._order: list[str] = []  # contact ids in creation order (a cursor's position)
        self._by_email: dict[str, str] = {}
        self._lists: dict[str, JsonDict] = {}
        self._custom_fields: dict[str, JsonDict] = {}
        self._activities: dict[str, _Activity] = {}
        self._recent: dict[str, deque[float]] = {}
        self._daily: dict[tuple[str, int], int] = {}
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., SandboxResponse]]] = [
            ("GET", re.compile(r"/account/summary/?"), self._get_account),
            ("GET", re.compile(r"/contacts/?"), self._list_contacts),
            ("POST", re.compile(r"/contacts/?"), self._create_contact),
            ("POST", re.compile(r"/contacts/sign_up_form/?"), self._sign_up_form),
            ("GET", re.compile(r"/contacts/(?P<cid>[^/]+)/?"), self._get_contact),
            ("PUT", re.compile(r"/contacts/(?P<cid>[^/]+)/?"), self._put_contact),
            ("DELETE", re.compile(r"/contacts/(?P<cid>[^/]+)/?"), self._delete_contact),
            ("GET", re.compile(r"/contact_custom_fields/?"), self._list_custom_fields),
            ("POST", re.compile(r"/contact_custom_fields/?"), self._create_custom_field),
            ("GET", re.compile(r"/contact_lists/?"), self._list_lists),
            ("POST", re.compile(r"/contact_lists/?"), self._create_list_api),
            ("GET", re.compile(r"/contact_lists/(?P<lid>[^/]+)/?"), self._get_list),
            ("POST", re.compile(r"/activities/contacts_json_import/?"), self._json_import),
            ("POST", re.compile(r"/activities/add_list_memberships/?"), self._add_memberships),
            ("POST", re.compile(r"/activities/remove_list_memberships/?"), self._remove_memberships),
            ("POST", re.compile(r"/activities/contact_delete/?"), self._contact_delete),
            ("GET", re.compile(r"/activities/?"), self._list_activities),
            ("GET", re.compile(r"/activities/(?P<aid>[^/]+)/?"), self._get_activity),
        ]

    # ------------------------------------------------------------------ setup and tokens

    def register_app(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: list[str],
        *,
        long_lived_refresh_tokens: bool = False,
    ) -> App:
        """Register an application (CC's "API key" with its secret and redirect URIs)."""
        with self._lock:
            app = App(client_id, client_secret, list(redirect_uris), long_lived_refresh_tokens)
            self.apps[client_id] = app
            return app

    def issue_tokens(
        self, client_id: str, scope: str = "account_read contact_data offline_access"
    ) -> dict[str, Any]:
        """Tokens as if the user had just authorized ``client_id`` (the OAuth dance skipped)."""
        with self._lock:
            return self._grant(client_id, scope.split(), grant=uuid.uuid4().hex)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires now."""
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = min(token.expires_at, self.now())

    def refresh_token_valid(self, refresh_token: str) -> bool:
        with self._lock:
            info = self._refresh.get(refresh_token)
            return bool(info and info.valid and self.now() - info.last_used_at < self.refresh_idle_ttl)

    def access_token_valid(self, access_token: str) -> bool:
        with self._lock:
            info = self._tokens.get(access_token)
            return bool(info and not info.revoked and self.now() < info.expires_at)

    # ------------------------------------------------------------------ transports

    def transport(self) -> httpx.BaseTransport:
        """An in-process, zero-latency transport for an ``httpx.Client``."""
        return _Transport(self)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> ServedSandbox:
        """Run the same handler as a real HTTP server on ``host:port`` (0 = a free port)."""
        return ServedSandbox(self, host, port)

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        """Answer one request (both transports call this)."""
        with self._lock:
            self._tick()
            client_id: str | None = None
            try:
                if request.path.startswith(AUTH_PREFIX + "/"):
                    response = self._handle_auth(request)
                elif request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
                    client_id, response = self._handle_api(request)
                else:
                    raise ApiError(404, "http.status.not_found", "The requested resource was not found.")
            except ApiError as e:
                response = _error(e)
            except OAuthError as e:
                response = _oauth_error(e)
            self.request_log.append(
                LoggedRequest(
                    self.now(),
                    request.method,
                    request.path,
                    urlencode(request.query, doseq=True),
                    response.status,
                    client_id,
                )
            )
            return response

    # ------------------------------------------------------------------ request log

    def api_requests(self) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.request_log if r.path.startswith(API_PREFIX)]

    def max_requests_per_window(self, window: float = 1.0, *, api_only: bool = True) -> int:
        """The most requests seen in any ``window`` seconds (the sliding-window count)."""
        log = self.api_requests() if api_only else list(self.request_log)
        best, start = 0, 0
        for end, entry in enumerate(log):
            while entry.at - log[start].at >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    # ------------------------------------------------------------------ as a user in CC's UI

    def create_list(self, name: str, description: str | None = None) -> str:
        with self._lock:
            return str(self._new_list({"name": name, "description": description})["list_id"])

    def create_custom_field(self, label: str, type_: str = "string") -> str:
        with self._lock:
            return str(self._new_custom_field({"label": label, "type": type_})["custom_field_id"])

    def seed_contacts(self, rows: list[JsonDict]) -> list[str]:
        """Create contacts as the account owner would (``create_source: Account``). A row holds
        ``email_address`` (a string or CC's object), contact properties, and optionally
        ``permission_to_send``, ``list_memberships`` and ``custom_fields``."""
        with self._lock:
            ids = []
            for row in rows:
                body = dict(row)
                email = body.pop("email_address", None)
                permission = body.pop("permission_to_send", "implicit")
                if isinstance(email, str):
                    email = {"address": email, "permission_to_send": permission}
                if email is not None:
                    body["email_address"] = email
                body["create_source"] = "Account"
                ids.append(str(self._create(body, source="Account")["contact_id"]))
            return ids

    def edit(self, contact_id: str, **changes: Any) -> None:
        """Change contact properties (a person editing the contact in CC's UI)."""
        with self._lock:
            contact = self._contact(contact_id)
            for name, value in changes.items():
                if name == "email_address":
                    self._change_email(contact, str(value))
                elif name in SUBRESOURCES:
                    contact[name] = list(value or [])
                else:
                    contact[name] = value
            self._touch(contact, "Account")

    def unsubscribe(self, contact_id: str, *, reason: str | None = None, source: str = "Contact") -> None:
        """The person opts out (account-wide: CC's unsubscribe covers every list)."""
        with self._lock:
            contact = self._contact(contact_id)
            self._set_permission(contact, "unsubscribed", source, reason)
            self._touch(contact, source)

    def set_permission(self, contact_id: str, permission: str, *, source: str = "Account") -> None:
        with self._lock:
            contact = self._contact(contact_id)
            self._set_permission(contact, permission, source, None)
            self._touch(contact, source)

    def add_to_list(self, contact_id: str, list_id: str) -> None:
        with self._lock:
            contact = self._contact(contact_id)
            if list_id not in contact["list_memberships"]:
                contact["list_memberships"].append(list_id)
            self._touch(contact, "Account")

    def remove_from_list(self, contact_id: str, list_id: str) -> None:
        with self._lock:
            contact = self._contact(contact_id)
            if list_id in contact["list_memberships"]:
                contact["list_memberships"].remove(list_id)
            self._touch(contact, "Account")

    def delete(self, contact_id: str) -> None:
        with self._lock:
            self._delete(self._contact(contact_id))

    def contact(self, contact_id: str, *, include_deleted: bool = True) -> JsonDict | None:
        """The contact as ``GET /contacts/{id}?include=<everything>`` shows it (None if absent)."""
        with self._lock:
            self._tick()
            contact = self._contacts.get(contact_id)
            if contact is None or (contact.get("deleted_at") and not include_deleted):
                return None
            return self._render(contact, INCLUDES)

    def find(self, email: str) -> JsonDict | None:
        with self._lock:
            cid = self._by_email.get(email.strip().lower())
            return self.contact(cid) if cid else None

    def contacts(self, *, include_deleted: bool = False) -> list[JsonDict]:
        with self._lock:
            self._tick()
            return [
                self._render(c, INCLUDES)
                for c in self._contacts.values()
                if include_deleted or not c.get("deleted_at")
            ]

    def list_ids(self) -> list[str]:
        with self._lock:
            return list(self._lists)

    def custom_field_names(self) -> dict[str, str]:
        """custom_field_id → name."""
        with self._lock:
            return {k: str(v["name"]) for k, v in self._custom_fields.items()}

    def activity(self, activity_id: str) -> JsonDict:
        with self._lock:
            self._tick()
            return self._render_activity(self._activities[activity_id])

    # ------------------------------------------------------------------ authorization server

    def _handle_auth(self, req: SandboxRequest) -> SandboxResponse:
        name = req.path[len(AUTH_PREFIX) + 1 :].rstrip("/")
        if name == "authorize" and req.method == "GET":
            return self._authorize(req)
        if name in ("token", "revoke") and req.method == "POST":
            self._token_rate_limit()
            if name == "token":
                return self._token(req)
            return self._revoke(req)
        raise OAuthError(404, "not_found", "The requested resource was not found.")

    def _authorize(self, req: SandboxRequest) -> SandboxResponse:
        app = self.apps.get(req.arg("client_id") or "")
        if app is None:
            raise OAuthError(400, "invalid_client", "The client_id is not registered.")
        redirect_uri = req.arg("redirect_uri") or ""
        if redirect_uri not in app.redirect_uris:
            raise OAuthError(
                400,
                "invalid_request",
                "The 'redirect_uri' parameter must be a Login redirect URI in the client app settings.",
            )
        state = req.arg("state")

        def back(params: dict[str, str]) -> SandboxResponse:
            if state is not None:
                params["state"] = state
            sep = "&" if "?" in redirect_uri else "?"
            return SandboxResponse(302, {"location": f"{redirect_uri}{sep}{urlencode(params)}"})

        if req.arg("response_type") != "code":
            return back(
                {"error": "unsupported_response_type", "error_description": "response_type must be code"}
            )
        scope = (req.arg("scope") or "").split()
        known = {"account_read", "account_update", "contact_data", "campaign_data", "offline_access"}
        if not scope or not set(scope) <= known:
            return back(
                {"error": "invalid_scope", "error_description": "One or more scopes are not configured."}
            )
        challenge = req.arg("code_challenge")
        if challenge is not None and req.arg("code_challenge_method") != "S256":
            return back(
                {"error": "invalid_request", "error_description": "code_challenge_method must be S256."}
            )
        if not self.consent:
            return back(
                {"error": "access_denied", "error_description": "The resource owner denied the request."}
            )
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Code(app.client_id, redirect_uri, scope, challenge, self.now() + self.code_ttl)
        return back({"code": code})

    def _client(self, req: SandboxRequest, form: Mapping[str, str]) -> tuple[App, bool]:
        """The calling app, and whether it authenticated with its secret."""
        header = req.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            except ValueError:
                client_id, secret = "", ""
            app = self.apps.get(client_id)
            if app is None or not secrets.compare_digest(app.client_secret, secret):
                raise OAuthError(
                    401,
                    "invalid_client",
                    "Client authentication failed. Either the client or the client credentials are invalid.",
                )
            return app, True
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            raise OAuthError(401, "invalid_client", "Client authentication failed.")
        return app, False

    def _token(self, req: SandboxRequest) -> SandboxResponse:
        form = req.form()
        app, authenticated = self._client(req, form)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code = self._codes.get(form.get("code", ""))
            if code is None or code.used or code.client_id != app.client_id or self.now() >= code.expires_at:
                raise OAuthError(400, "invalid_grant", "The authorization code is invalid or has expired.")
            if form.get("redirect_uri") != code.redirect_uri:
                raise OAuthError(
                    400,
                    "invalid_grant",
                    "The 'redirect_uri' does not match the redirection URI of the authorization request.",
                )
            if code.challenge is not None:
                verifier = form.get("code_verifier", "")
                if not re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier):
                    raise OAuthError(400, "invalid_request", "The code_verifier is missing or malformed.")
                if not secrets.compare_digest(s256(verifier), code.challenge):
                    raise OAuthError(400, "invalid_grant", "PKCE verification failed.")
            elif not authenticated:
                raise OAuthError(401, "invalid_client", "Client authentication failed.")
            code.used = True
            return _json(200, self._grant(app.client_id, code.scope, grant=uuid.uuid4().hex))
        if grant_type == "refresh_token":
            token = form.get("refresh_token", "")
            info = self._refresh.get(token)
            if (
                info is None
                or not info.valid
                or info.client_id != app.client_id
                or self.now() - info.last_used_at >= self.refresh_idle_ttl
            ):
                raise OAuthError(400, "invalid_grant", "The refresh token is invalid or expired.")
            if app.long_lived_refresh_tokens:
                info.last_used_at = self.now()
                body = self._grant(app.client_id, info.scope, grant=info.grant, with_refresh=False)
                body["refresh_token"] = token
                return _json(200, body)
            info.valid = False
            return _json(200, self._grant(app.client_id, info.scope, grant=info.grant))
        raise OAuthError(400, "unsupported_grant_type", f"The grant type {grant_type!r} is not supported.")

    def _grant(self, client_id: str, scope: list[str], *, grant: str, with_refresh: bool = True) -> JsonDict:
        now = self.now()
        payload = {
            "ver": 1,
            "jti": uuid.uuid4().hex,
            "iss": "https://identity.constantcontact.com/oauth2/aus1lm3ry9mF7x2Ja0h8",
            "aud": "https://api.cc.email/v3",
            "iat": int(now),
            "exp": int(now + self.access_token_ttl),
            "cid": client_id,
            "scp": scope,
            "platform_user_id": self.account_id,
        }
        header = _b64(json.dumps({"kid": "sandbox", "alg": "RS256"}).encode())
        access = f"{header}.{_b64(json.dumps(payload).encode())}.{_b64(secrets.token_bytes(32))}"
        self._tokens[access] = _Token(client_id, scope, grant, now + self.access_token_ttl)
        body: JsonDict = {
            "token_type": "Bearer",
            "expires_in": int(self.access_token_ttl),
            "access_token": access,
            "scope": " ".join(scope),
        }
        if with_refresh and "offline_access" in scope:
            app = self.apps.get(client_id)
            if app is not None and not app.long_lived_refresh_tokens:
                for old in self._refresh.values():  # issuing tokens expires the earlier refresh tokens
                    if old.client_id == client_id:
                        old.valid = False
            refresh = secrets.token_urlsafe(32)
            self._refresh[refresh] = _Refresh(client_id, scope, grant, now)
            body["refresh_token"] = refresh
        return body

    def _revoke(self, req: SandboxRequest) -> SandboxResponse:
        form = req.form()
        app, _ = self._client(req, form)
        token = form.get("token", "")
        if not token:
            raise OAuthError(400, "invalid_request", "The token parameter is required.")
        refresh = self._refresh.get(token)
        if refresh is not None and refresh.client_id == app.client_id:
            refresh.valid = False  # and every access token of the same grant
            for access in self._tokens.values():
                if access.grant == refresh.grant:
                    access.revoked = True
        access_info = self._tokens.get(token)
        if access_info is not None and access_info.client_id == app.client_id:
            access_info.revoked = True
        return SandboxResponse(200)

    def _token_rate_limit(self) -> None:
        now = self.now()
        recent = [
            r
            for r in self.request_log
            if r.path.startswith(AUTH_PREFIX + "/") and r.method == "POST" and now - r.at < 1.0
        ]
        if len(recent) >= self.token_rate_limit_per_s:
            raise OAuthError(429, "too_many_requests", "The token endpoint allows 1 request per second.")

    # ------------------------------------------------------------------ API plumbing

    def _handle_api(self, req: SandboxRequest) -> tuple[str | None, SandboxResponse]:
        header = req.headers.get("authorization", "")
        bearer = header[7:].strip() if header.lower().startswith("bearer ") else ""
        token = self._tokens.get(bearer)
        if token is None or token.revoked or self.now() >= token.expires_at:
            raise ApiError(401, "unauthorized", "The access token used is invalid.")
        client_id = token.client_id
        try:
            return client_id, self._route(req, token, client_id)
        except ApiError as e:
            return client_id, _error(e)

    def _route(self, req: SandboxRequest, token: _Token, client_id: str) -> SandboxResponse:
        self._rate_limit(client_id)
        if self.burst_429 > 0:
            self.burst_429 -= 1
            raise ApiError(
                429,
                "http.status.too_many_requests",
                "Too many requests. Please try again later.",
                {"retry-after": _seconds(self.burst_retry_after)},
            )
        if self.error_rate > 0 and self.rng.random() < self.error_rate:
            status = self.rng.choice((500, 503))
            key = "http.status.internal_server_error" if status == 500 else "http.status.service_unavailable"
            raise ApiError(status, key, "The server encountered an error. Please try again.")
        path = req.path[len(API_PREFIX) :] or "/"
        allowed: list[str] = []
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method != req.method:
                allowed.append(method)
                continue
            scope = "account_read" if path.startswith("/account") else "contact_data"
            if scope not in token.scope and not (scope == "account_read" and "account_update" in token.scope):
                raise ApiError(
                    403,
                    "http.status.forbidden",
                    "Forbidden request. You lack the necessary scopes, you lack the necessary user "
                    "privileges, or the application is deactivated.",
                )
            return handler(req, **match.groupdict())
        if allowed:
            raise ApiError(
                405,
                "http.status.method_not_allowed",
                "The requested resource does not support the method used.",
            )
        raise ApiError(404, "http.status.not_found", "The requested resource was not found.")

    def _rate_limit(self, client_id: str) -> None:
        """Per API key: ``rate_limit_per_s`` in any second, ``daily_limit`` per UTC day. Every
        request counts, the refused ones too."""
        now = self.now()
        recent = self._recent.setdefault(client_id, deque())
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        day = int(now // DAY)
        over_second = len(recent) >= self.rate_limit_per_s
        used_today = self._daily.get((client_id, day), 0)
        recent.append(now)
        self._daily[(client_id, day)] = used_today + 1
        if over_second:
            raise ApiError(
                429,
                "http.status.too_many_requests",
                f"Too many requests. The limit is {self.rate_limit_per_s} requests per second per API key.",
                {"retry-after": "1"} if self.retry_after else {},
            )
        if used_today >= self.daily_limit:
            raise ApiError(
                429,
                "http.status.too_many_requests",
                f"Too many requests. The limit is {self.daily_limit} requests per day per API key.",
                {"retry-after": _seconds((day + 1) * DAY - now)} if self.retry_after else {},
            )

    # ------------------------------------------------------------------ account

    def _get_account(self, req: SandboxRequest) -> SandboxResponse:
        return _json(
            200,
            {
                "contact_email": "owner@example.com",
                "contact_phone": "5555550100",
                "country_code": "US",
                "encoded_account_id": self.account_id,
                "first_name": "Sandbox",
                "last_name": "Owner",
                "organization_name": self.organization_name,
                "organization_phone": "5555550100",
                "state_code": "MA",
                "time_zone_id": "US/Eastern",
                "website": "https://example.com",
            },
        )

    # ------------------------------------------------------------------ contacts

    def _list_contacts(self, req: SandboxRequest) -> SandboxResponse:
        cursor = req.arg("cursor")
        if cursor is not None:
            try:
                state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
                query: dict[str, str] = state["q"]
                after = int(state["after"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "contacts.api.bad.request", "The cursor is invalid.") from None
        else:
            query = {k: v[0] for k, v in req.query.items()}
            after = -1
        limit = _int_arg(query.get("limit"), "limit", 50)
        if not 1 <= limit <= 500:
            raise ApiError(400, "contacts.api.validation.error", "limit must be between 1 and 500.")
        include = _includes(query.get("include"))
        matches = self._matcher(query)
        page: list[JsonDict] = []
        position = after + 1
        while position < len(self._order) and len(page) < limit:
            contact = self._contacts[self._order[position]]
            if matches(contact):
                page.append(contact)
            position += 1
        body: JsonDict = {"contacts": [self._render(c, include) for c in page]}
        if query.get("include_count") == "true":
            body["contacts_count"] = sum(1 for c in self._contacts.values() if matches(c))
        more = any(matches(self._contacts[cid]) for cid in self._order[position:])
        if page and more:
            token = _b64(json.dumps({"q": query, "after": position - 1}).encode())
            body["_links"] = {"next": {"href": f"/v3/contacts?cursor={token}"}}
        return _json(200, body)

    def _matcher(self, query: Mapping[str, str]) -> Callable[[JsonDict], bool]:
        statuses = set((query.get("status") or "").split(",")) - {""}
        if not statuses <= STATUS_FILTERS:
            raise ApiError(
                400,
                "contacts.api.validation.error",
                f"status must be one of {', '.join(sorted(STATUS_FILTERS))}.",
            )
        bounds: dict[str, float] = {}
        for name in (
            "updated_after",
            "updated_before",
            "created_after",
            "created_before",
            "optout_after",
            "optout_before",
        ):
            if query.get(name):
                try:
                    bounds[name] = parse_iso(query[name])
                except ValueError:
                    raise ApiError(
                        400, "contacts.api.validation.error", f"{name} must be an ISO-8601 date."
                    ) from None
        email = (query.get("email") or "").strip().lower()
        lists = set((query.get("lists") or "").split(",")) - {""}
        if len(lists) > 25:
            raise ApiError(400, "contacts.api.validation.error", "lists accepts at most 25 list ids.")

        def matches(contact: JsonDict) -> bool:
            email_address = contact.get("email_address") or {}
            permission = email_address.get("permission_to_send", "not_set")
            deleted = bool(contact.get("deleted_at"))
            if not statuses:
                keep = not deleted
            elif "all" in statuses:
                keep = True
            else:
                keep = ("deleted" in statuses and deleted) or (
                    not deleted
                    and (permission in statuses or ("active" in statuses and permission != "unsubscribed"))
                )
            if not keep:
                return False
            if email and email_address.get("address", "").lower() != email:
                return False
            if lists and not lists & set(contact["list_memberships"]):
                return False
            if not _within(contact["_updated"], bounds.get("updated_after"), bounds.get("updated_before")):
                return False
            if not _within(contact["_created"], bounds.get("created_after"), bounds.get("created_before")):
                return False
            if "optout_after" in bounds or "optout_before" in bounds:
                opt_out = contact.get("_opt_out")
                return opt_out is not None and _within(
                    opt_out, bounds.get("optout_after"), bounds.get("optout_before")
                )
            return True

        return matches

    def _create_contact(self, req: SandboxRequest) -> SandboxResponse:
        body = _object_body(req)
        if body.get("create_source") not in ("Contact", "Account"):
            raise ApiError(
                400, "contacts.api.validation.error", "create_source is required: Contact or Account."
            )
        if not any(body.get(k) for k in ("first_name", "last_name", "email_address", "sms_channel")):
            raise ApiError(
                400,
                "contacts.api.validation.error",
                "At least one of first_name, last_name, email_address or sms_channel is required.",
            )
        email = body.get("email_address")
        if email is not None:
            if not isinstance(email, dict) or not isinstance(email.get("address"), str):
                raise ApiError(400, "contacts.api.validation.error", "email_address.address is required.")
            existing = self._by_email.get(email["address"].strip().lower())
            if existing is not None:
                raise ApiError(409, "contacts.api.conflict", f"Email already exists for contact {existing}.")
        contact = self._create(body, source=str(body["create_source"]))
        return _json(201, self._render(contact, INCLUDES))

    def _sign_up_form(self, req: SandboxRequest) -> SandboxResponse:
        body = _object_body(req)
        lists = body.get("list_memberships")
        if not isinstance(lists, list) or not 1 <= len(lists) <= 50:
            raise ApiError(
                400, "contacts.api.validation.error", "list_memberships must hold 1 to 50 list ids."
            )
        self._check_lists(lists)
        address = body.get("email_address")
        if not isinstance(address, str) or not address:
            raise ApiError(400, "contacts.api.validation.error", "email_address is required.")
        self._validate_email(address)
        fields = {k: body[k] for k in TOP_LEVEL if k in body}
        self._validate_fields(fields)
        custom = self._custom_values(body.get("custom_fields") or [])
        cid = self._by_email.get(address.strip().lower())
        if cid is None:
            permission = "pending_confirmation" if self.confirmed_opt_in else "explicit"
            new = {
                **fields,
                "email_address": {"address": address, "permission_to_send": permission},
                "list_memberships": list(dict.fromkeys(lists)),
                "custom_fields": custom,
            }
            if body.get("phone_number"):
                new["phone_numbers"] = [{"phone_number": body["phone_number"], "kind": "other"}]
            contact = self._create(new, source="Contact")
            return _json(201, {"contact_id": contact["contact_id"], "action": "created"})
        contact = self._contacts[cid]
        contact.update(fields)  # a partial update: only the properties sent change
        for cf in custom:
            self._merge_custom(contact, cf)
        for list_id in lists:
            if list_id not in contact["list_memberships"]:
                contact["list_memberships"].append(list_id)
        if body.get("phone_number"):
            phones = contact["phone_numbers"]
            if phones:
                phones[0]["phone_number"] = body["phone_number"]
            else:
                phones.append({"phone_number": body["phone_number"], "kind": "other"})
        contact["deleted_at"] = None  # updating a deleted contact restores it
        self._set_permission(contact, "explicit", "Contact", None)  # updated contacts become explicit
        self._touch(contact, "Contact")
        return _json(200, {"contact_id": cid, "action": "updated"})

    def _get_contact(self, req: SandboxRequest, cid: str) -> SandboxResponse:
        contact = self._api_contact(cid)
        return _json(200, self._render(contact, _includes(req.arg("include"))))

    def _put_contact(self, req: SandboxRequest, cid: str) -> SandboxResponse:
        contact = self._api_contact(cid)
        body = _object_body(req)
        source = body.get("update_source")
        if source not in ("Contact", "Account"):
            raise ApiError(
                400, "contacts.api.validation.error", "update_source is required: Contact or Account."
            )
        fields = {k: body.get(k) for k in TOP_LEVEL}  # omitted top-level properties become null
        self._validate_fields({k: v for k, v in fields.items() if v is not None})
        email = body.get("email_address")
        if email is not None:
            if not isinstance(email, dict) or not isinstance(email.get("address"), str):
                raise ApiError(400, "contacts.api.validation.error", "email_address.address is required.")
            self._validate_email(email["address"])
            other = self._by_email.get(email["address"].strip().lower())
            if other is not None and other != cid:
                raise ApiError(409, "contacts.api.conflict", f"Email already exists for contact {other}.")
            permission = email.get("permission_to_send")
            if permission is not None and permission not in PERMISSIONS:
                raise ApiError(
                    400,
                    "contacts.api.validation.error",
                    f"permission_to_send must be one of {', '.join(PERMISSIONS)}.",
                )
        if "list_memberships" in body:
            self._check_lists(body["list_memberships"] or [])
        custom = self._custom_values(body["custom_fields"] or []) if "custom_fields" in body else None
        contact.update(fields)
        if email is not None:
            self._change_email(contact, email["address"])
            if email.get("permission_to_send"):
                self._set_permission(
                    contact, email["permission_to_send"], source, email.get("opt_out_reason")
                )
        if custom is not None:
            contact["custom_fields"] = custom
        for name in ("phone_numbers", "street_addresses", "list_memberships", "taggings", "notes"):
            if name in body:  # sub-resources are replaced when sent, kept when omitted
                contact[name] = list(body[name] or [])
        if contact.get("deleted_at"):
            contact["deleted_at"] = None  # a PUT revives a deleted contact
        self._touch(contact, source)
        return _json(200, self._render(contact, INCLUDES))

    def _delete_contact(self, req: SandboxRequest, cid: str) -> SandboxResponse:
        self._delete(self._api_contact(cid))
        return SandboxResponse(204)

    # ------------------------------------------------------------------ custom fields and lists

    def _list_custom_fields(self, req: SandboxRequest) -> SandboxResponse:
        return _json(200, {"custom_fields": [_public(cf) for cf in self._custom_fields.values()]})

    def _create_custom_field(self, req: SandboxRequest) -> SandboxResponse:
        return _json(201, _public(self._new_custom_field(_object_body(req))))

    def _new_custom_field(self, body: Mapping[str, Any]) -> JsonDict:
        label = body.get("label")
        if not isinstance(label, str) or not 1 <= len(label) <= 50:
            raise ApiError(400, "contacts.api.validation.error", "label is required (at most 50 characters).")
        kind = body.get("type", "string")
        if kind not in ("string", "date"):
            raise ApiError(400, "contacts.api.validation.error", "type must be string or date.")
        name = re.sub(r"\s+", "_", label.strip())
        if any(cf["name"] == name for cf in self._custom_fields.values()):
            raise ApiError(409, "contacts.api.conflict", f"A custom field named {name} already exists.")
        if len(self._custom_fields) >= 100:
            raise ApiError(
                400, "contacts.api.validation.error", "An account can have at most 100 custom fields."
            )
        now = iso(self.now())
        cf = {
            "custom_field_id": str(uuid.uuid4()),
            "label": label,
            "name": name,
            "type": kind,
            "created_at": now,
            "updated_at": now,
        }
        self._custom_fields[cf["custom_field_id"]] = cf
        return cf

    def _list_lists(self, req: SandboxRequest) -> SandboxResponse:
        limit = _int_arg(req.arg("limit"), "limit", 50)
        if not 1 <= limit <= 1000:
            raise ApiError(400, "contacts.api.validation.error", "limit must be between 1 and 1000.")
        lists = list(self._lists.values())
        after = _int_arg(req.arg("cursor"), "cursor", 0)
        page = lists[after : after + limit]
        body: JsonDict = {"lists": [self._render_list(x, req.arg("include_membership_count")) for x in page]}
        if req.arg("include_count") == "true":
            body["lists_count"] = len(lists)
        if after + limit < len(lists):
            body["_links"] = {"next": {"href": f"/v3/contact_lists?limit={limit}&cursor={after + limit}"}}
        return _json(200, body)

    def _render_list(self, item: JsonDict, membership: str | None) -> JsonDict:
        out = _public(item)
        if membership in ("active", "all"):
            members = [
                c
                for c in self._contacts.values()
                if item["list_id"] in c["list_memberships"] and not c.get("deleted_at")
            ]
            if membership == "active":
                members = [c for c in members if c["email_address"]["permission_to_send"] != "unsubscribed"]
            out["membership_count"] = len(members)
        return out

    def _create_list_api(self, req: SandboxRequest) -> SandboxResponse:
        return _json(201, _public(self._new_list(_object_body(req))))

    def _new_list(self, body: Mapping[str, Any]) -> JsonDict:
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise ApiError(400, "contacts.api.validation.error", "name is required (at most 255 characters).")
        if any(x["name"] == name for x in self._lists.values()):
            raise ApiError(409, "contacts.api.conflict", f"A list named {name} already exists.")
        if len(self._lists) >= 1000:
            raise ApiError(400, "contacts.api.validation.error", "An account can have at most 1000 lists.")
        now = iso(self.now())
        item: JsonDict = {
            "list_id": str(uuid.uuid4()),
            "name": name,
            "description": body.get("description"),
            "favorite": bool(body.get("favorite", False)),
            "created_at": now,
            "updated_at": now,
        }
        self._lists[item["list_id"]] = item
        return item

    def _get_list(self, req: SandboxRequest, lid: str) -> SandboxResponse:
        item = self._lists.get(lid)
        if item is None:
            raise ApiError(404, "contacts.api.not_found", f"List {lid} was not found.")
        return _json(200, self._render_list(item, req.arg("include_membership_count")))

    # ------------------------------------------------------------------ bulk activities

    def _json_import(self, req: SandboxRequest) -> SandboxResponse:
        if len(req.body) > self.import_max_bytes:
            raise ApiError(
                413,
                "http.status.request_entity_too_large",
                f"The request body exceeds the {self.import_max_bytes // (1024 * 1024)} MB maximum.",
            )
        body = _object_body(req)
        rows = body.get("import_data")
        if not isinstance(rows, list) or not rows:
            raise ApiError(
                400, "contacts.api.validation.error", "import_data must hold at least one contact."
            )
        if len(rows) > self.import_max_rows:
            raise ApiError(
                400,
                "contacts.api.validation.error",
                f"import_data holds {len(rows)} contacts; the maximum is {self.import_max_rows}.",
            )
        lists = body.get("list_ids")
        if not isinstance(lists, list) or not 1 <= len(lists) <= 50:
            raise ApiError(400, "contacts.api.validation.error", "list_ids must hold 1 to 50 list ids.")
        self._check_lists(lists)
        status = {
            "items_total_count": len(rows),
            "items_completed_count": 0,
            "person_count": 0,
            "error_count": 0,
            "correctable_count": 0,
            "cannot_add_to_list_count": 0,
        }
        return self._start("add_contacts", body, status)

    def _membership_activity(self, req: SandboxRequest, kind: str) -> SandboxResponse:
        body = _object_body(req)
        targets = body.get("list_ids")
        if not isinstance(targets, list) or not 1 <= len(targets) <= 50:
            raise ApiError(400, "contacts.api.validation.error", "list_ids must hold 1 to 50 list ids.")
        self._check_lists(targets)
        source = body.get("source")
        if not isinstance(source, dict) or len([k for k, v in source.items() if v]) != 1:
            raise ApiError(
                400, "contacts.api.validation.error", "source must name exactly one kind of contacts."
            )
        if len(source.get("contact_ids") or []) > 500 or len(source.get("list_ids") or []) > 50:
            raise ApiError(
                400, "contacts.api.validation.error", "source holds at most 500 contact_ids or 50 list_ids."
            )
        members = self._source_contacts(source, body.get("exclude") or {})
        status = {"items_total_count": len(members), "items_completed_count": 0, "list_count": len(targets)}
        return self._start(kind, {**body, "_members": members}, status)

    def _add_memberships(self, req: SandboxRequest) -> SandboxResponse:
        return self._membership_activity(req, "add_list_memberships")

    def _remove_memberships(self, req: SandboxRequest) -> SandboxResponse:
        return self._membership_activity(req, "remove_list_memberships")

    def _contact_delete(self, req: SandboxRequest) -> SandboxResponse:
        body = _object_body(req)
        ids, lists = body.get("contact_ids"), body.get("list_ids")
        if bool(ids) == bool(lists):
            raise ApiError(400, "contacts.api.validation.error", "Send either contact_ids or list_ids.")
        if len(ids or []) > 500 or len(lists or []) > 50:
            raise ApiError(400, "contacts.api.validation.error", "At most 500 contact_ids or 50 list_ids.")
        source = {"contact_ids": ids} if ids else {"list_ids": lists}
        members = self._source_contacts(source, {})
        status = {"items_total_count": len(members), "items_completed_count": 0}
        if lists:
            status["list_count"] = len(lists)
        return self._start("contact_delete", {**body, "_members": members}, status)

    def _source_contacts(self, source: Mapping[str, Any], exclude: Mapping[str, Any]) -> list[str]:
        if source.get("contact_ids"):
            members = [str(c) for c in source["contact_ids"]]
        elif source.get("list_ids"):
            wanted = set(source["list_ids"])
            members = [
                c["contact_id"]
                for c in self._contacts.values()
                if wanted & set(c["list_memberships"]) and not c.get("deleted_at")
            ]
        elif source.get("all_active_contacts"):
            members = [
                c["contact_id"]
                for c in self._contacts.values()
                if not c.get("deleted_at") and c["email_address"]["permission_to_send"] != "unsubscribed"
            ]
        else:
            raise ApiError(
                400, "contacts.api.validation.error", "This source is not supported by the sandbox."
            )
        excluded = set(exclude.get("contact_ids") or [])
        return [m for m in members if m not in excluded]

    def _start(self, kind: str, payload: JsonDict, status: JsonDict) -> SandboxResponse:
        now = self.now()
        activity = _Activity(str(uuid.uuid4()), kind, payload, now, updated_at=now, status=status)
        self._activities[activity.activity_id] = activity
        return _json(201, self._render_activity(activity))

    def _get_activity(self, req: SandboxRequest, aid: str) -> SandboxResponse:
        activity = self._activities.get(aid)
        if activity is None:
            raise ApiError(404, "activities.api.not_found", f"Activity {aid} was not found.")
        if activity.state == "initialized":  # each poll moves it one step
            self._advance(activity, "processing")
        elif activity.state == "processing":
            self._advance(activity, "completed")
        return _json(200, self._render_activity(activity))

    def _list_activities(self, req: SandboxRequest) -> SandboxResponse:
        state = req.arg("state")
        found = [a for a in self._activities.values() if state is None or a.state == state]
        return _json(200, {"activities": [self._render_activity(a) for a in found]})

    def _tick(self) -> None:
        """Complete the activities whose time has come."""
        now = self.now()
        for activity in self._activities.values():
            if (
                activity.state in ("initialized", "processing")
                and now - activity.created_at >= self.activity_seconds
            ):
                self._advance(activity, "completed")

    def _advance(self, activity: _Activity, state: str) -> None:
        now = self.now()
        if activity.started_at is None:
            activity.started_at = now
        if state == "completed":
            self._run(activity)
            activity.completed_at = now
        activity.state = state
        activity.updated_at = now

    def _run(self, activity: _Activity) -> None:
        status = activity.status
        if activity.kind == "add_contacts":
            self._run_import(activity)
        elif activity.kind in ("add_list_memberships", "remove_list_memberships"):
            targets = list(activity.payload["list_ids"])
            for cid in activity.payload["_members"]:
                contact = self._contacts.get(cid)
                if contact is None or contact.get("deleted_at"):
                    continue
                memberships = contact["list_memberships"]
                before = list(memberships)
                if activity.kind == "add_list_memberships":
                    memberships.extend(t for t in targets if t not in memberships)
                else:
                    contact["list_memberships"] = [m for m in memberships if m not in targets]
                if contact["list_memberships"] != before:
                    self._touch(contact, "Account")
                status["items_completed_count"] += 1
        elif activity.kind == "contact_delete":
            for cid in activity.payload["_members"]:
                contact = self._contacts.get(cid)
                if contact is None:
                    activity.errors.append(f"Contact {cid} was not found.")
                    continue
                self._delete(contact)
                status["items_completed_count"] += 1

    def _run_import(self, activity: _Activity) -> None:
        status = activity.status
        lists = list(activity.payload["list_ids"])
        names = {cf["name"]: cf["custom_field_id"] for cf in self._custom_fields.values()}
        for line, row in enumerate(activity.payload["import_data"], start=1):
            status["items_completed_count"] += 1
            if not isinstance(row, dict):
                status["error_count"] += 1
                activity.errors.append(f"Line {line}: not a contact object.")
                continue
            email = row.get("email")
            if not isinstance(email, str) or not EMAIL_RE.match(email) or len(email) > 80:
                status["correctable_count"] += 1
                activity.errors.append(f"Line {line}: invalid email address {email!r}.")
                continue
            fields = {k: row[k] for k in IMPORT_COLUMNS if row.get(k) not in (None, "")}
            try:
                self._validate_fields(fields)
            except ApiError as e:
                status["correctable_count"] += 1
                activity.errors.append(f"Line {line}: {e.message}")
                continue
            custom = []
            for key, value in row.items():
                if key.startswith("cf:"):
                    if key[3:] not in names:
                        activity.errors.append(f"Line {line}: no custom field named {key[3:]}.")
                    elif value not in (None, ""):
                        custom.append({"custom_field_id": names[key[3:]], "value": str(value)[:255]})
            status["person_count"] += 1
            cid = self._by_email.get(email.strip().lower())
            if cid is None:
                new = {
                    **fields,
                    "email_address": {"address": email, "permission_to_send": "implicit"},
                    "list_memberships": list(lists),
                    "custom_fields": custom,
                }
                if row.get("phone"):
                    new["phone_numbers"] = [{"phone_number": str(row["phone"]), "kind": "other"}]
                self._create(new, source="Account")
                continue
            contact = self._contacts[cid]
            contact.update(fields)  # existing contacts: only the properties sent change
            for cf in custom:
                self._merge_custom(contact, cf)
            if row.get("phone"):
                contact["phone_numbers"] = [{"phone_number": str(row["phone"]), "kind": "other"}]
            contact["deleted_at"] = None
            if contact["email_address"]["permission_to_send"] == "unsubscribed":
                status["cannot_add_to_list_count"] += 1  # unsubscribed contacts are not added to lists
            else:
                contact["list_memberships"].extend(x for x in lists if x not in contact["list_memberships"])
            self._touch(contact, "Account")

    def _render_activity(self, activity: _Activity) -> JsonDict:
        out: JsonDict = {
            "activity_id": activity.activity_id,
            "state": activity.state,
            "created_at": iso(activity.created_at),
            "updated_at": iso(activity.updated_at),
            "percent_done": {"initialized": 0, "processing": 50}.get(activity.state, 100),
            "activity_errors": list(activity.errors),
            "status": dict(activity.status),
            "_links": {"self": {"href": f"/v3/activities/{activity.activity_id}"}},
        }
        if activity.started_at is not None:
            out["started_at"] = iso(activity.started_at)
        if activity.completed_at is not None:
            out["completed_at"] = iso(activity.completed_at)
        return out

    # ------------------------------------------------------------------ contact internals

    def _create(self, body: Mapping[str, Any], *, source: str) -> JsonDict:
        email = body.get("email_address")
        if email is not None:
            self._validate_email(email["address"])
            permission = email.get("permission_to_send") or (
                "explicit" if source == "Contact" else "implicit"
            )
            if permission not in PERMISSIONS:
                raise ApiError(
                    400,
                    "contacts.api.validation.error",
                    f"permission_to_send must be one of {', '.join(PERMISSIONS)}.",
                )
        fields = {k: body[k] for k in TOP_LEVEL if body.get(k) is not None}
        self._validate_fields(fields)
        if body.get("list_memberships"):
            self._check_lists(body["list_memberships"])
        custom = self._custom_values(body.get("custom_fields") or [])
        now = self.now()
        cid = str(uuid.uuid4())
        contact: JsonDict = {
            "contact_id": cid,
            **{k: None for k in TOP_LEVEL},
            **fields,
            "create_source": source,
            "update_source": source,
            "deleted_at": None,
            "custom_fields": custom,
            "phone_numbers": list(body.get("phone_numbers") or []),
            "street_addresses": list(body.get("street_addresses") or []),
            "list_memberships": list(dict.fromkeys(body.get("list_memberships") or [])),
            "taggings": list(body.get("taggings") or []),
            "notes": list(body.get("notes") or []),
            "_created": int(now),
            "_updated": int(now),
            "_opt_out": None,
        }
        contact["email_address"] = None
        if email is not None:
            contact["email_address"] = {
                "address": email["address"],
                "permission_to_send": "not_set",
                "created_at": iso(now),
                "updated_at": iso(now),
                "opt_in_source": None,
                "opt_in_date": None,
                "opt_out_source": None,
                "opt_out_date": None,
                "opt_out_reason": None,
                "confirm_status": "off",
            }
            self._set_permission(contact, permission, source, email.get("opt_out_reason"))
            self._by_email[email["address"].strip().lower()] = cid
        self._contacts[cid] = contact
        self._order.append(cid)
        return contact

    def _set_permission(self, contact: JsonDict, permission: str, source: str, reason: str | None) -> None:
        email = contact.get("email_address")
        if email is None or email["permission_to_send"] == permission:
            return
        now = self.now()
        email["permission_to_send"] = permission
        email["updated_at"] = iso(now)
        if permission == "unsubscribed":
            email.update(opt_out_source=source, opt_out_date=iso(now), opt_out_reason=reason)
            contact["_opt_out"] = int(now)
            return
        email.update(opt_out_source=None, opt_out_date=None, opt_out_reason=None)
        contact["_opt_out"] = None
        if permission in ("explicit", "implicit"):
            email["opt_in_date"] = iso(now)
            if email.get("opt_in_source") is None or permission == "explicit":
                email["opt_in_source"] = source
            email["confirm_status"] = (
                "confirmed" if email["confirm_status"] == "pending" else email["confirm_status"]
            )
        elif permission == "pending_confirmation":
            email["confirm_status"] = "pending"

    def _change_email(self, contact: JsonDict, address: str) -> None:
        self._validate_email(address)
        email = contact.get("email_address")
        key = address.strip().lower()
        other = self._by_email.get(key)
        if other is not None and other != contact["contact_id"]:
            raise ApiError(409, "contacts.api.conflict", f"Email already exists for contact {other}.")
        if email is None:
            contact["email_address"] = {
                "address": address,
                "permission_to_send": "not_set",
                "confirm_status": "off",
            }
        elif email["address"] != address:
            self._by_email.pop(email["address"].strip().lower(), None)
            email["address"] = address
            email["updated_at"] = iso(self.now())
        self._by_email[key] = contact["contact_id"]

    def _delete(self, contact: JsonDict) -> None:
        if not contact.get("deleted_at"):
            contact["deleted_at"] = datetime.fromtimestamp(self.now(), UTC).date().isoformat()
            self._touch(contact, "Account")

    def _touch(self, contact: JsonDict, source: str) -> None:
        contact["_updated"] = int(self.now())
        contact["update_source"] = source

    def _contact(self, cid: str) -> JsonDict:
        contact = self._contacts.get(cid)
        if contact is None:
            raise KeyError(f"no contact {cid}")
        return contact

    def _api_contact(self, cid: str) -> JsonDict:
        if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", cid):
            raise ApiError(404, "contacts.api.not_found", "contact_id is in an invalid format.")
        contact = self._contacts.get(cid)
        if contact is None:
            raise ApiError(404, "contacts.api.not_found", f"Contact {cid} was not found.")
        return contact

    def _render(self, contact: JsonDict, include: frozenset[str] | set[str]) -> JsonDict:
        out: JsonDict = {"contact_id": contact["contact_id"]}
        email = contact.get("email_address")
        if email is not None:
            out["email_address"] = {k: v for k, v in email.items() if v is not None}
        for name in TOP_LEVEL:
            if contact.get(name) is not None:
                out[name] = contact[name]
        out["create_source"] = contact["create_source"]
        out["update_source"] = contact["update_source"]
        out["created_at"] = iso(contact["_created"])
        out["updated_at"] = iso(contact["_updated"])
        if contact.get("deleted_at"):
            out["deleted_at"] = contact["deleted_at"]
        for name in SUBRESOURCES:
            if name in include:
                out[name] = [dict(x) if isinstance(x, dict) else x for x in contact[name]]
        return out

    def _validate_email(self, address: str) -> None:
        if not EMAIL_RE.match(address) or len(address) > 80:
            raise ApiError(
                400, "contacts.api.validation.error", f"The email address {address!r} is not valid."
            )

    def _validate_fields(self, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            if name in ("birthday_month", "birthday_day"):
                top = 12 if name == "birthday_month" else 31
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                    raise ApiError(
                        400, "contacts.api.validation.error", f"{name} must be an integer from 1 to {top}."
                    )
            elif not isinstance(value, str):
                raise ApiError(400, "contacts.api.validation.error", f"{name} must be a string.")
            elif len(value) > MAX_LENGTHS.get(name, 255):
                raise ApiError(
                    400,
                    "contacts.api.validation.error",
                    f"{name} must be at most {MAX_LENGTHS.get(name, 255)} characters.",
                )

    def _custom_values(self, items: list[Any]) -> list[JsonDict]:
        if len(items) > 25:
            raise ApiError(400, "contacts.api.validation.error", "A contact holds at most 25 custom fields.")
        out = []
        for item in items:
            cf_id = item.get("custom_field_id") if isinstance(item, dict) else None
            if cf_id not in self._custom_fields:
                raise ApiError(400, "contacts.api.validation.error", f"Custom field {cf_id} does not exist.")
            value = item.get("value")
            if value is not None and (not isinstance(value, str) or len(value) > 255):
                raise ApiError(
                    400,
                    "contacts.api.validation.error",
                    "A custom field value is a string of at most 255 characters.",
                )
            out.append({"custom_field_id": cf_id, "value": value})
        return out

    def _merge_custom(self, contact: JsonDict, cf: JsonDict) -> None:
        for existing in contact["custom_fields"]:
            if existing["custom_field_id"] == cf["custom_field_id"]:
                existing["value"] = cf["value"]
                return
        contact["custom_fields"].append(cf)

    def _check_lists(self, lists: list[Any]) -> None:
        if len(lists) > 50:
            raise ApiError(
                400, "contacts.api.validation.error", "A contact can be a member of at most 50 lists."
            )
        for list_id in lists:
            if list_id not in self._lists:
                raise ApiError(400, "contacts.api.validation.error", f"List {list_id} does not exist.")


# ---------------------------------------------------------------------- helpers


def _json(status: int, body: Any) -> SandboxResponse:
    return SandboxResponse(status, {"content-type": "application/json"}, json.dumps(body).encode("utf-8"))


def _error(e: ApiError) -> SandboxResponse:
    response = _json(e.status, [{"error_key": e.key, "error_message": e.message}])
    response.headers.update(e.headers)
    return response


def _oauth_error(e: OAuthError) -> SandboxResponse:
    return _json(e.status, {"error": e.error, "error_description": e.description})


def _seconds(value: float) -> str:
    return str(max(1, int(value + 0.999)))


def _public(item: Mapping[str, Any]) -> JsonDict:
    return {k: v for k, v in item.items() if v is not None and not k.startswith("_")}


def _within(ts: float, after: float | None, before: float | None) -> bool:
    return (after is None or ts > after) and (before is None or ts < before)


def _int_arg(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "contacts.api.validation.error", f"{name} must be an integer.") from None


def _includes(value: str | None) -> set[str]:
    names = set((value or "").split(",")) - {""}
    if not names <= INCLUDES:
        raise ApiError(
            400, "contacts.api.validation.error", f"include accepts {', '.join(sorted(INCLUDES))}."
        )
    return names


def _object_body(req: SandboxRequest) -> JsonDict:
    try:
        body = req.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "http.status.bad_request",
            "Bad request. Either the JSON was malformed or there was a data validation error.",
        )
    return body


class _Transport(httpx.BaseTransport):
    def __init__(self, sandbox: ConstantContactSandbox) -> None:
        self.sandbox = sandbox

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.sandbox.handle(
            SandboxRequest(
                request.method,
                request.url.path,
                parse_qs(request.url.query.decode("ascii"), keep_blank_values=True),
                {k.lower(): v for k, v in request.headers.items()},
                request.read(),
            )
        )
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body, request=request)


class ServedSandbox:
    """The sandbox behind a real HTTP server on loopback; ``url`` is its origin."""

    def __init__(self, sandbox: ConstantContactSandbox, host: str, port: int) -> None:
        handler = _handler_class(sandbox)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="cc-sandbox", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> ServedSandbox:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _handler_class(sandbox: ConstantContactSandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            answer = sandbox.handle(
                SandboxRequest(
                    self.command,
                    split.path,
                    parse_qs(split.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
            )
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    return Handler
