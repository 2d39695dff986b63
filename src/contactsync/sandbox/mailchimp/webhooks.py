"""List-webhook delivery, as Mailchimp does it: form-encoded POSTs from a background thread.

A registered URL is checked first with a GET that must answer 200 (Mailchimp validates a URL
when the webhook is created). Events are POSTed ``application/x-www-form-urlencoded`` with
``type``, ``fired_at`` (``YYYY-MM-DD HH:MM:SS``, UTC) and ``data[...]`` keys, nested like
``data[merges][FNAME]``; a failed delivery (no answer, or not 2xx) is retried after the
``retry_delays`` (Mailchimp retries for 75 minutes; the sandbox compresses that).

Mailchimp's audience webhooks carry no signature (shared/providers.md §5.5): put a secret in
the URL. The sandbox can also sign, as one third-party description claims Mailchimp may:
with ``signing_secret`` set, each POST carries ``X-Mailchimp-Signature: t=<unix>,v1=<hex>``,
the HMAC-SHA256 of ``"{t}.{body}"``.
"""

from __future__ import annotations

import hashlib
import hmac
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from contactsync.sandbox.mailchimp.audience import Event


@dataclass(frozen=True)
class Delivery:
    url: str
    type: str
    form: dict[str, str]
    status: int | None  # None: no answer
    attempt: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def form_fields(event: Event) -> list[tuple[str, str]]:
    """The form fields of one event, in Mailchimp's order."""
    fired = datetime.fromtimestamp(int(event.fired_at), UTC).strftime("%Y-%m-%d %H:%M:%S")
    return [("type", event.type), ("fired_at", fired), *_flatten("data", event.data)]


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _flatten(f"{prefix}[{key}]", inner)
    elif isinstance(value, bool):
        yield prefix, "true" if value else "false"
    else:
        yield prefix, "" if value is None else str(value)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class WebhookDeliverer:
    def __init__(
        self,
        *,
        client: httpx.Client | None = None,
        signing_secret: str | None = None,
        retry_delays: tuple[float, ...] = (0.2, 1.0),
        timeout_s: float = 10.0,
    ) -> None:
        self.client = client
        self.signing_secret = signing_secret
        self.retry_delays = retry_delays
        self.timeout_s = timeout_s
        self.deliveries: list[Delivery] = []
        self._queue: queue.Queue[tuple[str, Event] | None] = queue.Queue()
        self._busy = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._own: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self.client is not None:
            return self.client
        if self._own is None:
            self._own = httpx.Client(timeout=self.timeout_s)
        return self._own

    def validate(self, url: str) -> bool:
        """Mailchimp's check of a new webhook URL: a GET answered 200."""
        try:
            return self._http().get(url, timeout=self.timeout_s).status_code == 200
        except httpx.HTTPError:
            return False

    def enqueue(self, url: str, event: Event) -> None:
        with self._cond:
            self._busy += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mailchimp-webhooks", daemon=True)
                self._thread.start()
        self._queue.put((url, event))

    def wait(self, count: int, timeout_s: float = 10.0) -> list[Delivery]:
        """Wait until ``count`` deliveries succeeded (or the timeout); the successful ones."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while sum(d.ok for d in self.deliveries) < count and time.monotonic() < deadline:
                self._cond.wait(timeout=max(0.0, deadline - time.monotonic()))
            return [d for d in self.deliveries if d.ok]

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued event was delivered or gave up."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._busy and time.monotonic() < deadline:
                self._cond.wait(timeout=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None
        if self._own is not None:
            self._own.close()
            self._own = None

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            url, event = job
            try:
                self._deliver(url, event)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _deliver(self, url: str, event: Event) -> None:
        fields = form_fields(event)
        body = urlencode(fields).encode()
        headers = {"content-type": "application/x-www-form-urlencoded", "user-agent": "MailChimp"}
        if self.signing_secret:
            headers["x-mailchimp-signature"] = signature(self.signing_secret, int(time.time()), body)
        for attempt, delay in enumerate((0.0, *self.retry_delays), start=1):
            if delay:
                time.sleep(delay)
            try:
                status: int | None = self._http().post(url, content=body, headers=headers).status_code
            except httpx.HTTPError:
                status = None
            delivery = Delivery(url, event.type, dict(fields), status, attempt)
            with self._cond:
                self.deliveries.append(delivery)
                self._cond.notify_all()
            if delivery.ok:
                return
