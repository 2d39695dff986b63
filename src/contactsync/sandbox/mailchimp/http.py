"""The sandbox's HTTP plumbing: request and response values, an in-process ``httpx``
transport, and a real HTTP server on loopback. Both call ``sandbox.handle(request)``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

import httpx

from contactsync.sandbox.mailchimp.audience import ApiError
from contactsync.sandbox.serving import Incoming, ServedSandbox

PREFIX = "/3.0"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    origin: str = "https://us1.api.mailchimp.com"

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ApiError(
                400, "JSON Parse Error", "We encountered an unspecified JSON parsing error."
            ) from None


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class LoggedRequest:
    at: float
    method: str
    path: str
    query: str
    status: int


class Handles(Protocol):
    def handle(self, req: Request) -> Response: ...


def _json(status: int, body: Any) -> Response:
    return Response(
        status, {"content-type": "application/json; charset=utf-8"}, json.dumps(body).encode("utf-8")
    )


def _error(e: ApiError) -> Response:
    response = Response(
        e.status, {"content-type": "application/problem+json; charset=utf-8"}, json.dumps(e.body()).encode()
    )
    response.headers.update(e.headers)
    return response


class _Transport(httpx.BaseTransport):
    def __init__(self, sandbox: Handles) -> None:
        self.sandbox = sandbox

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer = self.sandbox.handle(
            Request(
                request.method,
                url.path,
                parse_qs(url.query.decode("ascii"), keep_blank_values=True),
                headers,
                request.read(),
                f"{url.scheme}://{headers.get('host', url.host)}",
            )
        )
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body, request=request)


def serve_http(sandbox: Handles, host: str, port: int) -> ServedSandbox:
    """The sandbox behind a real HTTP server on loopback; ``url`` is its origin and
    ``api_url`` the ``/3.0`` base."""

    def answer(incoming: Incoming) -> Response:
        return sandbox.handle(
            Request(
                incoming.method,
                unquote(incoming.path),
                incoming.query,
                incoming.headers,
                incoming.body,
                f"http://{incoming.headers.get('host', '127.0.0.1')}",
            )
        )

    return ServedSandbox(answer, host, port, thread_name="mailchimp-sandbox", api_prefix=PREFIX)
