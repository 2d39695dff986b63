"""The Constant Contact sandbox: request handling, the API's routing and limits, and its transports."""

from __future__ import annotations

import functools
import re
from collections import deque
from urllib.parse import parse_qs, urlencode

import httpx

from contactsync.sandbox.constantcontact.contacts import ContactsMixin
from contactsync.sandbox.constantcontact.model import (
    API_PREFIX,
    AUTH_PREFIX,
    DAY,
    ApiError,
    LoggedRequest,
    OAuthError,
    SandboxRequest,
    SandboxResponse,
    _error,
    _oauth_error,
    _seconds,
    _Token,
)
from contactsync.sandbox.constantcontact.oauth import OAuthMixin
from contactsync.sandbox.constantcontact.state import Route
from contactsync.sandbox.serving import Incoming, ServedSandbox


class ConstantContactSandbox(OAuthMixin, ContactsMixin):
    """One Constant Contact account behind one authorization server, in memory."""

    @functools.cached_property
    def _routes(self) -> list[Route]:
        """The API's routes as (method, path pattern, handler)."""
        return [
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

    # ------------------------------------------------------------------ transports

    def transport(self) -> httpx.BaseTransport:
        """An in-process, zero-latency transport for an ``httpx.Client``."""
        return _Transport(self)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> ServedSandbox:
        """Run the same handler as a real HTTP server on ``host:port`` (0 = a free port)."""
        return ServedSandbox(self._answer, host, port, thread_name="cc-sandbox")

    def _answer(self, incoming: Incoming) -> SandboxResponse:
        return self.handle(
            SandboxRequest(incoming.method, incoming.path, incoming.query, incoming.headers, incoming.body)
        )

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
