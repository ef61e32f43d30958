"""The chat-completions client against a real HTTP server (the fake judge) on 127.0.0.1.

Retry timing is observed through the injectable `sleep`, so no test really waits for a
backoff. The few shapes the fake judge cannot produce (null content, a redirect) go
through an `httpx.MockTransport`: the transport is swapped, never our code.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from support.wire_server import Connection, WireRequest, WireServer, completion_body, response_head

from pytest_rubric_judge import prompts
from pytest_rubric_judge.client import ChatClient, Completion, normalize_base_url
from pytest_rubric_judge.errors import JudgeUnavailableError
from pytest_rubric_judge.testing import FakeJudge

SECRET = "sk-test-SENTINEL-9f8e7d6c5b4a"
MESSAGES = [{"role": "user", "content": "Say hello."}]


class Sleeps(list[float]):
    """A `sleep` that records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(fake_judge: FakeJudge, sleeps: Sleeps) -> Iterator[Callable[..., ChatClient]]:
    """Build clients for the fake judge (fast timeout, recorded sleep); all closed after."""
    made: list[ChatClient] = []

    def make(url: str | None = None, **kwargs: Any) -> ChatClient:
        options: dict[str, Any] = {"timeout": 5.0, "sleep": sleeps, **kwargs}
        client = ChatClient(url or fake_judge.url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def rubric_messages(prompt: str, code: str) -> list[dict[str, str]]:
    return prompts.rubric_messages(prompt, reference=None, context_code=code)


def free_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- success ------------------------------------------------------------------------------


def test_complete_returns_text_usage_and_metadata(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient]
) -> None:
    fake_judge.script("hello there, world")
    result = make_client().complete(MESSAGES, model="judge-x")
    assert isinstance(result, Completion)
    assert result.text == "hello there, world"
    assert result.finish_reason == "stop"
    assert result.retries == 0
    assert result.model == "fake-judge"  # what the server says answered, not what we asked
    assert result.latency_s > 0
    # The fake estimates tokens as len(text) // 4 + 1.
    assert result.usage.completion_tokens == len("hello there, world") // 4 + 1
    assert result.usage.prompt_tokens == len("Say hello.") // 4 + 1
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_body_has_optional_fields_only_when_given(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient]
) -> None:
    client = make_client()
    client.complete(MESSAGES, model="judge-x")
    client.complete(
        MESSAGES,
        model="judge-x",
        temperature=0.3,
        max_tokens=512,
        top_p=0.9,
        seed=7,
        response_format={"type": "json_object"},
    )
    plain, full = (r.body for r in fake_judge.requests)
    assert plain == {"model": "judge-x", "messages": MESSAGES, "temperature": 0.0}
    assert full["max_tokens"] == 512
    assert full["top_p"] == 0.9
    assert full["seed"] == 7
    assert full["response_format"] == {"type": "json_object"}
    assert full["temperature"] == 0.3
    assert fake_judge.requests[0].path == "/v1/chat/completions"


def test_list_models(make_client: Callable[..., ChatClient]) -> None:
    with FakeJudge(model="qwen-judge-7b") as other:
        assert make_client(other.url).list_models() == ["qwen-judge-7b"]


# -- base URL -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
        ("https://api.example.com/v1", "https://api.example.com/v1"),
        ("http://localhost:11434/v1", "http://localhost:11434/v1"),
        ("https://gateway.example.com/openai/v1//", "https://gateway.example.com/openai/v1"),
        ("  http://[::1]:8000  ", "http://[::1]:8000/v1"),
    ],
)
def test_base_url_is_normalized(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected
    with ChatClient(given) as client:
        assert client.base_url == expected


@pytest.mark.parametrize(
    "bad", ["", "localhost:8000", "127.0.0.1:8000/v1", "ftp://example.com/v1", "http://", "/v1"]
)
def test_invalid_base_url_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        ChatClient(bad)


def test_base_url_with_query_is_refused() -> None:
    with pytest.raises(ValueError, match="query"):
        normalize_base_url("http://127.0.0.1:8000/v1?api-version=1")


def test_bare_host_url_reaches_v1(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient]
) -> None:
    bare = fake_judge.url.removesuffix("/v1")
    assert make_client(bare).complete(MESSAGES, model="m").model == "fake-judge"
    assert fake_judge.requests[-1].path == "/v1/chat/completions"


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"max_retries": -1}, {"max_connections": 0}, {"backoff_base": -1.0}],
)
def test_invalid_settings_are_value_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ChatClient("http://127.0.0.1:8000/v1", **kwargs)


# -- authentication and secrecy -------------------------------------------------------------


def test_bearer_token_sent_only_when_given(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient]
) -> None:
    make_client(api_key=SECRET).complete(MESSAGES, model="m")
    make_client().complete(MESSAGES, model="m")
    with_key, without_key = fake_judge.requests
    assert with_key.headers["authorization"] == f"Bearer {SECRET}"
    assert "authorization" not in without_key.headers


def test_key_is_not_in_repr(make_client: Callable[..., ChatClient]) -> None:
    client = make_client(api_key=SECRET)
    assert SECRET not in repr(client)
    assert "***" in repr(client)


@pytest.mark.parametrize(
    ("status", "times"),
    [(401, 1), (400, 1), (404, 1), (500, 9)],
)
def test_key_is_never_in_error_messages(
    fake_judge: FakeJudge,
    make_client: Callable[..., ChatClient],
    status: int,
    times: int,
) -> None:
    # A server that echoes the key back in its error must not get it into our message.
    echo = json.dumps({"error": {"message": f"Incorrect API key provided: {SECRET}"}})
    fake_judge.fail(status, times=times, body=echo)
    with pytest.raises(JudgeUnavailableError) as caught:
        make_client(api_key=SECRET, max_retries=1).complete(MESSAGES, model="m")
    assert SECRET not in str(caught.value)
    assert "Incorrect API key provided: ***" in str(caught.value)


def test_key_is_not_in_connection_errors(make_client: Callable[..., ChatClient]) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}/v1", api_key=SECRET, max_retries=0)
    with pytest.raises(JudgeUnavailableError) as caught:
        client.complete(MESSAGES, model="m")
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


# -- retries --------------------------------------------------------------------------------


def test_server_errors_are_retried_then_succeed(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient], sleeps: Sleeps
) -> None:
    fake_judge.fail(500)
    fake_judge.fail(502)
    fake_judge.fail(503)
    fake_judge.script("finally")
    client = make_client(backoff_base=1.0, backoff_max=3.0)
    result = client.complete(MESSAGES, model="m")
    assert result.text == "finally"
    assert result.retries == 3
    assert fake_judge.request_count == 4
    # Full jitter: each delay is uniform in [0, min(backoff_max, base * 2**attempt)].
    assert len(sleeps) == 3
    for delay, ceiling in zip(sleeps, (1.0, 2.0, 3.0), strict=True):
        assert 0.0 <= delay <= ceiling


@pytest.mark.parametrize("status", [408, 429, 504])
def test_other_transient_statuses_are_retried(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient], status: int
) -> None:
    fake_judge.fail(status)
    assert make_client().complete(MESSAGES, model="m").retries == 1
    assert fake_judge.request_count == 2


def test_retry_after_seconds_is_honoured(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient], sleeps: Sleeps
) -> None:
    fake_judge.fail(429, retry_after=7)
    result = make_client(backoff_max=1.0).complete(MESSAGES, model="m")
    assert result.retries == 1
    assert sleeps == [7.0]  # not the (at most 1s) backoff


def test_retry_after_is_capped(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient], sleeps: Sleeps
) -> None:
    fake_judge.fail(429, retry_after=1000)
    make_client(retry_after_max=5.0).complete(MESSAGES, model="m")
    assert sleeps == [5.0]


def test_retry_after_http_date_is_honoured(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient], sleeps: Sleeps
) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    fake_judge.fail(429, retry_after=format_datetime(when, usegmt=True))
    make_client().complete(MESSAGES, model="m")
    assert len(sleeps) == 1
    assert 25.0 < sleeps[0] <= 30.0


def test_retries_exhausted_names_the_status(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient], sleeps: Sleeps
) -> None:
    fake_judge.fail(503, times=10)
    with pytest.raises(JudgeUnavailableError) as caught:
        make_client(max_retries=2).complete(MESSAGES, model="m")
    message = str(caught.value)
    assert "HTTP 503 Service Unavailable" in message
    assert "after 3 attempts" in message
    assert "\n" not in message
    assert fake_judge.request_count == 3  # max_retries + 1, no more
    assert len(sleeps) == 2
    assert caught.value.kind == "unavailable"


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "RUBRIC_JUDGE_API_KEY / OPENAI_API_KEY"),
        (403, "RUBRIC_JUDGE_API_KEY / OPENAI_API_KEY"),
        (404, "(should end in /v1) and --judge-model (asked for 'judge-x')"),
        (400, "fake judge failure: Bad Request"),
        (422, "rejected"),
    ],
)
def test_client_errors_are_not_retried_and_give_a_hint(
    fake_judge: FakeJudge,
    make_client: Callable[..., ChatClient],
    sleeps: Sleeps,
    status: int,
    hint: str,
) -> None:
    fake_judge.fail(status, times=5)
    with pytest.raises(JudgeUnavailableError) as caught:
        make_client().complete(MESSAGES, model="judge-x")
    assert f"HTTP {status}" in str(caught.value)
    assert hint in str(caught.value)
    assert fake_judge.request_count == 1
    assert sleeps == []


def test_wrong_path_is_a_404_naming_the_url(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient]
) -> None:
    wrong = fake_judge.url.replace("/v1", "/api")
    with pytest.raises(JudgeUnavailableError, match=r"HTTP 404 .*/api/chat/completions.*/v1"):
        make_client(wrong).complete(MESSAGES, model="m")


def test_long_server_message_is_truncated(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient]
) -> None:
    fake_judge.fail(400, body=json.dumps({"error": {"message": "x" * 5000}}))
    with pytest.raises(JudgeUnavailableError) as caught:
        make_client().complete(MESSAGES, model="m")
    message = str(caught.value)
    assert "x" * 299 in message
    assert "x" * 300 not in message
    assert len(message) < 600


def test_plain_text_error_body_is_quoted(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient]
) -> None:
    fake_judge.fail(400, body="model 'nope' is not loaded\n(try another)")
    with pytest.raises(JudgeUnavailableError, match=r"model 'nope' is not loaded \(try another\)"):
        make_client().complete(MESSAGES, model="m")


# -- transport failures ---------------------------------------------------------------------


def test_connection_refused_fails_fast_with_hint(
    make_client: Callable[..., ChatClient], sleeps: Sleeps
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.perf_counter()
    with pytest.raises(JudgeUnavailableError) as caught:
        make_client(url, max_retries=3).complete(MESSAGES, model="m")
    assert time.perf_counter() - started < 5.0
    message = str(caught.value)
    assert f"judge at {url} refused the connection after 4 attempts" in message
    assert "is the server running?" in message
    assert "--judge-url / RUBRIC_JUDGE_BASE_URL" in message
    assert len(sleeps) == 3


def test_timeout_names_the_limit(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient]
) -> None:
    fake_judge.fault("hang")
    started = time.perf_counter()
    with pytest.raises(JudgeUnavailableError) as caught:
        make_client(timeout=0.5, max_retries=0).complete(MESSAGES, model="m")
    assert time.perf_counter() - started < 5.0
    assert "no answer within 0.5s (timeout)" in str(caught.value)
    assert "--judge-timeout" in str(caught.value)


def test_timeout_is_retried(fake_judge: FakeJudge, make_client: Callable[..., ChatClient]) -> None:
    fake_judge.fault("hang")
    fake_judge.script("after the hang")
    result = make_client(timeout=0.5, max_retries=1).complete(MESSAGES, model="m")
    assert (result.text, result.retries) == ("after the hang", 1)


def test_reset_connection_is_an_error_then_retried(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient]
) -> None:
    fake_judge.fault("reset")
    with pytest.raises(JudgeUnavailableError, match="closed or reset the connection"):
        make_client(max_retries=0).complete(MESSAGES, model="m")
    fake_judge.fault("reset")
    fake_judge.script("recovered")
    result = make_client(max_retries=1).complete(MESSAGES, model="m")
    assert (result.text, result.retries) == ("recovered", 1)


# -- malformed answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected"),
    [("non_json", "body that is not JSON"), ("no_choices", "without `choices`")],
)
def test_malformed_bodies_are_errors_and_not_retried(
    fake_judge: FakeJudge,
    make_client: Callable[..., ChatClient],
    fault: str,
    expected: str,
) -> None:
    fake_judge.fault(fault)  # type: ignore[arg-type]
    with pytest.raises(JudgeUnavailableError) as caught:
        make_client().complete(MESSAGES, model="m")
    assert expected in str(caught.value)
    assert "OpenAI-compatible" in str(caught.value)
    assert fake_judge.request_count == 1


def test_empty_content_is_returned_as_empty_text(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient]
) -> None:
    fake_judge.fault("empty")
    result = make_client().complete(MESSAGES, model="m")
    assert result.text == ""
    assert result.finish_reason == "stop"


def test_truncated_answer_keeps_finish_reason_length(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient]
) -> None:
    fake_judge.fault("truncated")
    fake_judge.script("0123456789")
    result = make_client().complete(MESSAGES, model="m")
    assert result.finish_reason == "length"
    assert result.text == "01234"


def _mock_client(reply: Callable[[httpx.Request], httpx.Response]) -> ChatClient:
    return ChatClient(
        "http://judge.invalid/v1", transport=httpx.MockTransport(reply), sleep=Sleeps()
    )


def test_null_content_and_missing_usage_and_model() -> None:
    body = {"choices": [{"message": {"role": "assistant", "content": None}}]}
    with _mock_client(lambda request: httpx.Response(200, json=body)) as client:
        result = client.complete(MESSAGES, model="asked-for")
    assert result.text == ""
    assert result.usage.total_tokens == 0
    assert result.model == "asked-for"
    assert result.finish_reason is None


def test_content_parts_are_joined() -> None:
    parts = [{"type": "text", "text": "scores: "}, {"type": "text", "text": "[]"}]
    body = {"choices": [{"message": {"content": parts}, "finish_reason": "stop"}]}
    with _mock_client(lambda request: httpx.Response(200, json=body)) as client:
        assert client.complete(MESSAGES, model="m").text == "scores: []"


@pytest.mark.parametrize(
    "body",
    [{"choices": [{"message": {"role": "assistant"}}]}, {"choices": [{"text": "legacy"}]}],
)
def test_choice_without_message_content_is_an_error(body: dict[str, object]) -> None:
    with _mock_client(lambda request: httpx.Response(200, json=body)) as client:
        with pytest.raises(JudgeUnavailableError, match=r"without `message.content`"):
            client.complete(MESSAGES, model="m")


def test_redirect_is_not_followed_and_names_the_target() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(308, headers={"location": "https://judge.invalid/v1/chat"})

    with _mock_client(reply) as client:
        with pytest.raises(JudgeUnavailableError, match=r"redirecting to https://judge\.invalid"):
            client.complete(MESSAGES, model="m")


# -- concurrency ----------------------------------------------------------------------------


def test_concurrent_calls_share_one_client(make_client: Callable[..., ChatClient]) -> None:
    """Eight threads on one client are eight requests in flight at once: the server holds
    every answer until all eight have arrived (an event, not a stopwatch), so a client
    that queued them would time out instead."""
    arrived = threading.Barrier(8, timeout=10)

    def behave(request: WireRequest, conn: Connection) -> None:
        arrived.wait()  # BrokenBarrierError (no answer) unless all eight are in flight
        question = json.loads(request.body)["messages"][-1]["content"]
        body = completion_body(f"answer to {question}")
        conn.send(response_head(content_length=str(len(body)), connection="close") + body)

    with WireServer(behave) as server:
        client = make_client(server.url, max_connections=8, timeout=20.0)
        questions = [f"Describe planet number{i} briefly." for i in range(8)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(
                pool.map(
                    lambda q: client.complete([{"role": "user", "content": q}], model="m"),
                    questions,
                )
            )
        assert len(server.requests) == 8
    # Each thread got the answer to its own question.
    for i, result in enumerate(results):
        assert result.text == f"answer to Describe planet number{i} briefly."
        assert result.retries == 0


def test_client_is_usable_from_many_threads_under_failures(
    fake_judge: FakeJudge, make_client: Callable[..., ChatClient]
) -> None:
    fake_judge.fail(503, times=4)
    client = make_client(max_retries=4)  # enough even if one thread meets every failure
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.complete(MESSAGES, model="m")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert fake_judge.request_count == 12  # 8 calls + 4 retried failures


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 0.0, -1.0])
def test_both_clients_refuse_a_timeout_that_is_not_positive_and_finite(timeout: float) -> None:
    from pytest_rubric_judge.aio import AsyncChatClient

    for client in (ChatClient, AsyncChatClient):
        with pytest.raises(ValueError, match="timeout must be a positive, finite number"):
            client("http://127.0.0.1:9/v1", timeout=timeout)
