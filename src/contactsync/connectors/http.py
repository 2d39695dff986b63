"""HTTP for connectors: a rate limit that is never exceeded, and retries that honour
``Retry-After``.

Every request a connector makes goes through :meth:`ProviderHttp.request`. It waits for a
slot of the provider's per-second budget (a sliding window, shared by the connector's
threads), then sends. A 429, a 5xx or a dropped connection is retried with exponential
backoff and jitter; a ``Retry-After`` header (seconds or an HTTP date) is obeyed exactly.
When retries run out it raises :class:`TransientError` (E501, or E502 for rate limits), and
the engine stops the run at the last committed batch, so nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections import deque
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from contactsync.connectors.base import ConnectorContext
from contactsync.errors import TransientError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class RateLimiter:
    """At most ``rate`` requests in any window of ``per`` seconds (sliding window).

    A rate below one request per window becomes one request per ``1 / rate`` seconds."""

    def __init__(self, rate: float, ctx: ConnectorContext, per: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("the rate limit must be positive")
        self.capacity = max(1, int(rate * per))
        self.per = max(per, self.capacity / rate)
        self.ctx = ctx
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self.ctx.clock()
                while self._sent and now - self._sent[0] >= self.per:
                    self._sent.popleft()
                if len(self._sent) < self.capacity:
                    self._sent.append(now)
                    return
                wait = self.per - (now - self._sent[0])
            self.ctx.sleep(max(wait, 0.001))


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait according to the response's ``Retry-After`` header, if any.

    An HTTP date is measured from the response's own ``Date`` header when it has a valid
    one (the server's clock), else from our UTC clock."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = _http_date(value)
    if when is None:
        return None
    now = _http_date(response.headers.get("date", "")) or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def _http_date(value: str) -> dt.datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when


_SHARED: dict[tuple[str, object], RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def _limiter(key: str | None, rate: float, ctx: ConnectorContext) -> RateLimiter:
    """The limiter for ``key`` (e.g. the provider and API key): one per process and clock, so
    that every connector of one account, across runs and checks, shares one budget."""
    if key is None:
        return RateLimiter(rate, ctx)
    with _SHARED_LOCK:
        return _SHARED.setdefault((key, ctx.clock), RateLimiter(rate, ctx))


class ProviderHttp:
    """Requests to one provider through an injected ``httpx.Client``."""

    def __init__(
        self,
        ctx: ConnectorContext,
        *,
        base_url: str,
        rate_limit_per_s: float | None,
        max_attempts: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 120.0,
        timeout_s: float = 30.0,
        limit_key: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.client = ctx.http or httpx.Client(timeout=timeout_s)
        self._own_client = ctx.http is None
        self.base_url = base_url.rstrip("/")
        self.limiter = _limiter(limit_key, rate_limit_per_s, ctx) if rate_limit_per_s else None
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.requests_sent = 0
        self.retries = 0

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send with rate limiting and retries; the final response may still be a 4xx."""
        last: str = ""
        rate_limited = False
        for attempt in range(self.max_attempts):
            if self.limiter is not None:
                self.limiter.acquire()
            self.requests_sent += 1
            try:
                response = self.client.request(method, self.url(path), **kwargs)
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
                rate_limited = False
                if attempt + 1 < self.max_attempts:
                    self._pause(attempt, None)
                continue
            if response.status_code not in RETRY_STATUSES:
                return response
            rate_limited = response.status_code == 429
            last = f"HTTP {response.status_code}"
            hinted = retry_after(response)
            if hinted is not None and hinted > self.max_retry_after_s:
                reason = "its daily or hourly limit is spent" if rate_limited else "it is unavailable"
                raise TransientError(
                    f"{method} {path}: the provider asks to wait {hinted:.0f} s ({last}); {reason}",
                    code="E502" if rate_limited else "E501",
                )
            if attempt + 1 < self.max_attempts:
                self._pause(attempt, hinted)
        code = "E502" if rate_limited else "E501"
        raise TransientError(
            f"{method} {path} failed after {self.max_attempts} attempts ({last})",
            code=code,
        )

    def _pause(self, attempt: int, hinted: float | None) -> None:
        self.retries += 1
        if hinted is not None:
            self.ctx.sleep(hinted)
            return
        delay = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        self.ctx.sleep(delay * (0.5 + random.random() / 2))  # jitter, not cryptography

    def close(self) -> None:
        if self._own_client:
            self.client.close()
