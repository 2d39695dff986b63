"""A sandbox behind a real HTTP server on loopback, shared by every sandbox.

The server reads each request into an :class:`Incoming` value and hands it to the sandbox's
``answer`` callable, which turns it into the sandbox's own request type, calls its ``handle``
and returns the sandbox's response (anything with ``status``, ``headers`` and ``body``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Incoming:
    """One request as the server read it; ``path`` is still percent-encoded."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes


class Answer(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def body(self) -> bytes: ...


Answerer = Callable[[Incoming], Answer]


class ServedSandbox:
    """A sandbox behind a real HTTP server on ``host:port`` (0 = a free port); ``url`` is its
    origin and ``api_url`` the origin followed by the sandbox's API prefix."""

    def __init__(
        self, answer: Answerer, host: str, port: int, *, thread_name: str, api_prefix: str = ""
    ) -> None:
        self.server = ThreadingHTTPServer((host, port), handler_class(answer))
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.api_url = self.url + api_prefix
        self.thread = threading.Thread(target=self.server.serve_forever, name=thread_name, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> ServedSandbox:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def handler_class(answer: Answerer) -> type[BaseHTTPRequestHandler]:
    """A request handler class that serves every method through ``answer``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            response = answer(
                Incoming(
                    self.command,
                    split.path,
                    parse_qs(split.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
            )
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    return Handler
