"""The Constant Contact sandbox's authorization server: apps, codes, tokens and revocation."""

from __future__ import annotations

import base64
import json
import re
import secrets
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from contactsync.sandbox.constantcontact.model import (
    AUTH_PREFIX,
    App,
    JsonDict,
    OAuthError,
    SandboxRequest,
    SandboxResponse,
    _b64,
    _Code,
    _json,
    _Refresh,
    _Token,
    s256,
)
from contactsync.sandbox.constantcontact.state import SandboxState


class OAuthMixin(SandboxState):
    """Registered apps, the OAuth endpoints and token helpers."""

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
