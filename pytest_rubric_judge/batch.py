"""Many comparisons at once: rows stream in, verdicts stream out as they finish.

`compare_many(judge, rows)` judges every row (a prompt and responses A and B) with the
judge's protocol, cache and settings, keeping up to `concurrency` judge requests in flight.
A row's prompt may be a list of chat messages, its responses lists of assistant and tool
messages (agent trajectories), with an optional `context` of retrieved documents, as
`Judge.compare` takes them (`inputs.prepare`); they are checked when the row is read, so a
malformed one is an invalid row naming its field. It is built for prompt sets of hundreds
to hundreds of thousands of rows:

- Rows are read lazily and results are handed out as soon as they finish, with at most a
  fixed window of rows in memory, so memory stays flat however long the input is.
- One rubric per distinct (prompt, reference): rows sharing a prompt wait for the same
  rubric request, and recently used rubrics are kept in a bounded memo (the cache holds
  the rest).
- Every judge call goes through the judge's cache first, so a run that was interrupted
  resumes where it stopped: finished passes are not asked again. Answers are stored in
  batches, one SQLite transaction each, at least every quarter second.
- A row whose judge call fails (or that is malformed) becomes an error row carrying the
  error's type and message; the run goes on.

The rows run on an asyncio event loop in a worker thread, through the same plans as
`Judge.compare` (`plans.Runner`): the same cache keys, structured output with its `auto`
fallback, parsing and one repair request (`calls.CallCore.protocol`). Requests go through
the asyncio client (`aio.AsyncChatClient`, one or several endpoints) with the judge's
endpoints, credentials and proxy; a judge with a custom client has it run in a thread
pool of `concurrency` threads instead. The request messages and the JSON Schema are built
only when the cache cannot answer. A verdict from here is the verdict `Judge.compare`
gives.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .aio import AsyncChatClient
from .calls import CallCore
from .callspec import Request, sendable
from .client import ChatClient
from .endpoints import AsyncMultiClient, MultiClient
from .errors import JudgeError
from .gold import checked_input, json_type
from .http_policy import Completion
from .inputs import ContextInput, PromptInput, ResponseInput, prepare
from .loops import fewer_collections, run_loop
from .models import Criterion, Rubric, Verdict
from .plans import Runner, async_calls, threaded_calls

if TYPE_CHECKING:
    from .judge import Judge

__all__ = [
    "DEFAULT_CONCURRENCY",
    "INVALID_ROW",
    "Comparison",
    "InvalidRow",
    "RowResult",
    "compare_many",
    "comparison_from_row",
]

Transport = Literal["auto", "async", "threads"]

DEFAULT_CONCURRENCY = 32
#: Answers stored per cache transaction, and the longest an answer waits to be stored.
WRITE_BATCH = 256
WRITE_DELAY_S = 0.25
#: The `error_type` of a row that could not be read as input (not a judge error).
INVALID_ROW = "InvalidRow"


@dataclass(frozen=True)
class Comparison:
    """One input row: the prompt, response A (baseline), response B (candidate).

    The prompt may be a list of chat messages, each response a list of assistant and tool
    messages (a trajectory), and `context` a list of retrieved documents; they are checked
    here (`checked_input`), so a Comparison that exists can be judged. ValueError names the
    field that cannot be.
    """

    index: int
    id: str
    prompt: PromptInput
    response_a: ResponseInput
    response_b: ResponseInput
    reference: str | None = None
    context: ContextInput = None

    def __post_init__(self) -> None:
        checked_input(self.prompt, "prompt", "prompt")
        checked_input(self.response_a, "response_A", "response")
        checked_input(self.response_b, "response_B", "response")
        if self.reference is not None and not isinstance(self.reference, str):
            raise ValueError(f"field 'reference' must be a string, not {json_type(self.reference)}")
        checked_input(self.context, "context", "context")

    @property
    def plain(self) -> bool:
        """Whether the inputs are plain strings without context (read as they are)."""
        texts = (self.prompt, self.response_a, self.response_b)
        return self.context is None and all(isinstance(text, str) for text in texts)

    def texts(self, max_chars: int) -> tuple[str, str, str]:
        """The prompt and both responses as the judge reads them, and as a verdict and
        `details.jsonl` hold them: plain strings as they are, messages, trajectories and
        context rendered by `inputs.prepare` (cut, as the judge cuts them, to `max_chars`),
        and text that UTF-8 cannot carry (a lone surrogate) as U+FFFD."""
        if self.plain:
            assert isinstance(self.prompt, str)
            assert isinstance(self.response_a, str) and isinstance(self.response_b, str)
            return sendable(self.prompt), sendable(self.response_a), sendable(self.response_b)
        prepared = prepare(
            self.prompt,
            (self.response_a, self.response_b),
            context=self.context,
            max_chars=max_chars,
        )
        response_a, response_b = prepared.responses
        return sendable(prepared.prompt), sendable(response_a), sendable(response_b)


@dataclass(frozen=True)
class InvalidRow:
    """An input row that could not be read; it becomes an error row in the output.

    `index` is its row number in the input when the rows given to `compare_many` are a
    selection (a shard); without it the row takes its position among the rows given.
    """

    message: str
    id: str | None = None
    index: int | None = None


@dataclass(frozen=True)
class RowResult:
    """The outcome of one row: a verdict, or an error with its type and message.

    `prompt`, `response_a` and `response_b` are the texts the judge read (`Comparison.texts`:
    a list of messages, a trajectory or a context rendered), empty for an invalid row.
    An input row that could not be read (not a JSON object, a missing or mistyped field)
    has `error_type` `INVALID_ROW` and `invalid` true: it never reached the judge, so it
    is not a judge error.
    """

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

    @property
    def invalid(self) -> bool:
        """An input row that could not be read, as opposed to a judge error."""
        return self.error_type == INVALID_ROW


def _field(row: Mapping[str, object], *names: str) -> Any:
    """The first of `names` the row has (not null); ValueError when it has none."""
    for name in names:
        value = row.get(name)
        if value is not None:
            return value
    raise ValueError(f"missing field {names[0]!r}")


def comparison_from_row(index: int, row: Mapping[str, object]) -> Comparison:
    """Read an input row as the article's jobs write it: `prompt`, `response_A`, `response_B`.

    `id`, `reference` and `context` are optional (the id defaults to the row's index);
    `response_a` and `response_b` are accepted too. The prompt may be a list of chat
    messages, the responses lists of assistant and tool messages, the context a list of
    documents (`Comparison`). Raises ValueError naming the missing or mistyped field and
    saying what it must be.
    """
    if not isinstance(row, Mapping):
        raise ValueError(f"a row must be a JSON object, not {type(row).__name__}")
    prompt = _field(row, "prompt")
    response_a = _field(row, "response_A", "response_a")
    response_b = _field(row, "response_B", "response_b")
    reference: Any = row.get("reference")
    raw_id = row.get("id")
    row_id = str(index) if raw_id is None else sendable(str(raw_id))
    context: Any = row.get("context")
    return Comparison(index, row_id, prompt, response_a, response_b, reference, context)


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
    if type(judge.client) in (ChatClient, MultiClient):
        return "async"  # the same endpoints, credentials and proxy, on the asyncio client
    return "threads"  # no client (cache only) or a custom one: use it as it is


def _async_client(judge: Judge, concurrency: int) -> AsyncChatClient | AsyncMultiClient:
    """The asyncio client for the judge's endpoints, with the judge's settings."""
    config = judge.config
    clients = [
        AsyncChatClient(
            url,
            api_key=config.api_key,
            timeout=config.timeout,
            max_retries=config.max_retries,
            max_connections=concurrency,
        )
        for url in config.urls
    ]
    return clients[0] if len(clients) == 1 else AsyncMultiClient(clients)


class _Done:
    """Marks the end of the results."""


class _Runner:
    """One batch: an event loop in a worker thread, results through a queue."""

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
        #: Rows started but not yet taken by the consumer (bounds memory).
        self.window = 2 * concurrency + 8
        self._results: queue.SimpleQueue[RowResult | _Done | BaseException] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        #: Results the consumer has taken (written by the consumer's thread only).
        self._taken = 0
        #: Set while the loop waits for the consumer to make room in the window.
        self._waiting = False
        self._room: asyncio.Event | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._requests: asyncio.Semaphore | None = None
        self._runner: Runner | None = None

    # -- the consumer's side (caller's thread) -------------------------------------------

    def iterate(self, rows: Iterable[RowInput]) -> Iterator[RowResult]:
        thread = threading.Thread(
            target=self._thread_main, args=(rows,), name="rubric-judge-batch", daemon=True
        )
        thread.start()
        try:
            while True:
                item = self._results.get()
                if isinstance(item, _Done):
                    return
                if isinstance(item, BaseException):
                    raise item
                self._taken += 1
                if self._waiting:
                    self._wake()
                yield item
        finally:
            self._stop()
            thread.join()

    def _wake(self) -> None:
        """Tell the loop there is room again: only when it waits, since every call from
        this thread wakes the loop through its self-pipe."""
        loop, room = self._loop, self._room
        if loop is not None and room is not None:
            try:
                loop.call_soon_threadsafe(room.set)
            except RuntimeError:  # the loop has already finished
                pass

    def _stop(self) -> None:
        self._stopping.set()
        self._started.wait()
        loop, main = self._loop, self._main
        if loop is not None and main is not None:
            try:
                loop.call_soon_threadsafe(main.cancel)
            except RuntimeError:
                pass

    # -- the worker thread ---------------------------------------------------------------

    def _thread_main(self, rows: Iterable[RowInput]) -> None:
        try:
            # Answers are stored in batches, from this thread (see `_flush_often`).
            with self.judge.cache.deferred_writes(WRITE_BATCH), fewer_collections():
                run_loop(self._run(rows))
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # handed to the consumer, which raises it
            self._results.put(exc)
        finally:
            self._started.set()
            self._results.put(_Done())

    async def _run(self, rows: Iterable[RowInput]) -> None:
        self._loop = asyncio.get_running_loop()
        self._main = asyncio.current_task()
        self._room = asyncio.Event()
        self._requests = asyncio.Semaphore(self.concurrency)
        self._started.set()
        if self._stopping.is_set():
            return
        pool: ThreadPoolExecutor | None = None
        client: AsyncChatClient | AsyncMultiClient | None = self.client
        owns_client = False
        if self.transport == "async":
            if client is None:
                client = _async_client(self.judge, self.concurrency)
                owns_client = True
            # The semaphore bounds the requests in flight, so the client's pool never
            # queues a request (aiohttp's connection waiters cost more than a semaphore).
            self._runner = Runner(async_calls(self._sender(client)))
        else:
            pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="judge-io")
            self._runner = Runner(threaded_calls(pool))
        # Resolve the model name once (it may ask the server) before any key is computed.
        if self.judge.client is not None:
            await asyncio.get_running_loop().run_in_executor(None, lambda: self.judge.model)
        tasks: set[asyncio.Task[None]] = set()
        flusher = asyncio.create_task(self._flush_often())
        try:
            for index, row in enumerate(rows):
                await self._window_room(index)
                task = asyncio.create_task(self._one(index, row))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await asyncio.sleep(0)  # a turn per row: the first requests leave at once
            while tasks:
                await asyncio.wait(set(tasks))
        finally:
            flusher.cancel()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if owns_client and client is not None:
                await client.aclose()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    async def _window_room(self, started: int) -> None:
        """Wait until fewer than `window` started rows are left for the consumer to take."""
        assert self._room is not None
        while started - self._taken >= self.window:
            self._waiting = True
            self._room.clear()
            if started - self._taken < self.window:  # taken meanwhile: no wake-up coming
                break
            await self._room.wait()
        self._waiting = False

    async def _flush_often(self) -> None:
        """Store waiting answers at least every `WRITE_DELAY_S`, so that a run killed
        between batches loses at most that much of its judge work."""
        while True:
            await asyncio.sleep(WRITE_DELAY_S)
            self.judge.cache.flush()

    def _sender(
        self, client: AsyncChatClient | AsyncMultiClient
    ) -> Callable[[CallCore, Request], Awaitable[Completion]]:
        requests, options = self._requests, CallCore.request_options
        assert requests is not None

        async def send(core: CallCore, request: Request) -> Completion:
            async with requests:
                completion = await client.complete(request.messages, **options(core, request))
            await asyncio.sleep(0)  # the freed slot's next request leaves before this is read
            return completion

        return send

    # -- one row -------------------------------------------------------------------------

    async def _one(self, index: int, row: RowInput) -> None:
        try:
            if isinstance(row, InvalidRow):
                at = index if row.index is None else row.index
                result = _error_row(at, row.id, None, INVALID_ROW, row.message)
            else:
                try:
                    comparison = (
                        row if isinstance(row, Comparison) else comparison_from_row(index, row)
                    )
                except ValueError as exc:
                    raw_id = row.get("id") if isinstance(row, Mapping) else None
                    result = _error_row(
                        index, None if raw_id is None else str(raw_id), None, INVALID_ROW, str(exc)
                    )
                else:
                    result = await self._compare(comparison)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug, not a judge error: stop the run
            self._results.put(exc)
            raise
        self._results.put(result)

    async def _compare(self, row: Comparison) -> RowResult:
        try:
            verdict = await self._verdict(row)
        except (JudgeError, ValueError) as exc:
            texts = row.texts(self.judge.config.max_input_chars)
            return _error_row(row.index, row.id, row, type(exc).__name__, str(exc), texts)
        # The texts as the judge read them: `row.texts`, without rendering them again.
        return RowResult(
            row.index,
            row.id,
            verdict.prompt,
            verdict.response_a,
            verdict.response_b,
            row.reference,
            verdict,
        )

    async def _verdict(self, row: Comparison) -> Verdict:
        assert self._runner is not None
        return await self._runner.compare(
            self.judge.core,
            row.prompt,
            row.response_a,
            row.response_b,
            criteria=self.user_rubric,
            reference=row.reference,
            context=row.context,
        )


def _error_row(
    index: int,
    row_id: str | None,
    row: Comparison | None,
    error_type: str,
    message: str,
    texts: tuple[str, str, str] = ("", "", ""),
) -> RowResult:
    """An error row; its texts (`Comparison.texts`) and message can be written as UTF-8."""
    prompt, response_a, response_b = texts
    return RowResult(
        index=index,
        id=sendable(row_id) if row_id is not None else str(index),
        prompt=prompt,
        response_a=response_a,
        response_b=response_b,
        reference=sendable(row.reference) if row else None,
        verdict=None,
        error_type=error_type,
        error=sendable(message),
    )
