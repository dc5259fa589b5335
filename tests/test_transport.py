"""The one HTTP wrapper, in process: which answers are retried, how long it waits, the rate limit,
the URL guard on every redirect hop. Every wait goes through an injected `sleep` that records it,
so the tests check the waits a user's run would make without spending them."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from bulk_support import FileServer

from src.errors import ServiceUnavailableError
from src.net.transport import (
    RateLimiter,
    RetryPolicy,
    RunStoppingError,
    Transport,
    error_named,
    hide,
    json_object,
    keeping_secrets,
    redact,
    sleep_unless_stopping,
    stopping_ends_waits,
)
from src.net.url_guard import MAX_REDIRECTS, UnsafeUrlError, UrlGuard

Handler = Callable[[httpx.Request], httpx.Response]


class Sleeps:
    """A fake clock and sleep: `sleep` records each wait and moves the clock on by it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class Answers:
    """A mock server answering with the given responses in turn (the last one repeats), recording requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) > 50:
            raise AssertionError("the transport never stops asking")
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


def run(
    answers: Handler,
    *,
    retry: RetryPolicy | None = None,
    url: str = "https://tr.example.com/v3/events",
    **options: Any,
) -> tuple[httpx.Response | Exception, list[float]]:
    """One request through a Transport over `answers`: the response (or the error) and the waits."""
    sleeps = Sleeps()

    async def scenario() -> httpx.Response:
        client = httpx.AsyncClient(transport=httpx.MockTransport(answers))
        async with Transport(retry=retry, client=client, sleep=sleeps.sleep, **options) as transport:
            return await transport.request("POST", url, what="Snap send", json={"a": 1})

    try:
        return asyncio.run(scenario()), sleeps.waits
    except Exception as error:  # the tests look at which error it was
        return error, sleeps.waits


# --- the rate limiter ------------------------------------------------------------------------------


def test_the_rate_limiter_spaces_requests_one_interval_apart_with_no_burst() -> None:
    sleeps = Sleeps(now=0.0)
    limiter = RateLimiter(4, clock=sleeps.clock, sleep=sleeps.sleep)

    async def five() -> None:
        for _ in range(5):
            await limiter.wait()

    asyncio.run(five())
    assert sleeps.waits == [0.25, 0.25, 0.25, 0.25]  # the first goes at once, each next a quarter second later


def test_the_rate_limiter_does_not_wait_after_an_idle_spell_but_spaces_what_follows() -> None:
    sleeps = Sleeps(now=1000.0)
    limiter = RateLimiter(2, clock=sleeps.clock, sleep=sleeps.sleep)

    async def scenario() -> None:
        await limiter.wait()
        sleeps.now += 10.0  # quiet for ten seconds: no saved-up burst
        await limiter.wait()
        await limiter.wait()

    asyncio.run(scenario())
    assert sleeps.waits == [0.5]


def test_concurrent_requests_share_the_limit() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    limiter = RateLimiter(10, clock=lambda: 50.0, sleep=sleep)  # all three ask at the same moment

    async def scenario() -> None:
        await asyncio.gather(*(limiter.wait() for _ in range(3)))

    asyncio.run(scenario())
    assert sorted(waits) == pytest.approx([0.1, 0.2])  # spread out, not all at once


def test_a_transport_with_a_request_rate_waits_between_requests_and_one_without_does_not() -> None:
    def pace(rate: float | None) -> list[float]:
        sleeps = Sleeps()

        async def scenario() -> None:
            client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200)))
            async with Transport(client=client, sleep=sleeps.sleep, max_requests_per_second=rate) as transport:
                for _ in range(3):
                    await transport.request("GET", "https://tr.example.com/", what="x")

        asyncio.run(scenario())
        return sleeps.waits

    waits = pace(2)  # the limiter reads the real clock: the requests themselves take next to no time
    assert len(waits) == 2
    assert 0.25 < waits[0] <= 0.5 and 0.75 < waits[1] <= 1.0
    assert pace(None) == []


# --- what is retried -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_busy_and_server_error_answers_are_retried(status: int) -> None:
    answers = Answers(httpx.Response(status), httpx.Response(200, json={"ok": True}))
    response, waits = run(answers)
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert len(answers.requests) == 2 and len(waits) == 1


@pytest.mark.parametrize("status", [200, 301, 400, 401, 404, 409, 426, 430, 501, 505])
def test_other_answers_are_returned_at_once_for_the_caller_to_read(status: int) -> None:
    answers = Answers(httpx.Response(status), httpx.Response(200))
    response, waits = run(answers)
    assert isinstance(response, httpx.Response) and response.status_code == status
    assert len(answers.requests) == 1 and waits == []


def test_a_host_that_stays_down_is_given_up_on_after_the_retries_with_its_status() -> None:
    answers = Answers(httpx.Response(503))
    error, waits = run(answers, retry=RetryPolicy(max_retries=2, backoff_base=0.1))
    assert isinstance(error, ServiceUnavailableError)
    assert error.status == 503
    assert "Snap send failed after 3 attempts: HTTP 503" in str(error)
    assert len(answers.requests) == 3 and len(waits) == 2


def test_by_default_five_retries_follow_the_first_attempt() -> None:
    answers = Answers(httpx.Response(500))
    error, waits = run(answers)
    assert isinstance(error, ServiceUnavailableError)
    assert len(answers.requests) == 6 and len(waits) == 5


def test_dropped_connections_are_retried_and_named_when_they_persist() -> None:
    flaky = Answers(httpx.ConnectError("connection refused"), httpx.Response(200))
    response, _ = run(flaky)
    assert isinstance(response, httpx.Response) and response.status_code == 200

    down = Answers(httpx.ReadTimeout("timed out at https://x/?access_token=SECRET"))
    error, waits = run(down, retry=RetryPolicy(max_retries=1))
    assert isinstance(error, ServiceUnavailableError)
    assert error.status is None
    assert "after 2 attempts: ReadTimeout" in str(error) and "SECRET" not in str(error)
    assert len(waits) == 1


# --- how long it waits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "wait"),
    [("7", 7.0), ("0", 0.0), ("2.5", 2.5), ("-3", 0.0), ("1000", 120.0)],
)
def test_retry_after_seconds_are_honoured_never_negative_and_capped(header: str, wait: float) -> None:
    answers = Answers(httpx.Response(429, headers={"Retry-After": header}), httpx.Response(200))
    response, waits = run(answers)
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert waits == [wait]


def test_retry_after_as_an_http_date_waits_until_then() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=40), usegmt=True)
    answers = Answers(httpx.Response(503, headers={"Retry-After": later}), httpx.Response(200))
    _, waits = run(answers)
    assert len(waits) == 1 and 30.0 < waits[0] <= 40.0

    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=40), usegmt=True)
    _, waits = run(Answers(httpx.Response(503, headers={"Retry-After": earlier}), httpx.Response(200)))
    assert waits == [0.0]


def test_the_retry_after_cap_is_a_policy_setting() -> None:
    policy = RetryPolicy(retry_after_max=5.0)
    assert policy.delay(0, httpx.Response(429, headers={"Retry-After": "60"})) == 5.0
    assert RetryPolicy().delay(0, httpx.Response(429, headers={"Retry-After": "120"})) == 120.0


class Uniform:
    """Stands in for `random.uniform`: records its bounds and returns the upper (or lower) one."""

    def __init__(self, upper: bool = True) -> None:
        self.upper = upper
        self.calls: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.calls.append((low, high))
        return high if self.upper else low


def test_backoff_doubles_from_half_a_second_with_jitter_in_the_upper_half_up_to_thirty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uniform = Uniform()
    monkeypatch.setattr(random, "uniform", uniform)
    policy = RetryPolicy()
    assert [policy.delay(attempt, None) for attempt in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert uniform.calls == [(0, 0.25), (0, 0.5), (0, 1.0), (0, 2.0)]
    assert policy.delay(10, None) == 30.0

    monkeypatch.setattr(random, "uniform", Uniform(upper=False))
    assert [policy.delay(attempt, None) for attempt in range(3)] == [0.25, 0.5, 1.0]  # never under half


def test_without_a_usable_retry_after_the_backoff_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", Uniform())
    answers = Answers(
        httpx.Response(503, headers={"Retry-After": "soon"}),
        httpx.Response(502),
        httpx.Response(500, headers={"Retry-After": ""}),
        httpx.Response(200),
    )
    response, waits = run(answers)
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert waits == [0.5, 1.0, 2.0]


# --- the URL guard and redirects -------------------------------------------------------------------


class Guard:
    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.checked: list[str] = []

    async def __call__(self, url: httpx.URL) -> None:
        self.checked.append(str(url))
        if self.refuse is not None and self.refuse in str(url):
            raise UnsafeUrlError("points to a private address")


def redirect(to: str) -> httpx.Response:
    return httpx.Response(302, headers={"Location": to})


def test_the_guard_checks_the_first_url_and_every_redirect_hop() -> None:
    answers = Answers(
        redirect("https://b.example.com/two"), redirect("https://c.example.com/three"), httpx.Response(200)
    )
    guard = Guard()
    response, _ = run(answers, url="https://a.example.com/one", url_guard=guard)
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert guard.checked == ["https://a.example.com/one", "https://b.example.com/two", "https://c.example.com/three"]
    assert [str(request.url) for request in answers.requests] == guard.checked


def test_a_refused_first_url_is_never_requested() -> None:
    answers = Answers(httpx.Response(200))
    error, _ = run(answers, url="https://internal.example.com/", url_guard=Guard(refuse="internal"))
    assert isinstance(error, UnsafeUrlError)
    assert str(error) == "Snap send: points to a private address"
    assert answers.requests == []


def test_a_redirect_to_a_refused_address_is_not_followed() -> None:
    answers = Answers(redirect("https://internal.example.com/"), httpx.Response(200))
    error, _ = run(answers, url="https://a.example.com/", url_guard=Guard(refuse="internal"))
    assert isinstance(error, UnsafeUrlError)
    assert len(answers.requests) == 1


def test_redirects_are_followed_up_to_the_limit_and_no_further() -> None:
    hops = [redirect(f"https://h{n}.example.com/") for n in range(1, MAX_REDIRECTS + 1)]
    answers = Answers(*hops, httpx.Response(200))
    response, _ = run(answers, url="https://h0.example.com/", url_guard=Guard())
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert len(answers.requests) == MAX_REDIRECTS + 1

    endless = Answers(*hops, redirect("https://again.example.com/"))
    guard = Guard()
    error, _ = run(endless, url="https://h0.example.com/", url_guard=guard)
    assert isinstance(error, UnsafeUrlError)
    assert f"more than {MAX_REDIRECTS} redirects" in str(error)
    assert len(endless.requests) == MAX_REDIRECTS + 1 and len(guard.checked) == MAX_REDIRECTS + 1


def test_a_user_s_url_takes_five_redirects_and_not_a_sixth() -> None:
    """The number docs/architecture.md gives users (at most 5 redirects), not only the constant's own value."""
    hops = [redirect(f"https://h{n}.example.com/") for n in range(1, 6)]
    answers = Answers(*hops, httpx.Response(200))
    response, _ = run(answers, url="https://h0.example.com/", url_guard=Guard())
    assert isinstance(response, httpx.Response) and response.status_code == 200

    six = Answers(*hops, redirect("https://h6.example.com/"), httpx.Response(200))
    error, _ = run(six, url="https://h0.example.com/", url_guard=Guard())
    assert isinstance(error, UnsafeUrlError) and str(error) == "Snap send: more than 5 redirects"
    assert len(six.requests) == 6


def test_a_redirect_to_another_scheme_is_refused_by_name_even_where_private_addresses_are_allowed() -> None:
    answers = Answers(redirect("ftp://files.example.com/export.csv"), httpx.Response(200))
    error, _ = run(answers, url="https://a.example.com/", url_guard=UrlGuard(allow_private=True))
    assert isinstance(error, UnsafeUrlError)
    assert str(error) == "Snap send: only http and https URLs are allowed, not ftp"
    assert len(answers.requests) == 1


def test_the_query_of_the_url_reaches_the_server() -> None:
    """A webhook's URL often carries its secret in the query: the POST goes to the URL as given."""
    answers = Answers(httpx.Response(200))
    response, _ = run(answers, url="https://hooks.example.com/hook?secret=abc&x=1", url_guard=Guard())
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert [str(r.url) for r in answers.requests] == ["https://hooks.example.com/hook?secret=abc&x=1"]


def test_a_host_that_cannot_be_resolved_is_refused_before_any_request() -> None:
    async def unresolvable(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    answers = Answers(httpx.Response(200))
    guard = UrlGuard(allow_private=False, resolve=unresolvable)
    error, waits = run(answers, url="https://nowhere.example/", url_guard=guard, retry=RetryPolicy(max_retries=3))
    assert isinstance(error, UnsafeUrlError)
    assert str(error) == "Snap send: the host nowhere.example could not be resolved"
    assert answers.requests == [] and waits == []


def test_without_a_guard_a_redirect_is_returned_as_is() -> None:
    answers = Answers(redirect("https://elsewhere.example.com/"), httpx.Response(200))
    response, _ = run(answers)
    assert isinstance(response, httpx.Response) and response.status_code == 302
    assert len(answers.requests) == 1


# --- streams, closing, small helpers ---------------------------------------------------------------


class Body(httpx.AsyncByteStream):
    def __init__(self, closed: list[bytes], data: bytes) -> None:
        self.closed = closed
        self.data = data

    async def __aiter__(self) -> Any:
        yield self.data

    async def aclose(self) -> None:
        self.closed.append(self.data)


def test_a_streamed_download_retries_and_closes_every_response_it_drops() -> None:
    closed: list[bytes] = []
    answers = Answers(
        httpx.Response(302, headers={"Location": "https://b.example.com/f"}, stream=Body(closed, b"moved")),
        httpx.Response(503, stream=Body(closed, b"busy")),
        httpx.Response(200, stream=Body(closed, b"the file")),
    )
    sleeps = Sleeps()

    async def scenario() -> bytes:
        client = httpx.AsyncClient(transport=httpx.MockTransport(answers))
        async with (
            Transport(client=client, sleep=sleeps.sleep, url_guard=Guard()) as transport,
            transport.stream("https://a.example.com/f", what="eventsUrl download") as response,
        ):
            assert closed == [b"moved", b"busy"]
            return await response.aread()

    assert asyncio.run(scenario()) == b"the file"
    assert closed == [b"moved", b"busy", b"the file"]
    assert len(sleeps.waits) == 1


def test_leaving_the_transport_closes_its_client() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200)))

    async def scenario() -> None:
        async with Transport(client=client):
            pass

    asyncio.run(scenario())
    assert client.is_closed


def test_default_timeouts_and_connection_limits() -> None:
    transport = Transport()
    client = transport._client
    assert client.timeout == httpx.Timeout(60.0, connect=15.0)
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert pool._max_connections == 32
    assert transport._limiter is None and transport._guard is None
    asyncio.run(transport.aclose())


def test_json_object_is_the_object_or_none() -> None:
    assert json_object(httpx.Response(200, json={"a": 1})) == {"a": 1}
    assert json_object(httpx.Response(200, json={})) == {}
    assert json_object(httpx.Response(200, json=[1, 2])) is None
    assert json_object(httpx.Response(502, text="<html>Bad gateway</html>")) is None


def test_redact_hides_tokens_in_query_strings_and_bearer_headers() -> None:
    text = "GET https://x/?access_token=abc.def&b=1 Authorization: Bearer eyJ.abc-_ client_secret=s3"
    assert redact(text) == "GET https://x/?access_token=***&b=1 Authorization: Bearer *** client_secret=***"


def test_redact_hides_an_apify_token_in_a_users_dataset_url() -> None:
    """An `eventsUrl` may be an Apify dataset link that carries the user's API token as `token=`."""
    text = "eventsUrl https://api.apify.com/v2/datasets/x/items?format=csv&token=apify_api_Secret1&signature=s1g"
    assert redact(text) == "eventsUrl https://api.apify.com/v2/datasets/x/items?format=csv&token=***&signature=***"


def test_the_request_is_sent_as_given_and_nothing_else() -> None:
    answers = Answers(httpx.Response(200))

    async def scenario() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(answers))
        async with Transport(client=client) as transport:
            await transport.request("GET", "https://tr.example.com/a", what="x")
            await transport.request(
                "POST", "https://tr.example.com/b", what="x", params={"q": "1"}, json={"k": 2}, headers={"X-T": "v"}
            )
            await transport.request("POST", "https://tr.example.com/c", what="x", data={"f": "3"})
            await transport.request("POST", "https://tr.example.com/d", what="x", content=b"raw")

    asyncio.run(scenario())
    plain, with_json, form, raw = answers.requests
    assert str(plain.url) == "https://tr.example.com/a" and plain.content == b""
    assert str(with_json.url) == "https://tr.example.com/b?q=1" and with_json.content == b'{"k":2}'
    assert with_json.headers["X-T"] == "v"
    assert form.content == b"f=3" and raw.content == b"raw"


def test_a_stream_left_unread_is_closed_on_leaving() -> None:
    closed: list[bytes] = []
    answers = Answers(httpx.Response(200, stream=Body(closed, b"a big file")))

    async def scenario() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(answers))
        async with Transport(client=client) as transport, transport.stream("https://a.example.com/f", what="x"):
            assert closed == []  # the caller stopped before reading: the connection must still be freed

    asyncio.run(scenario())
    assert closed == [b"a big file"]


def test_a_request_over_the_network_comes_back_read() -> None:
    with FileServer() as server:
        url = server.add("/r.json", b'{"ok": true}', "application/json")

        async def scenario() -> httpx.Response:
            async with Transport() as transport:
                return await transport.request("GET", url, what="x")

        response = asyncio.run(scenario())
    assert json_object(response) == {"ok": True}  # the body was read before the connection closed


def test_the_runs_stop_ends_a_retry_wait_at_once_without_a_new_attempt() -> None:
    """Snap asks for 120 s; the run stops meanwhile (abort): the wait ends with `RunStoppingError` and nothing is
    sent again (the run slept the 120 s out, past the platform's ~30 s of graceful abort)."""
    answers = Answers(httpx.Response(429, headers={"Retry-After": "120"}))

    async def go() -> None:
        stop = asyncio.Event()
        client = httpx.AsyncClient(transport=httpx.MockTransport(answers))
        async with Transport(client=client) as transport:
            with stopping_ends_waits(stop):
                sending = asyncio.create_task(transport.request("POST", "https://snap.test/v3/p/events", what="send"))
                while not answers.requests:
                    await asyncio.sleep(0.01)
                stop.set()
                with pytest.raises(RunStoppingError):
                    await asyncio.wait_for(sending, 30)  # a generous bound, far below the 120 s asked for

    asyncio.run(go())
    assert len(answers.requests) == 1


def test_a_wait_is_a_plain_sleep_outside_a_runs_stop_or_before_it() -> None:
    """The webhook after the run (outside `stopping_ends_waits`) and a run not stopping wait as asked."""

    async def go() -> None:
        await sleep_unless_stopping(0.01)
        with stopping_ends_waits(asyncio.Event()):
            await sleep_unless_stopping(0.01)

    asyncio.run(go())


def test_a_runs_own_secrets_are_redacted_inside_its_scope_only() -> None:
    """A secret hidden in a run is taken out of any text there, whatever its shape; outside the run (another run in
    the same process, a test) it is not known, and short values are no secret (replacing them would mangle words)."""
    with keeping_secrets():
        hide("s3cr3t-value")
        hide("short")
        assert redact("Snap said: s3cr3t-value is invalid (short)") == "Snap said: *** is invalid (short)"
    assert redact("s3cr3t-value") == "s3cr3t-value"
    hide("s3cr3t-value")  # no run: nothing to keep it in
    assert redact("s3cr3t-value") == "s3cr3t-value"


def test_a_secret_of_six_characters_is_hidden_and_a_shorter_one_is_not() -> None:
    with keeping_secrets():
        hide("abcdef")
        hide("abcde")
        assert redact("abcdef and abcde") == "*** and abcde"


def test_an_error_is_named_by_its_type_and_its_first_line_redacted_and_cut() -> None:
    """What a message quotes of an error: never a token, never a second line (a traceback, a body), never more
    than the limit."""
    error = RuntimeError("refused https://api.example.com/x?token=t0k3n\nbody: secret details")
    assert error_named(error) == "RuntimeError: refused https://api.example.com/x?token=***"
    assert error_named(RuntimeError("x" * 500), 10) == "RuntimeError: " + "x" * 10
    assert error_named(RuntimeError("x" * 500)) == "RuntimeError: " + "x" * 200  # the default limit
    assert error_named(TimeoutError()) == "TimeoutError"


def test_a_wait_outside_a_run_is_a_plain_sleep() -> None:
    """Without a run's stop to watch, `sleep_unless_stopping` sleeps its whole delay: a timer due before its end
    fires first."""
    fired: list[str] = []

    async def scenario() -> None:
        asyncio.get_running_loop().call_later(0.01, fired.append, "timer")
        await sleep_unless_stopping(0.2)
        fired.append("slept")

    asyncio.run(scenario())
    assert fired == ["timer", "slept"]
