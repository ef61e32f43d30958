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
  resumes where it stopped: finished passes are not asked again. Answers are stored in
  batches, one SQLite transaction each, at least every quarter second.
- A row whose judge call fails (or that is malformed) becomes an error row carrying the
  error's type and message; the run goes on.

The requests run on an asyncio event loop in a worker thread, through `AsyncChatClient`
(raw HTTP/1.1 over asyncio streams) when the judge uses the stock `ChatClient`; with a
custom client, credentials in the URL, or a proxy configured for a remote judge, the
judge's own sync client runs in a thread pool of `concurrency` threads instead. The steps
of a judge call are `Judge._call`'s (the same cache keys, structured output with its
`auto` fallback, parsing, one repair request), awaited instead of blocking; the request
messages and the JSON Schema are built only when the cache cannot answer, and the cache
is read and written from the one event loop thread (one SQLite connection, whose page
cache is the only one that grows). A verdict from here is the verdict `Judge.compare`
gives.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel

from . import prompts, schemas
from .aio import AsyncChatClient
from .client import ChatClient, Completion, _is_loopback
from .errors import (
    JudgeError,
    JudgeUnavailableError,
)
from .models import CallInfo, Criterion, Rubric, SlotScores, Verdict
from .parsing import parse_pass, parse_rubric
from .scoring import build_verdict, combine_samples, orient

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

ParsedT = TypeVar("ParsedT", bound=BaseModel)
Transport = Literal["auto", "async", "threads"]
Format = dict[str, object]
_Complete = Callable[[list[dict[str, str]], int | None, Format | None], Awaitable[Completion]]

DEFAULT_CONCURRENCY = 32
#: Rubrics kept in memory by a batch (the cache holds every one).
RUBRIC_MEMO_SIZE = 4096
#: Answers stored per cache transaction, and the longest an answer waits to be stored.
WRITE_BATCH = 64
WRITE_DELAY_S = 0.25
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
        self._memo: OrderedDict[tuple[str, str | None], Rubric] = OrderedDict()
        self._inflight: dict[tuple[str, str | None], asyncio.Task[Rubric]] = {}
        self._requests: asyncio.Semaphore | None = None
        self._complete: _Complete | None = None
        self._formats: OrderedDict[Rubric, Format] = OrderedDict()

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
            with self.judge.cache.deferred_writes(WRITE_BATCH):
                asyncio.run(self._run(rows))
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
        client = self.client
        owns_client = False
        # Several endpoints (MultiClient) balance and fail over in the thread path.
        if self.transport == "async" and isinstance(self.judge.client, ChatClient):
            if client is None:
                base = self.judge.client
                client = AsyncChatClient(
                    base.base_url,
                    api_key=getattr(base, "_api_key", None),
                    timeout=base.timeout,
                    max_retries=base.max_retries,
                    max_connections=self.concurrency,
                )
                owns_client = True
            # A client of our own opens at most `concurrency` connections: that bounds the
            # requests in flight, and the runner's semaphore would only repeat it.
            self._complete = self._async_completer(client, bounded=owns_client)
        else:
            pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="judge-io")
            self._complete = self._thread_completer(pool)
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

    def _async_completer(self, client: AsyncChatClient, *, bounded: bool) -> _Complete:
        judge = self.judge
        requests = self._requests
        assert requests is not None

        async def send(
            messages: list[dict[str, str]], seed: int | None, response_format: Format | None
        ) -> Completion:
            try:
                completion = await client.complete(
                    messages, **judge._request_options(seed, response_format)
                )
            except BaseException as error:
                judge._count_failed(error)
                raise
            return judge._counted(completion)

        async def complete(
            messages: list[dict[str, str]], seed: int | None, response_format: Format | None
        ) -> Completion:
            if bounded:
                return await send(messages, seed, response_format)
            async with requests:
                return await send(messages, seed, response_format)

        return complete

    def _thread_completer(self, pool: ThreadPoolExecutor) -> _Complete:
        judge = self.judge

        async def complete(
            messages: list[dict[str, str]], seed: int | None, response_format: Format | None
        ) -> Completion:
            loop = asyncio.get_running_loop()
            # The judge's own method keeps its statistics.
            return await loop.run_in_executor(
                pool, judge._complete, messages, seed, response_format
            )

        return complete

    # -- one row -------------------------------------------------------------------------

    async def _one(self, index: int, row: RowInput) -> None:
        try:
            if isinstance(row, InvalidRow):
                result = _error_row(index, row.id, None, "InvalidRow", row.message)
            else:
                try:
                    comparison = (
                        row if isinstance(row, Comparison) else comparison_from_row(index, row)
                    )
                except ValueError as exc:
                    raw_id = row.get("id") if isinstance(row, Mapping) else None
                    result = _error_row(
                        index, None if raw_id is None else str(raw_id), None, "InvalidRow", str(exc)
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
            return _error_row(row.index, row.id, row, type(exc).__name__, str(exc))
        return RowResult(
            row.index,
            row.id,
            row.prompt,
            row.response_a,
            row.response_b,
            row.reference,
            verdict,
        )

    async def _verdict(self, row: Comparison) -> Verdict:
        judge = self.judge
        judge._check_size(
            prompt=row.prompt,
            reference=row.reference,
            response_a=row.response_a,
            response_b=row.response_b,
        )
        rubric = self.user_rubric or await self._rubric(row.prompt, row.reference)
        count = judge.samples
        passes = await asyncio.gather(
            *(
                self._pass(row.prompt, rubric, a, b, row.reference, sample)
                for sample in range(count)
                for a, b in ((row.response_a, row.response_b), (row.response_b, row.response_a))
            ),
            return_exceptions=True,
        )
        results: list[tuple[SlotScores, CallInfo]] = []
        for outcome in passes:  # all finished (and are cached); now raise the first error
            if isinstance(outcome, BaseException):
                raise outcome
            results.append(outcome)
        verdicts = []
        for sample in range(count):
            (slot_f, call_f), (slot_r, call_r) = results[2 * sample : 2 * sample + 2]
            forward = orient(slot_f, rubric, "forward", call_f)
            reversed_ = orient(slot_r, rubric, "reversed", call_r)
            verdicts.append(
                build_verdict(
                    rubric,
                    forward,
                    reversed_,
                    prompt=row.prompt,
                    reference=row.reference,
                    response_a=row.response_a,
                    response_b=row.response_b,
                    judge_model=forward.call.model or judge.model,
                )
            )
        return verdicts[0] if count == 1 else combine_samples(verdicts)

    async def _rubric(self, prompt: str, reference: str | None) -> Rubric:
        memo_key = (prompt, reference)
        found = self._memo.get(memo_key)
        if found is not None:
            self._memo.move_to_end(memo_key)
            return found
        task = self._inflight.get(memo_key)
        if task is None:
            task = asyncio.create_task(self._make_rubric(prompt, reference))
            self._inflight[memo_key] = task
            task.add_done_callback(lambda _: self._inflight.pop(memo_key, None))
        # Several rows may wait on one rubric; shield it from one waiter's cancellation.
        return await asyncio.shield(task)

    async def _make_rubric(self, prompt: str, reference: str | None) -> Rubric:
        judge = self.judge
        rubric, _ = await self._call(
            partial(judge._keyed_fields, "rubric", prompt, reference),
            lambda: prompts.rubric_messages(
                prompt,
                reference=reference,
                context_code=judge._context_code,
                min_criteria=judge.min_criteria,
                max_criteria=judge.max_criteria,
            ),
            lambda text: parse_rubric(
                text, min_criteria=judge.min_criteria, max_criteria=judge.max_criteria
            ),
            Rubric,
            what=f"the rubric for prompt {_excerpt(prompt)}",
            seed=judge.seed,
            build_format=lambda: schemas.rubric_format(judge.min_criteria, judge.max_criteria),
        )
        self._memo[(prompt, reference)] = rubric
        if len(self._memo) > RUBRIC_MEMO_SIZE:
            self._memo.popitem(last=False)
        return rubric

    async def _pass(
        self,
        prompt: str,
        rubric: Rubric,
        slot_a: str,
        slot_b: str,
        reference: str | None,
        sample: int = 0,
    ) -> tuple[SlotScores, CallInfo]:
        judge = self.judge
        return await self._call(
            partial(judge._keyed_fields, "pass", prompt, reference, rubric, slot_a, slot_b, sample),
            lambda: prompts.pass_messages(
                prompt,
                rubric,
                slot_a,
                slot_b,
                reference=reference,
                context_code=judge._context_code,
                response_code=prompts.new_code(prompt, slot_a, slot_b, reference or ""),
            ),
            lambda text: parse_pass(text, rubric),
            SlotScores,
            what=f"a pass on prompt {_excerpt(prompt)}",
            seed=judge._sample_seed(sample),
            build_format=lambda: self._pass_format(rubric),
        )

    def _pass_format(self, rubric: Rubric) -> Format:
        """The pass's JSON Schema, built once per rubric (building one costs milliseconds)."""
        found = self._formats.get(rubric)
        if found is None:
            found = schemas.pass_format(rubric)
            self._formats[rubric] = found
            if len(self._formats) > RUBRIC_MEMO_SIZE:
                self._formats.popitem(last=False)
        return found

    async def _call(
        self,
        fields_for: Callable[..., tuple[str, dict[str, object]]],
        build_messages: Callable[[], list[dict[str, str]]],
        parse: Callable[[str], ParsedT],
        model_type: type[ParsedT],
        *,
        what: str,
        seed: int | None,
        build_format: Callable[[], Format] | None,
    ) -> tuple[ParsedT, CallInfo]:
        """`Judge._call`'s steps: with a JSON Schema when structured output is on, and in
        `auto` mode once more without it (for the rest of the session) when the server
        rejects the schema."""
        judge = self.judge
        structured = build_format is not None and judge._structured_wanted()
        try:
            return await self._call_once(
                fields_for(structured=structured),
                build_messages,
                parse,
                model_type,
                what=what,
                seed=seed,
                build_format=build_format if structured else None,
            )
        except JudgeUnavailableError as error:
            judge._fall_back_from_schemas(error, structured=structured)
        return await self._call_once(
            fields_for(structured=False),
            build_messages,
            parse,
            model_type,
            what=what,
            seed=seed,
            build_format=None,
        )

    async def _call_once(
        self,
        keyed: tuple[str, dict[str, object]],
        build_messages: Callable[[], list[dict[str, str]]],
        parse: Callable[[str], ParsedT],
        model_type: type[ParsedT],
        *,
        what: str,
        seed: int | None,
        build_format: Callable[[], Format] | None,
    ) -> tuple[ParsedT, CallInfo]:
        """One judge call through the cache, with one repair request on a parse error.

        The same steps as `Judge._call_once`, awaiting the request instead of blocking; the
        messages and the schema are built only when the cache cannot answer.
        """
        judge = self.judge
        key, fields = keyed
        hit = judge._from_cache(
            key,
            model_type,
            what=what,
            can_ask=judge.client is not None and self._complete is not None,
        )
        if hit is not None:
            return hit
        complete = self._complete
        assert complete is not None
        response_format = build_format() if build_format is not None else None
        dialogue = judge._dialogue(build_messages(), parse, what)
        try:
            request = next(dialogue)
            while True:
                request = dialogue.send(await complete(request, seed, response_format))
        except StopIteration as done:
            parsed, info = done.value
        except JudgeError:
            judge.stats.add(judge_errors=1)
            raise
        return parsed, judge._store(key, fields, parsed, info)


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
