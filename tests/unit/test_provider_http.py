"""connectors/http.py: Retry-After, backoff, giving up, and a rate limit that is never exceeded,
on httpx.MockTransport with a fake clock (sleeping moves it forward)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from contactsync.connectors.base import ConnectorContext
from contactsync.connectors.http import ProviderHttp, RateLimiter, retry_after
from contactsync.errors import TransientError


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class Provider:
    """A scripted provider: answers in turn (the last one repeats), records send times."""

    def __init__(self, time: FakeTime, answers: Iterable[httpx.Response | Exception]) -> None:
        self.time = time
        self.answers = list(answers)
        self.sent: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(self.time.now)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def make_http(provider: Provider, *, rate_limit_per_s: float | None = None, **options: Any) -> ProviderHttp:
    time = provider.time
    client = httpx.Client(transport=httpx.MockTransport(provider))
    ctx = ConnectorContext(http=client, sleep=time.sleep, clock=time.clock)
    base_url = "https://api.example.com/v3/"
    return ProviderHttp(ctx, base_url=base_url, rate_limit_per_s=rate_limit_per_s, **options)


def status(code: int, **headers: str) -> httpx.Response:
    return httpx.Response(code, headers=headers, json={})


# -- Retry-After -----------------------------------------------------------------------------


def test_retry_after_seconds_are_honoured_exactly() -> None:
    time = FakeTime()
    provider = Provider(time, [status(429, **{"Retry-After": "7"}), status(200)])
    response = make_http(provider).request("GET", "/contacts")
    assert response.status_code == 200
    assert time.sleeps == [7.0]
    assert provider.sent == [1_000.0, 1_007.0]


def test_retry_after_http_date_is_honoured_exactly_against_the_date_header() -> None:
    time = FakeTime()
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT", "Date": "Wed, 21 Oct 2015 07:28:00 GMT"}
    provider = Provider(time, [status(503, **headers), status(200)])
    assert make_http(provider).request("GET", "contacts").status_code == 200
    assert time.sleeps == [30.0]


def test_retry_after_http_date_without_a_usable_date_header_counts_from_now() -> None:
    time = FakeTime()
    when = format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20), usegmt=True)
    provider = Provider(time, [status(429, **{"Retry-After": when, "Date": "not a date"}), status(200)])
    assert make_http(provider).request("GET", "contacts").status_code == 200
    [slept] = time.sleeps
    assert 17.0 <= slept <= 20.0


def test_retry_after_in_the_past_retries_at_once() -> None:
    time = FakeTime()
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT", "Date": "Wed, 21 Oct 2015 07:28:00 GMT"}
    provider = Provider(time, [status(429, **headers), status(200)])
    make_http(provider).request("GET", "contacts")
    assert time.sleeps == [0.0]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), ("", None)],
)
def test_retry_after_values(value: str, seconds: float | None) -> None:
    response = status(429, **({"Retry-After": value} if value else {}))
    assert retry_after(response) == seconds


def test_a_retry_after_longer_than_the_maximum_raises_at_once() -> None:
    time = FakeTime()
    provider = Provider(time, [status(429, **{"Retry-After": "3600"})])
    with pytest.raises(TransientError) as raised:
        make_http(provider, max_retry_after_s=120).request("GET", "contacts")
    assert raised.value.code == "E502" and "3600 s" in raised.value.message
    assert len(provider.sent) == 1 and time.sleeps == []

    provider = Provider(time, [status(503, **{"Retry-After": "600"})])
    with pytest.raises(TransientError) as raised:
        make_http(provider, max_retry_after_s=120).request("GET", "contacts")
    assert raised.value.code == "E501" and len(provider.sent) == 1


# -- backoff and giving up -------------------------------------------------------------------


def test_5xx_backs_off_exponentially_with_jitter() -> None:
    time = FakeTime()
    provider = Provider(time, [status(500), status(502), status(504), status(200)])
    http = make_http(provider, backoff_s=1.0)
    assert http.request("POST", "contacts", json={"a": 1}).status_code == 200
    assert len(time.sleeps) == 3
    for attempt, slept in enumerate(time.sleeps):
        assert 0.5 * 2**attempt <= slept <= 2**attempt
    assert http.retries == 3 and http.requests_sent == 4


def test_backoff_is_capped() -> None:
    time = FakeTime()
    provider = Provider(time, [status(503)] * 9 + [status(200)])
    make_http(provider, backoff_s=1.0, max_backoff_s=3.0, max_attempts=10).request("GET", "contacts")
    assert len(time.sleeps) == 9 and max(time.sleeps) <= 3.0


def test_transport_errors_are_retried() -> None:
    time = FakeTime()
    dropped = httpx.ConnectError("connection refused")
    provider = Provider(time, [dropped, httpx.ReadTimeout("timed out"), status(200)])
    assert make_http(provider).request("GET", "contacts").status_code == 200
    assert len(provider.sent) == 3 and len(time.sleeps) == 2


def test_gives_up_with_e501_after_5xx_without_sleeping_after_the_last_try() -> None:
    time = FakeTime()
    provider = Provider(time, [status(503)])
    with pytest.raises(TransientError) as raised:
        make_http(provider, max_attempts=4).request("GET", "contacts")
    assert raised.value.code == "E501" and "HTTP 503" in raised.value.message
    assert len(provider.sent) == 4 and len(time.sleeps) == 3


def test_gives_up_with_e501_after_transport_errors() -> None:
    time = FakeTime()
    provider = Provider(time, [httpx.ConnectError("connection refused")])
    with pytest.raises(TransientError) as raised:
        make_http(provider, max_attempts=3).request("GET", "contacts")
    assert raised.value.code == "E501" and "ConnectError" in raised.value.message
    assert len(provider.sent) == 3 and len(time.sleeps) == 2


def test_gives_up_with_e502_after_429s() -> None:
    time = FakeTime()
    provider = Provider(time, [status(429, **{"Retry-After": "2"})])
    with pytest.raises(TransientError) as raised:
        make_http(provider, max_attempts=5).request("GET", "contacts")
    assert raised.value.code == "E502"
    assert len(provider.sent) == 5 and time.sleeps == [2.0] * 4


def test_client_errors_are_returned_without_retry() -> None:
    time = FakeTime()
    provider = Provider(time, [status(400)])
    http = make_http(provider)
    assert http.request("PUT", "https://other.example.com/x").status_code == 400
    assert len(provider.sent) == 1 and time.sleeps == []
    assert http.url("contacts") == "https://api.example.com/v3/contacts"


# -- rate limit ------------------------------------------------------------------------------


def most_in_any_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of times inside any half-open window [t, t + window)."""
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


def test_the_rate_limit_is_never_exceeded_in_any_second() -> None:
    time = FakeTime()
    provider = Provider(time, [status(200)])
    http = make_http(provider, rate_limit_per_s=4)
    for _ in range(25):
        http.request("GET", "contacts")
    assert most_in_any_window(provider.sent) == 4
    assert provider.sent[-1] - provider.sent[0] < 6.5  # and it does not wait needlessly


def test_the_rate_limit_holds_across_retries_and_idle_gaps() -> None:
    time = FakeTime()
    answers: list[httpx.Response | Exception] = [status(200), status(200), status(200)]
    answers += [status(429, **{"Retry-After": "0"})]
    answers += [status(200)] * 5 + [httpx.ConnectError("reset")] + [status(200)]
    provider = Provider(time, answers)
    http = make_http(provider, rate_limit_per_s=3)
    for n in range(12):
        http.request("GET", "contacts")
        if n == 6:
            time.sleep(0.4)
    assert most_in_any_window(provider.sent) == 3


def test_a_rate_below_one_per_second_spaces_the_requests() -> None:
    time = FakeTime()
    limiter = RateLimiter(0.5, ConnectorContext(sleep=time.sleep, clock=time.clock))
    sent = []
    for _ in range(4):
        limiter.acquire()
        sent.append(time.now)
    assert [round(b - a, 6) for a, b in itertools.pairwise(sent)] == [2.0, 2.0, 2.0]
    assert most_in_any_window(sent, 2.0) == 1


def test_an_injected_client_is_not_closed() -> None:
    time = FakeTime()
    provider = Provider(time, [status(200)])
    http = make_http(provider)
    http.close()
    assert not http.client.is_closed
