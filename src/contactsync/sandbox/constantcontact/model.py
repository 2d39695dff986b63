"""The Constant Contact sandbox's values: constants, the manual clock, requests, responses,
errors, records and the small helpers every part uses."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

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
