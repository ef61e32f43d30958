"""The same wire-level cases over every client: blocking, asyncio, and each behind the
multi-endpoint client (whose first endpoint is dead, so every request fails over first).

Each case is a server that behaves one way on the wire (tests/support/wire_server.py)
and what every client must make of it: the same text, or the same typed error. The
judge-level cases at the end run the blocking `Judge` and the batch over two replicas.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.wire_server import (
    Connection,
    WireRequest,
    WireServer,
    completion_body,
    response_head,
)

from pytest_rubric_judge.aio import AsyncChatClient
from pytest_rubric_judge.client import ChatClient
from pytest_rubric_judge.endpoints import AsyncMultiClient, MultiClient
from pytest_rubric_judge.errors import JudgeUnavailableError
from pytest_rubric_judge.http_policy import Completion
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.models import LABELS
from pytest_rubric_judge.testing import FakeJudge

MESSAGES = [{"role": "user", "content": "Say hello."}]
CLIENTS = ["sync", "async", "multi-sync", "multi-async"]
SECRET = "sk-conformance-SENTINEL-77aa"


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def complete(kind: str, url: str, **options: Any) -> Completion:
    """One completion through the client `kind`, with no backoff waits."""
    options = {"timeout": 5.0, "max_retries": 1, "backoff_base": 0.0, **options}
    response_format = options.pop("response_format", None)
    extra = {"response_format": response_format} if response_format else {}
    if kind in ("sync", "multi-sync"):
        clients = [ChatClient(url, sleep=lambda _: None, **options)]
        if kind == "multi-sync":
            clients.insert(0, ChatClient(dead_url(), sleep=lambda _: None, **options))
        client: ChatClient | MultiClient = clients[0] if kind == "sync" else MultiClient(clients)
        try:
            return client.complete(MESSAGES, model="m", **extra)
        finally:
            client.close()

    async def run() -> Completion:
        aclients = [AsyncChatClient(url, **options)]
        if kind == "multi-async":
            aclients.insert(0, AsyncChatClient(dead_url(), **options))
        aclient = aclients[0] if kind == "async" else AsyncMultiClient(aclients)
        try:
            return await aclient.complete(MESSAGES, model="m", **extra)
        finally:
            for each in aclients:
                await each.aclose()

    return asyncio.run(run())


@pytest.fixture(params=CLIENTS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def serve() -> Iterator[Callable[..., WireServer]]:
    servers: list[WireServer] = []

    def start(behave: Callable[[WireRequest, Connection], None]) -> WireServer:
        server = WireServer(behave)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def ok(text: str = "hello") -> Callable[[WireRequest, Connection], None]:
    def behave(request: WireRequest, conn: Connection) -> None:
        body = completion_body(text)
        conn.send(response_head(content_length=str(len(body)), connection="close") + body)

    return behave


# -- bodies --------------------------------------------------------------------------------


def test_content_length_body(kind: str, serve: Callable[..., WireServer]) -> None:
    assert complete(kind, serve(ok("plain")).url).text == "plain"


def test_body_ending_at_connection_close(kind: str, serve: Callable[..., WireServer]) -> None:
    """No Content-Length, no chunking: the body is everything until the server closes."""
    text = "x" * 200_000  # several socket reads

    def behave(request: WireRequest, conn: Connection) -> None:
        conn.send(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n")
        body = completion_body(text)
        for start in range(0, len(body), 7000):
            conn.send(body[start : start + 7000])

    assert complete(kind, serve(behave).url).text == text


def test_chunked_body(kind: str, serve: Callable[..., WireServer]) -> None:
    def behave(request: WireRequest, conn: Connection) -> None:
        body = completion_body("chunks")
        conn.send(response_head(transfer_encoding="chunked", connection="close"))
        for start in range(0, len(body), 10):
            part = body[start : start + 10]
            conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        conn.send(b"0\r\n\r\n")

    assert complete(kind, serve(behave).url).text == "chunks"


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_compressed_body_is_decoded(
    kind: str, serve: Callable[..., WireServer], coding: str
) -> None:
    def behave(request: WireRequest, conn: Connection) -> None:
        raw = completion_body("squeezed")
        body = gzip.compress(raw) if coding == "gzip" else zlib.compress(raw)
        conn.send(
            response_head(
                content_encoding=coding, content_length=str(len(body)), connection="close"
            )
            + body
        )

    assert complete(kind, serve(behave).url).text == "squeezed"


def test_compression_bomb_is_refused_with_little_memory(
    kind: str, serve: Callable[..., WireServer]
) -> None:
    """64 MB of zeros in a 65 KB gzip body: refused past the cap, never inflated whole."""
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000

    def behave(request: WireRequest, conn: Connection) -> None:
        conn.send(
            response_head(
                content_encoding="gzip", content_length=str(len(bomb)), connection="close"
            )
            + bomb
        )

    url = serve(behave).url
    tracemalloc.start()
    try:
        with pytest.raises(JudgeUnavailableError) as caught:
            complete(kind, url, max_retries=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.cause == "too_large"
    assert "larger than the limit" in str(caught.value)
    assert peak < 40 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while refusing the bomb"


def test_oversized_content_length_is_refused(kind: str, serve: Callable[..., WireServer]) -> None:
    def behave(request: WireRequest, conn: Connection) -> None:
        conn.send(response_head(content_length=str(10**9), connection="close") + b"{}")

    with pytest.raises(JudgeUnavailableError) as caught:
        complete(kind, serve(behave).url, max_retries=0)
    assert caught.value.cause == "too_large"


def test_body_that_is_not_json(kind: str, serve: Callable[..., WireServer]) -> None:
    def behave(request: WireRequest, conn: Connection) -> None:
        conn.send(response_head(content_length="9", connection="close") + b"<html>hi<")

    with pytest.raises(JudgeUnavailableError) as caught:
        complete(kind, serve(behave).url)
    assert caught.value.cause == "bad_body"
    assert "not JSON" in str(caught.value)


# -- deadlines -----------------------------------------------------------------------------


def trickle(head: bytes, body: bytes, every_s: float = 0.2) -> Callable[..., None]:
    """Send `head` then `body` a byte at a time; stop when the client hangs up."""

    def behave(request: WireRequest, conn: Connection) -> None:
        for byte in head + body:
            if not conn.send(bytes([byte])):
                return
            time.sleep(every_s)

    return behave


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_trickle_is_bounded_by_the_timeout(
    kind: str, serve: Callable[..., WireServer], where: str
) -> None:
    """A byte every 0.2 s never trips a per-read timeout; the attempt's deadline ends it."""
    body = completion_body("slow")
    head = response_head(content_length=str(len(body)), connection="close")
    if where == "body":
        server = serve(_head_then(head, body))
    else:
        server = serve(trickle(head, body))
    with pytest.raises(JudgeUnavailableError) as caught:
        complete(kind, server.url, timeout=1.0, max_retries=0)
    assert caught.value.cause == "timeout"
    # The whole trickle would take over 60 s; the client hung up long before.
    assert _hung_up_within(server, 15.0)


def _head_then(head: bytes, body: bytes) -> Callable[..., None]:
    def behave(request: WireRequest, conn: Connection) -> None:
        if not conn.send(head):
            return
        for byte in body:
            if not conn.send(bytes([byte])):
                return
            time.sleep(0.2)

    return behave


def test_a_chunked_body_that_never_ends(kind: str, serve: Callable[..., WireServer]) -> None:
    def behave(request: WireRequest, conn: Connection) -> None:
        conn.send(response_head(transfer_encoding="chunked", connection="close"))
        while conn.send(b"1\r\n \r\n"):
            time.sleep(0.05)

    server = serve(behave)
    with pytest.raises(JudgeUnavailableError) as caught:
        complete(kind, server.url, timeout=1.0, max_retries=0)
    assert caught.value.cause == "timeout"
    assert _hung_up_within(server, 15.0)


def _hung_up_within(server: WireServer, seconds: float) -> bool:
    waited = 0.0
    while not server.durations and waited < seconds:
        time.sleep(0.05)
        waited += 0.05
    return bool(server.durations) and all(d < seconds for d in server.durations)


# -- statuses and retries ------------------------------------------------------------------


def status_then_ok(status: int, times: int = 1, **headers: str) -> Callable[..., None]:
    seen = [0]

    def behave(request: WireRequest, conn: Connection) -> None:
        seen[0] += 1
        if seen[0] <= times:
            body = json.dumps({"error": {"message": f"status {status}"}}).encode()
            conn.send(
                response_head(
                    status, "X", content_length=str(len(body)), connection="close", **headers
                )
                + body
            )
        else:
            ok("recovered")(request, conn)

    return behave


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_status_is_retried(
    kind: str, serve: Callable[..., WireServer], status: int
) -> None:
    server = serve(status_then_ok(status, retry_after="0"))
    result = complete(kind, server.url, max_retries=2)
    assert result.text == "recovered"
    assert result.retries == 1


def test_reset_before_answer_is_retried(kind: str, serve: Callable[..., WireServer]) -> None:
    seen = [0]

    def behave(request: WireRequest, conn: Connection) -> None:
        seen[0] += 1
        if seen[0] == 1:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            return  # closed with RST by the server's finally
        ok("again")(request, conn)

    assert complete(kind, serve(behave).url, max_retries=2).text == "again"


@pytest.mark.parametrize("status", [400, 401, 404, 422, 501])
def test_refusals_are_not_retried_nor_failed_over(
    kind: str, serve: Callable[..., WireServer], status: int
) -> None:
    server = serve(status_then_ok(status, times=99))
    with pytest.raises(JudgeUnavailableError) as caught:
        complete(kind, server.url, max_retries=3)
    error = caught.value
    assert error.status == status
    assert error.cause == "status"
    assert not error.failover
    assert len(server.requests) == 1


def test_refused_connection_is_typed(kind: str) -> None:
    with pytest.raises(JudgeUnavailableError) as caught:
        complete(kind, dead_url(), max_retries=0)
    assert caught.value.cause in ("refused",) or "every judge endpoint failed" in str(caught.value)
    assert caught.value.failover


# -- credentials -----------------------------------------------------------------------------


def echo_auth(request: WireRequest, conn: Connection) -> None:
    """Answer with the Authorization header it received (as a careless server might)."""
    ok(request.headers.get("authorization", "none"))(request, conn)


def test_basic_auth_from_the_url(kind: str, serve: Callable[..., WireServer]) -> None:
    server = serve(echo_auth)
    url = server.url.replace("http://", "http://judge:pa%24%24word@")
    text = complete(kind, url).text
    assert text == "Basic anVkZ2U6cGEkJHdvcmQ="  # judge:pa$$word


def test_bearer_key_never_in_an_error(kind: str, serve: Callable[..., WireServer]) -> None:
    def behave(request: WireRequest, conn: Connection) -> None:
        said = json.dumps({"error": {"message": f"bad key {request.headers['authorization']}"}})
        conn.send(
            response_head(401, "Unauthorized", content_length=str(len(said)), connection="close")
            + said.encode()
        )

    with pytest.raises(JudgeUnavailableError) as caught:
        complete(kind, serve(behave).url, api_key=SECRET)
    assert SECRET not in str(caught.value)
    assert "***" in str(caught.value)


# -- the judge over two replicas, through both drivers ----------------------------------------


def schema_refusing_proxy(fake: FakeJudge) -> Callable[..., None]:
    """501 to any request with `response_format` (as a server without schema support);
    other requests are answered by the fake judge."""
    import httpx

    def behave(request: WireRequest, conn: Connection) -> None:
        body = request.json() or {}
        if "response_format" in body:
            said = b'{"error": {"message": "response_format is not implemented"}}'
            conn.send(
                response_head(
                    501, "Not Implemented", content_length=str(len(said)), connection="close"
                )
                + said
            )
            return
        answer = httpx.post(fake.url + "/chat/completions", content=request.body, timeout=10)
        conn.send(
            response_head(content_length=str(len(answer.content)), connection="close")
            + answer.content
        )

    return behave


@pytest.mark.parametrize("driver", ["blocking", "batch-async", "batch-threads"])
def test_two_replicas_refusing_schemas_fall_back_and_give_the_verdict(
    serve: Callable[..., WireServer], driver: str
) -> None:
    with FakeJudge() as fake:
        first, second = serve(schema_refusing_proxy(fake)), serve(schema_refusing_proxy(fake))
        with Judge(
            f"{first.url},{second.url}", fake.model, max_retries=0, structured_output="auto"
        ) as judge:
            prompt, good, bad = "Name three primes.", "2, 3 and 5.", "No idea."
            if driver == "blocking":
                verdict = judge.compare(prompt, bad, good)
            else:
                transport = driver.split("-")[1]
                rows = [{"prompt": prompt, "response_A": bad, "response_B": good}]
                (result,) = list(judge.compare_many(rows, transport=transport))
                assert result.error is None, result.error
                verdict = result.verdict
            assert verdict is not None
            assert verdict.preference in LABELS
            stats = judge.stats.as_dict()
    assert stats["judge_errors"] == 0  # the fallback recovered: not an error
    assert stats["structured_fallbacks"] == 1


# -- proxies from the environment ----------------------------------------------------------


def test_a_remote_judge_is_reached_through_the_environment_proxy(
    kind: str, serve: Callable[..., WireServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy receives the request in absolute form and answers for the judge."""
    proxy = serve(ok("via proxy"))
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    if kind.startswith("multi"):
        pytest.skip("the dead first endpoint is on loopback, which never uses a proxy")
    assert complete(kind, "http://judge.example.invalid/v1").text == "via proxy"
    (request,) = proxy.requests
    assert request.path == "http://judge.example.invalid/v1/chat/completions"


def test_a_judge_on_this_machine_never_uses_the_proxy(
    kind: str, serve: Callable[..., WireServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_url().split(':')[2][:-3]}")
    assert complete(kind, serve(ok("direct")).url).text == "direct"


@pytest.mark.parametrize("value", ["http://user:hunter2hunter2@proxy:notaport", "ftp://proxy:21"])
def test_a_malformed_proxy_setting_is_a_clear_error(
    kind: str, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", value)
    with pytest.raises(ValueError, match="HTTPS_PROXY") as caught:
        complete(kind, "https://judge.example.invalid/v1")
    assert "hunter2hunter2" not in str(caught.value)
