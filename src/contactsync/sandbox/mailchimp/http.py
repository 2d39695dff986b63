"""The sandbox's HTTP plumbing: request and response values, an in-process ``httpx``
transport, and a real HTTP server on loopback. Both call ``sandbox.handle(request)``."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from contactsync.sandbox.mailchimp.audience import ApiError

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


class ServedSandbox:
    """The sandbox behind a real HTTP server on loopback; ``url`` is its origin and
    ``api_url`` the ``/3.0`` base."""

    def __init__(self, sandbox: Handles, host: str, port: int) -> None:
        self.server = ThreadingHTTPServer((host, port), _handler_class(sandbox))
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.api_url = self.url + PREFIX
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="mailchimp-sandbox", daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> ServedSandbox:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _handler_class(sandbox: Handles) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = sandbox.handle(
                Request(
                    self.command,
                    unquote(split.path),
                    parse_qs(split.query, keep_blank_values=True),
                    headers,
                    self.rfile.read(length) if length else b"",
                    f"http://{headers.get('host', '127.0.0.1')}",
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
