"""compare_many: streaming, concurrency, one rubric per prompt, error rows, resume; aio client."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_rubric_judge.aio import AsyncChatClient
from pytest_rubric_judge.batch import RowResult, compare_many
from pytest_rubric_judge.calls import CallCore
from pytest_rubric_judge.errors import JudgeUnavailableError
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.testing import FakeJudge, FixedPolicy


def _rows(count: int, prompts: int) -> list[dict[str, object]]:
    return [
        {
            "id": f"r{i}",
            "prompt": f"What is the capital of France? ({i % prompts})",
            "response_A": "Paris.",
            "response_B": f"Paris is the capital of France, on the Seine ({i}).",
        }
        for i in range(count)
    ]


def test_one_rubric_per_prompt_and_same_verdicts_as_compare(fake_judge: FakeJudge) -> None:
    rows = _rows(24, prompts=6)
    with Judge(fake_judge.url, fake_judge.model) as judge:
        results = list(judge.compare_many(rows, concurrency=8))
        assert fake_judge.request_count == 6 + 2 * 24  # one rubric per distinct prompt
        assert sorted(r.index for r in results) == list(range(24))
        assert all(isinstance(r, RowResult) and r.ok for r in results)
        by_index = {r.index: r for r in results}
        for index in (0, 7, 23):
            row = rows[index]
            single = judge.compare(str(row["prompt"]), "Paris.", str(row["response_B"]))
            verdict = by_index[index].verdict
            assert verdict is not None
            assert verdict.preference == single.preference
            assert verdict.weighted_b == pytest.approx(single.weighted_b)
            assert by_index[index].id == f"r{index}"


def test_error_rows_are_recorded_and_the_run_goes_on(fake_judge: FakeJudge) -> None:
    rows: list[dict[str, object]] = [
        {"prompt": "first prompt?", "response_A": "a", "response_B": "b"},
        {"prompt": "no responses"},
        {"prompt": "third prompt?", "response_A": "x", "response_B": "y"},
    ]
    fake_judge.fail(401, times=1)  # the first row's rubric request is refused, no retry
    with Judge(fake_judge.url, fake_judge.model, max_retries=0) as judge:
        results = {r.index: r for r in compare_many(judge, rows, concurrency=1)}
    assert results[0].verdict is None and results[0].error_type == "JudgeUnavailableError"
    assert "401" in (results[0].error or "")
    assert results[1].error_type == "InvalidRow" and "response_A" in (results[1].error or "")
    assert results[2].ok and results[2].prompt == "third prompt?"


def test_requests_run_concurrently() -> None:
    # 1 rubric + 32 passes of 0.2 s each: about 6.6 s one at a time, about 0.6 s at 16.
    rows = [{"prompt": "same prompt", "response_A": f"a{i}", "response_B": "b"} for i in range(16)]
    with FakeJudge(latency=0.2) as fake, Judge(fake.url, fake.model) as judge:
        started = time.monotonic()
        results = list(judge.compare_many(rows, concurrency=16))
        elapsed = time.monotonic() - started
    assert len(results) == 16 and fake.request_count == 33
    assert elapsed < 2.5


def test_rows_are_read_lazily_and_stopping_cancels(fake_judge: FakeJudge) -> None:
    pulled = 0

    def endless() -> Iterator[dict[str, object]]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield {"prompt": "p", "response_A": f"a{i}", "response_B": "b"}

    with Judge(fake_judge.url, fake_judge.model) as judge:
        results = judge.compare_many(endless(), concurrency=2)
        first = list(itertools.islice(results, 5))
        results.close()  # type: ignore[attr-defined]
    assert len(first) == 5
    assert pulled < 5 + 2 * 2 + 8 + 2  # at most the window ahead of the consumer


def _on_send(monkeypatch: pytest.MonkeyPatch, record: Callable[[], object]) -> None:
    """Call `record` each time the asyncio client is asked for a completion."""
    send = AsyncChatClient.complete

    async def recording(self, messages, **options):  # type: ignore[no-untyped-def]
        record()
        return await send(self, messages, **options)

    monkeypatch.setattr(AsyncChatClient, "complete", recording)


def test_the_first_rows_send_their_requests_before_the_window_fills(
    fake_judge: FakeJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run starts a window of 2 x concurrency + 8 rows at once. Each started row gets a
    # turn of the loop before the next is read, so the first request leaves at once
    # instead of after every row of the window has done its cache lookups.
    pulled = 0
    pulled_at_send: list[int] = []

    def counted() -> Iterator[dict[str, object]]:
        nonlocal pulled
        for row in _rows(40, prompts=40):
            pulled += 1
            yield row

    _on_send(monkeypatch, lambda: pulled_at_send.append(pulled))
    with Judge(fake_judge.url, fake_judge.model) as judge:
        results = list(compare_many(judge, counted(), concurrency=16))
    assert len(results) == 40 and all(r.ok for r in results)
    assert pulled_at_send[0] <= 2  # (40 without the turn: the whole window first)


def test_a_freed_slot_sends_the_next_request_before_the_answer_is_read(
    fake_judge: FakeJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With every slot taken, the request waiting for one leaves as soon as a slot frees,
    # before the answer that freed it is read and stored: the slots stay in use.
    events: list[str] = []
    store = CallCore._store

    def stored(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        events.append("stored")
        return store(self, *args, **kwargs)

    _on_send(monkeypatch, lambda: events.append("send"))
    monkeypatch.setattr(CallCore, "_store", stored)
    with Judge(fake_judge.url, fake_judge.model) as judge:
        results = list(compare_many(judge, _rows(3, prompts=3), concurrency=1))
    assert len(results) == 3 and all(r.ok for r in results)
    assert events[:3] == ["send", "send", "stored"]  # (else: send, stored, send)


def test_interrupted_run_resumes_from_the_cache(fake_judge: FakeJudge, tmp_path: Path) -> None:
    rows = _rows(12, prompts=12)
    with Judge(fake_judge.url, fake_judge.model, cache_dir=tmp_path) as judge:
        results = judge.compare_many(rows, concurrency=2)
        finished = list(itertools.islice(results, 4))
        results.close()  # type: ignore[attr-defined]
    first_run = fake_judge.request_count
    assert len(finished) == 4 and first_run < 3 * 12
    with Judge(fake_judge.url, fake_judge.model, cache_dir=tmp_path) as judge:
        resumed = list(judge.compare_many(rows, concurrency=4))
        assert judge.stats.cache_hits >= 3 * 4  # the finished rows were not asked again
    assert len(resumed) == 12 and all(r.ok for r in resumed)
    assert fake_judge.request_count - first_run <= 3 * 12 - 3 * 4
    before = fake_judge.request_count
    with Judge(fake_judge.url, fake_judge.model, cache_dir=tmp_path) as judge:
        again = list(judge.compare_many(rows, concurrency=4))
    assert fake_judge.request_count == before
    assert all(r.verdict is not None and r.verdict.cached for r in again)


_KILLED_RUN = """
import sys
from pytest_rubric_judge.judge import Judge
url, cache, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [{"id": f"r{i}", "prompt": f"Capital of France? ({i})", "response_A": "Paris.",
         "response_B": f"Paris, on the Seine ({i})."} for i in range(count)]
judge = Judge(url, "fake-judge", cache_dir=cache)
for result in judge.compare_many(rows, concurrency=4):
    print(result.id, flush=True)
"""


def test_a_killed_run_keeps_every_answer_older_than_the_write_delay(tmp_path: Path) -> None:
    """Answers are stored in batches; SIGKILL loses at most the last `WRITE_DELAY_S`."""
    import signal
    import subprocess
    import sys

    from pytest_rubric_judge.batch import WRITE_DELAY_S

    # Slow enough that fewer answers than a batch (`WRITE_BATCH`) arrive: only the timer
    # stores them.
    with FakeJudge(latency=0.1) as fake:
        run = subprocess.Popen(
            [sys.executable, "-c", _KILLED_RUN, fake.url, str(tmp_path), "400"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert run.stdout is not None
        finished = [run.stdout.readline().strip() for _ in range(6)]
        time.sleep(2 * WRITE_DELAY_S)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
    assert run.returncode == -signal.SIGKILL
    rows = [
        {"id": f"r{i}", "prompt": f"Capital of France? ({i})", "response_A": "Paris.",
         "response_B": f"Paris, on the Seine ({i})."}
        for i in range(400)
    ]  # fmt: skip
    # No judge at all: only what the killed run stored can answer.
    with Judge(None, "fake-judge", cache_dir=tmp_path, cache_mode="replay") as judge:
        replayed = {r.id: r for r in judge.compare_many(rows, concurrency=8)}
    assert all(replayed[row_id].ok for row_id in finished), finished
    assert sum(r.ok for r in replayed.values()) < 400  # the run was killed part way


def test_thread_transport_gives_the_same_verdicts(fake_judge: FakeJudge) -> None:
    rows = _rows(6, prompts=3)
    with Judge(fake_judge.url, fake_judge.model) as judge:
        threaded = {r.index: r.verdict for r in compare_many(judge, rows, transport="threads")}
        asynced = {r.index: r.verdict for r in compare_many(judge, rows, transport="async")}
    assert threaded.keys() == asynced.keys()
    for index, verdict in threaded.items():
        other = asynced[index]
        assert verdict is not None and other is not None
        assert (verdict.preference, verdict.margin) == (other.preference, other.margin)


def test_position_bias_shows_as_inconsistent() -> None:
    rows = _rows(3, prompts=1)
    with FakeJudge(FixedPolicy("A>B", 5, 2)) as fake, Judge(fake.url, fake.model) as judge:
        results = list(judge.compare_many(rows))
    assert all(r.verdict is not None and not r.verdict.consistent for r in results)
    assert {r.verdict.preference for r in results if r.verdict} == {"A=B"}


def test_bad_concurrency_is_refused(fake_judge: FakeJudge) -> None:
    with Judge(fake_judge.url, fake_judge.model) as judge, pytest.raises(ValueError):
        compare_many(judge, [], concurrency=0)


# -- the asyncio client --------------------------------------------------------------------


def test_aio_client_retries_a_503_and_reads_usage(fake_judge: FakeJudge) -> None:
    fake_judge.fail(503, times=1, retry_after=0)

    async def call() -> tuple[str, int, int]:
        async with AsyncChatClient(fake_judge.url, max_retries=2) as client:
            completion = await client.complete(
                [{"role": "user", "content": "hello"}], model=fake_judge.model
            )
            return completion.text, completion.retries, completion.usage.prompt_tokens

    text, retries, tokens = asyncio.run(call())
    assert retries == 1 and tokens > 0 and isinstance(text, str)


def test_aio_client_error_names_the_cause_without_the_key(fake_judge: FakeJudge) -> None:
    fake_judge.fail(401, times=1, body='{"error": {"message": "bad key sk-secret-123"}}')

    async def call() -> None:
        async with AsyncChatClient(fake_judge.url, api_key="sk-secret-123") as client:
            await client.complete([{"role": "user", "content": "x"}], model="m")

    with pytest.raises(JudgeUnavailableError) as caught:
        asyncio.run(call())
    message = str(caught.value)
    assert "401" in message and "sk-secret-123" not in message and "API_KEY" in message


def test_aio_client_reads_chunked_bodies_and_reports_refused_connections() -> None:
    body = b'{"choices": [{"message": {"content": "chunked ok"}, "finish_reason": "stop"}]}'

    async def scenario() -> tuple[str, str]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            half = len(body) // 2
            chunks = b"".join(
                b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:])
            )
            writer.write(head + chunks + b"0\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            async with AsyncChatClient(f"http://127.0.0.1:{port}/v1") as client:
                text = (await client.complete([], model="m")).text
        refused = ""
        async with AsyncChatClient(
            f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=5
        ) as client:
            try:
                await client.complete([], model="m")
            except JudgeUnavailableError as exc:
                refused = str(exc)
        return text, refused

    text, refused = asyncio.run(scenario())
    assert text == "chunked ok"
    assert "refused" in refused


def test_batch_and_single_compare_share_cache_entries(
    fake_judge: FakeJudge, tmp_path: Path
) -> None:
    rows = _rows(3, prompts=3)
    with Judge(fake_judge.url, fake_judge.model, cache_dir=tmp_path) as judge:
        for row in rows:
            judge.compare(str(row["prompt"]), str(row["response_A"]), str(row["response_B"]))
    before = fake_judge.request_count
    with Judge(fake_judge.url, fake_judge.model, cache_dir=tmp_path) as judge:
        results = list(judge.compare_many(rows))
    assert fake_judge.request_count == before  # same keys, structured output included
    assert all(r.verdict is not None and r.verdict.cached for r in results)
