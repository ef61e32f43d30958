"""Many comparisons at once: rows stream in, verdicts stream out as they finish.

`compare_many(judge, rows)` judges every row (a prompt and responses A and B) with the
judge's protocol, cache and settings, keeping up to `concurrency` judge requests in flight.
It is built for prompt sets of hundreds to hundreds of thousands of rows:

- Rows are read lazily and results are handed out as soon as they finish, with at most a
  fixed window of rows in memory, so memory stays flat however long the input is.
- One rubric per distinct (prompt, reference): rows sharing a prompt wait for the same
  rubric request, and recently used rubrics are kept in a bounded memo (the cache holds
  the rest).
- Every judge call goes through the judge's cache first, so a run that was interrupted
  resumes where it stopped: finished passes are not asked again.
- A row whose judge call fails (or that is malformed) becomes an error row carrying the
  error's type and message; the run goes on.

Each row is judged by `Judge.compare` itself, on a shadow of the judge (a shallow copy
sharing its cache, statistics and settings, with its own thread pools and a bounded rubric
memo), so a verdict from here is exactly the verdict `Judge.compare` gives, structured
output, repair requests and all. With the stock `ChatClient` the shadow's requests go
through `AsyncChatClient` (raw HTTP/1.1 over asyncio streams) on an event loop thread: the
worker threads only wait, and a few sockets carry every request in flight. With a custom
client, credentials in the URL, or a proxy configured for a remote judge, the judge's own
client is used from the worker threads instead.
"""

from __future__ import annotations

import asyncio
import copy
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from .aio import AsyncChatClient
from .client import ChatClient, Completion, _is_loopback
from .errors import JudgeError
from .models import Criterion, Rubric, Verdict

if TYPE_CHECKING:
    from .judge import Judge

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Comparison",
    "InvalidRow",
    "RowResult",
    "compare_many",
    "comparison_from_row",
]

Transport = Literal["auto", "async", "threads"]

DEFAULT_CONCURRENCY = 32
#: Rubrics kept in memory by a batch (the cache holds every one).
RUBRIC_MEMO_SIZE = 4096
_PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True)
class Comparison:
    """One input row: the prompt, response A (baseline), response B (candidate)."""

    index: int
    id: str
    prompt: str
    response_a: str
    response_b: str
    reference: str | None = None


@dataclass(frozen=True)
class InvalidRow:
    """An input row that could not be read; it becomes an error row in the output."""

    message: str
    id: str | None = None


@dataclass(frozen=True)
class RowResult:
    """The outcome of one row: a verdict, or an error with its type and message."""

    index: int
    id: str
    prompt: str
    response_a: str
    response_b: str
    reference: str | None
    verdict: Verdict | None
    error_type: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is not None


def _text_field(row: Mapping[str, object], *names: str, required: bool = True) -> str | None:
    for name in names:
        if name in row and row[name] is not None:
            value = row[name]
            if not isinstance(value, str):
                raise ValueError(f"field {name!r} must be a string, not {type(value).__name__}")
            return value
    if required:
        raise ValueError(f"missing field {names[0]!r}")
    return None


def comparison_from_row(index: int, row: Mapping[str, object]) -> Comparison:
    """Read an input row as the article's jobs write it: `prompt`, `response_A`, `response_B`.

    `id` and `reference` are optional (the id defaults to the row's index); `response_a` and
    `response_b` are accepted too. Raises ValueError naming the missing or mistyped field.
    """
    if not isinstance(row, Mapping):
        raise ValueError(f"a row must be a JSON object, not {type(row).__name__}")
    prompt = _text_field(row, "prompt")
    response_a = _text_field(row, "response_A", "response_a")
    response_b = _text_field(row, "response_B", "response_b")
    reference = _text_field(row, "reference", required=False)
    raw_id = row.get("id")
    row_id = str(index) if raw_id is None else str(raw_id)
    assert prompt is not None and response_a is not None and response_b is not None
    return Comparison(index, row_id, prompt, response_a, response_b, reference)


RowInput = Mapping[str, object] | Comparison | InvalidRow


def compare_many(
    judge: Judge,
    rows: Iterable[RowInput],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    criteria: Rubric | Iterable[Criterion | Mapping[str, object]] | None = None,
    transport: Transport = "auto",
    client: AsyncChatClient | None = None,
) -> Iterator[RowResult]:
    """Judge every row, yielding a `RowResult` per row in the order they finish.

    `concurrency` bounds the judge requests in flight. `criteria` replaces the judge's
    rubric for every row. `transport` chooses how requests are sent: "async" (the asyncio
    client), "threads" (the judge's own client in a thread pool) or "auto" (async for the
    stock client without a proxy in the way). Stopping the iteration early (break, an
    exception, Ctrl-C) cancels what is in flight; what finished is in the cache.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
    rubric = Rubric.of(criteria, source="user") if criteria is not None else None
    runner = _Runner(judge, concurrency, rubric, _choose_transport(judge, transport), client)
    return runner.iterate(rows)


def _choose_transport(judge: Judge, transport: Transport) -> Literal["async", "threads"]:
    if transport != "auto":
        return transport
    if type(judge.client) is not ChatClient:
        return "threads"  # no client (cache only) or a custom one: use it as it is
    http = getattr(judge.client, "_http", None)
    if getattr(http, "auth", None) is not None:
        return "threads"  # credentials in the URL (HTTP Basic): the sync client holds them
    host = urlsplit(judge.client.base_url).hostname or ""
    if not _is_loopback(host) and any(os.environ.get(name) for name in _PROXY_ENV):
        return "threads"  # httpx honours the proxy settings; the asyncio client does not
    return "async"


class _BoundedMemo(OrderedDict[Any, Any]):
    """A dict that forgets its oldest entries past `limit` (the shadow judge's rubric memo)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            self.popitem(last=False)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]


class _BridgeClient:
    """`ChatClient.complete` for the judge's worker threads, sent by the asyncio client.

    A worker thread blocks on its request while the event loop thread keeps every request
    in flight on a few sockets, so the judge's own code (cache, structured output,
    parsing, repair) runs unchanged and only the transport differs.
    """

    def __init__(self, base: ChatClient, client: AsyncChatClient) -> None:
        self.base = base
        self.client = client
        self.base_url = base.base_url
        self.timeout = base.timeout
        self.max_retries = base.max_retries
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="rubric-judge-aio", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.client.aclose())
            loop.close()

    def stop(self) -> None:
        """Cancel what is in flight (the waiting threads get CancelledError), then stop."""
        loop = self.loop
        if loop is None or self._thread is None:
            return

        def cancel_all() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)

        loop.call_soon_threadsafe(cancel_all)
        self._thread.join()

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        model: str,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        response_format: dict[str, object] | None = None,
    ) -> Completion:
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(
            self.client.complete(
                messages,
                model=model,
                temperature=temperature,
                max_tokens=max_tokens,
                top_p=top_p,
                seed=seed,
                response_format=response_format,
            ),
            self.loop,
        )
        return future.result()

    def list_models(self) -> list[str]:
        return self.base.list_models()

    def close(self) -> None:
        """The batch stops the bridge itself; the judge's own client stays open."""


class _Runner:
    """One batch: a shadow of the judge with its own pools, results as they finish.

    The shadow is a shallow copy of the judge: it shares the cache, the statistics and the
    settings, and has its own thread pools (one worker per row in flight, two per row for
    the passes), a bounded rubric memo and, with the asyncio transport, the bridge client.
    """

    def __init__(
        self,
        judge: Judge,
        concurrency: int,
        rubric: Rubric | None,
        transport: Literal["async", "threads"],
        client: AsyncChatClient | None,
    ) -> None:
        self.judge = judge
        self.concurrency = concurrency
        self.user_rubric = rubric
        self.transport = transport
        self.client = client
        #: Rows submitted but not yet handed to the consumer (bounds memory).
        self.window = 2 * concurrency + 8

    def iterate(self, rows: Iterable[RowInput]) -> Iterator[RowResult]:
        judge = self.judge
        if judge.client is not None:
            _ = judge.model  # resolve the model name once (it may ask the server)
        shadow = copy.copy(judge)
        shadow._rubrics = _BoundedMemo(RUBRIC_MEMO_SIZE)
        shadow._rubric_locks = _BoundedMemo(RUBRIC_MEMO_SIZE)
        pass_pool = ThreadPoolExecutor(2 * self.concurrency, thread_name_prefix="judge-pass")
        row_pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="judge-row")
        shadow._pool = pass_pool
        bridge: _BridgeClient | None = None
        if self.transport == "async" and isinstance(judge.client, ChatClient):
            client = self.client or AsyncChatClient(
                judge.client.base_url,
                api_key=getattr(judge.client, "_api_key", None),
                timeout=judge.client.timeout,
                max_retries=judge.client.max_retries,
                max_connections=self.concurrency,
            )
            bridge = _BridgeClient(judge.client, client)
            bridge.start()
            shadow.client = bridge  # type: ignore[assignment]
        pending: set[Future[RowResult]] = set()
        source = enumerate(rows)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.window:
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                        break
                    pending.add(row_pool.submit(self._one, shadow, *item))
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: f.result().index):
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()
            if bridge is not None:
                bridge.stop()
            row_pool.shutdown(wait=True, cancel_futures=True)
            pass_pool.shutdown(wait=True, cancel_futures=True)

    def _one(self, shadow: Judge, index: int, row: RowInput) -> RowResult:
        if isinstance(row, InvalidRow):
            return _error_row(index, row.id, None, "InvalidRow", row.message)
        try:
            comparison = row if isinstance(row, Comparison) else comparison_from_row(index, row)
        except ValueError as exc:
            raw_id = row.get("id") if isinstance(row, Mapping) else None
            return _error_row(
                index, None if raw_id is None else str(raw_id), None, "InvalidRow", str(exc)
            )
        try:
            verdict = shadow.compare(
                comparison.prompt,
                comparison.response_a,
                comparison.response_b,
                criteria=self.user_rubric,
                reference=comparison.reference,
            )
        except (JudgeError, ValueError) as exc:
            return _error_row(index, comparison.id, comparison, type(exc).__name__, str(exc))
        return RowResult(
            index,
            comparison.id,
            comparison.prompt,
            comparison.response_a,
            comparison.response_b,
            comparison.reference,
            verdict,
        )


def _error_row(
    index: int, row_id: str | None, row: Comparison | None, error_type: str, message: str
) -> RowResult:
    return RowResult(
        index=index,
        id=row_id if row_id is not None else str(index),
        prompt=row.prompt if row else "",
        response_a=row.response_a if row else "",
        response_b=row.response_b if row else "",
        reference=row.reference if row else None,
        verdict=None,
        error_type=error_type,
        error=message,
    )


def _excerpt(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")
