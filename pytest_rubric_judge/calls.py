"""One judge call, as a protocol without I/O, and the two drivers that run it.

A judge call (a rubric, a pairwise pass or a pointwise grading) is always the same steps:
look the answer up in the cache; build the request (the messages, and a JSON Schema when
structured output is on); read the answer; ask once more with the parse error if it
cannot be read; in `auto` mode, ask again without a schema if the server refuses
schemas; store the answer. `CallCore.protocol` is those steps as a generator: it yields
each `Request` to send, is sent each `Completion` (or has the request's
`JudgeUnavailableError` thrown in), and returns the parsed answer with its `CallInfo`.
It reads and writes the cache and the counters, and never touches the network.

`drive_blocking` runs a call with a blocking send (the pytest path, in a worker thread)
and `drive_async` with an awaitable one (the batch path); each is a few lines, so every
rule of a judge call is written once.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from . import prompts
from .cache import CacheEntry, JudgeCache, keyed_fields
from .callspec import (
    RUBRIC_MEMO_SIZE,
    CallSpec,
    JudgeStats,
    Kind,
    ParsedT,
    Request,
    canonical_rubric,
    excerpt,
    grade_format,
    parse_complete,
    pass_format,
    quoted_answer,
    rubric_format,
    unreadable,
)
from .config import NOT_CONFIGURED_HINT, JudgeConfig
from .dialects import Dialect, DialectState, key_value, rejects_format
from .errors import (
    CacheMissError,
    InputTooLargeError,
    JudgeError,
    JudgeNotConfiguredError,
    JudgeUnavailableError,
    ParseError,
)
from .http_policy import Completion
from .images import refused_images
from .models import CallInfo, GradeAnswer, Rubric, SlotScores
from .parsing import parse_grade, parse_pass, parse_rubric, render_error_hint

if TYPE_CHECKING:
    from .budget import Budget, DryRun
    from .locks import RubricLocks

#: Failure causes of a request that never reached a server.
_NOT_SENT = frozenset({"refused", "unreachable", "connect_timeout", "config"})


class CallCore:
    """A judge's calls: their specs, cache keys, protocol and counters; no network.

    `model` gives the judge model's name (it may ask the server once, so it is a
    callable); `can_ask` says whether a client exists to send requests to.
    """

    def __init__(
        self,
        config: JudgeConfig,
        cache: JudgeCache,
        *,
        model: Callable[[], str],
        can_ask: bool,
    ) -> None:
        self.config = config
        self.cache = cache
        self.stats = JudgeStats()
        self.can_ask = can_ask
        self._model = model
        #: Drawn once per judge so the prompt block stays a shared prefix between passes.
        self.context_code = prompts.new_code()
        #: The structured-output dialect in use, and how `auto` found it.
        self.dialects = DialectState(config.structured_output)
        self._lock = threading.Lock()
        #: By prompt, reference and whether the prompt is structured (a plain text equal
        #: to a conversation's rendering is another prompt: its requests differ).
        self._rubrics: OrderedDict[tuple[str, str | None, bool], Rubric] = OrderedDict()
        #: Where a blocking driver runs this judge's calls, and how it sends a request;
        #: set by the judge that owns the client (the core itself does no I/O).
        self.executor: Executor | None = None
        self.send: Callable[[Request], Completion] | None = None
        #: Set by the pytest plugin on the run's judges (None elsewhere): the rubric lock
        #: files every rubric lookup and every new rubric go through (`locks`), and the
        #: gate every request passes before it is sent (`budget`: a budget or a dry run).
        self.rubric_hooks: RubricLocks | None = None
        self.gate: Budget | DryRun | None = None

    # -- configuration -----------------------------------------------------------------

    @property
    def model(self) -> str:
        return self._model()

    def structured_wanted(self) -> bool:
        return self.dialects.current is not None

    def sampling(self) -> dict[str, object]:
        """Sampling parameters: part of every cache key."""
        c = self.config
        return {
            "temperature": c.temperature,
            "max_tokens": c.max_tokens,
            "top_p": c.top_p,
            "seed": c.seed,
            "structured_output": key_value(self.dialects.current),
        }

    def sample_seed(self, index: int) -> int | None:
        """Sample 0 uses the configured seed, so one sample shares the cache with none."""
        if index == 0:
            return self.config.seed
        return (self.config.seed or 0) + index

    def sample_count(self, samples: int | None) -> int:
        count = self.config.samples if samples is None else samples
        if count < 1:
            raise ValueError("samples must be 1 or more")
        return count

    def check_size(self, **texts: str | None) -> None:
        limit = self.config.max_input_chars
        for name, text in texts.items():
            if text is not None and len(text) > limit:
                raise InputTooLargeError(
                    f"{name} has {len(text):,} characters, over the limit of "
                    f"{limit:,}; shorten it or raise --judge-max-input-chars"
                )

    def request_options(self, request: Request) -> dict[str, Any]:
        """The keyword arguments of a client's `complete`, besides the messages."""
        c = self.config
        return {
            "model": self.model,
            "temperature": c.temperature,
            "max_tokens": c.max_tokens,
            "top_p": c.top_p,
            "seed": request.seed,
            "response_format": request.response_format,
        }

    # -- rubric memo -------------------------------------------------------------------

    def memo_rubric(self, prompt: str, reference: str | None) -> Rubric | None:
        with self._lock:
            key = (prompt, reference, prompts.is_structured(prompt))
            found = self._rubrics.get(key)
            if found is not None:
                self._rubrics.move_to_end(key)
        if self.rubric_hooks is not None:  # a locked rubric wins over the memo
            return self.rubric_hooks.rubric_for(self, prompt, reference, found)
        return found

    def remember_rubric(self, prompt: str, reference: str | None, rubric: Rubric) -> None:
        with self._lock:
            self._rubrics[(prompt, reference, prompts.is_structured(prompt))] = rubric
            while len(self._rubrics) > RUBRIC_MEMO_SIZE:
                self._rubrics.popitem(last=False)
        if self.rubric_hooks is not None:
            self.rubric_hooks.made(prompt, reference, rubric)

    # -- the calls ---------------------------------------------------------------------

    def keyed(
        self,
        kind: Kind,
        prompt: str,
        reference: str | None,
        rubric: Rubric | None = None,
        slot_a: str | None = None,
        slot_b: str | None = None,
        sample: int = 0,
        *,
        structured: bool | str = False,
    ) -> tuple[str, dict[str, object]]:
        """The cache key and key fields of one judge call (`cache.keyed_fields`)."""
        extra: dict[str, object] = {}
        if kind == "rubric":
            # The rubric template asks for this many criteria, so it shapes the answer.
            extra["criteria_count"] = [self.config.min_criteria, self.config.max_criteria]
        if sample:
            extra["sample"] = sample
        return keyed_fields(
            kind=kind,
            protocol_version=prompts.PROTOCOL_VERSION,
            template_hash=prompts.template_hash(kind, prompt, reference, slot_a, slot_b),
            model=self.model,
            sampling={
                **self.sampling(),
                "seed": self.sample_seed(sample),
                "structured_output": structured,
            },
            prompt=prompt,
            reference=reference,
            rubric=canonical_rubric(rubric) if rubric is not None else None,
            response_slot_a=slot_a,
            response_slot_b=slot_b,
            extra=extra or None,
        )

    def rubric_spec(self, prompt: str, reference: str | None) -> CallSpec[Rubric]:
        c = self.config
        return CallSpec(
            kind="rubric",
            what=f"the rubric for prompt {excerpt(prompt)}",
            keyed=lambda structured: self.keyed("rubric", prompt, reference, structured=structured),
            messages=lambda: prompts.rubric_messages(
                prompt,
                reference=reference,
                context_code=self.context_code,
                min_criteria=c.min_criteria,
                max_criteria=c.max_criteria,
            ),
            parse=lambda text: parse_rubric(
                text, min_criteria=c.min_criteria, max_criteria=c.max_criteria
            ),
            model_type=Rubric,
            seed=c.seed,
            response_format=lambda dialect: rubric_format(c.min_criteria, c.max_criteria, dialect),
        )

    def pass_spec(
        self,
        prompt: str,
        rubric: Rubric,
        slot_a: str,
        slot_b: str,
        reference: str | None,
        sample: int = 0,
    ) -> CallSpec[SlotScores]:
        return CallSpec(
            kind="pass",
            what=f"a pass on prompt {excerpt(prompt)}",
            keyed=lambda structured: self.keyed(
                "pass", prompt, reference, rubric, slot_a, slot_b, sample, structured=structured
            ),
            messages=lambda: prompts.pass_messages(
                prompt,
                rubric,
                slot_a,
                slot_b,
                reference=reference,
                context_code=self.context_code,
                response_code=prompts.new_code(prompt, slot_a, slot_b, reference or ""),
            ),
            parse=lambda text: parse_pass(text, rubric),
            model_type=SlotScores,
            seed=self.sample_seed(sample),
            response_format=lambda dialect: pass_format(rubric, dialect),
        )

    def grade_spec(
        self, prompt: str, rubric: Rubric, response: str, reference: str | None, sample: int = 0
    ) -> CallSpec[GradeAnswer]:
        return CallSpec(
            kind="grade",
            what=f"a grading on prompt {excerpt(prompt)}",
            keyed=lambda structured: self.keyed(
                "grade", prompt, reference, rubric, response, None, sample, structured=structured
            ),
            messages=lambda: prompts.grade_messages(
                prompt,
                rubric,
                response,
                reference=reference,
                context_code=self.context_code,
                response_code=prompts.new_code(prompt, response, reference or ""),
            ),
            parse=lambda text: parse_grade(text, rubric),
            model_type=GradeAnswer,
            seed=self.sample_seed(sample),
            response_format=lambda dialect: grade_format(rubric, dialect),
        )

    # -- the protocol ------------------------------------------------------------------

    def protocol(
        self, spec: CallSpec[ParsedT]
    ) -> Generator[Request, Completion, tuple[ParsedT, CallInfo]]:
        """The steps of one judge call (see the module docstring). A call that ends in a
        `JudgeError` counts one judge error, however many requests it took."""
        try:
            while True:
                dialect = self.dialects.current if spec.response_format is not None else None
                try:
                    return (yield from self._attempt(spec, dialect))
                except JudgeUnavailableError as error:
                    if not self._falls_back(error, dialect):
                        raise
        except JudgeError:
            self.stats.add(judge_errors=1)
            raise

    def _falls_back(self, error: JudgeUnavailableError, dialect: Dialect | None) -> bool:
        """Whether `error` is a server refusing `dialect` in `auto` mode: then the caller
        asks again, in the dialect now in use (`DialectState.refused`)."""
        if not (
            dialect is not None
            and self.config.structured_output == "auto"
            and error.cause == "status"
            and rejects_format(error.status, error.said)
        ):
            return False
        if self.dialects.refused(dialect, error.status, error.said):
            self.stats.add(structured_fallbacks=1)
        return self.dialects.current != dialect

    def _attempt(
        self, spec: CallSpec[ParsedT], dialect: Dialect | None
    ) -> Generator[Request, Completion, tuple[ParsedT, CallInfo]]:
        key, fields = spec.keyed(key_value(dialect))
        hit = self._from_cache(itertools.chain((key,), self._probe_keys(spec, dialect)), spec)
        if hit is not None:
            return hit
        response_format = (
            spec.response_format(dialect)
            if dialect is not None and spec.response_format is not None
            else None
        )
        request = Request(spec.messages(), spec.seed, response_format)
        started = time.perf_counter()
        try:
            completion = yield from self._ask(request)
        except JudgeUnavailableError as error:
            raise refused_images(error, request) or error from None
        self.dialects.answered(dialect)
        usage, retries, repaired = completion.usage, completion.retries, False
        try:
            parsed = parse_complete(spec.parse, completion)
        except ParseError as first:
            self.stats.add(repairs=1)
            hint = render_error_hint(first, completion.finish_reason)
            repair = prompts.repair_messages(request.messages, quoted_answer(completion.text), hint)
            completion = yield from self._ask(Request(repair, spec.seed, response_format))
            usage, retries, repaired = usage + completion.usage, retries + completion.retries, True
            try:
                parsed = parse_complete(spec.parse, completion)
            except ParseError as second:
                raise unreadable(spec.what, second, completion) from second
        info = CallInfo.model_construct(  # our own values: nothing to check
            raw=completion.text,
            usage=usage,
            latency_s=time.perf_counter() - started,
            cached=False,
            repaired=repaired,
            retries=retries,
            model=completion.model,
        )
        self._store(key, fields, parsed, info)
        return parsed, info

    def _ask(self, request: Request) -> Generator[Request, Completion, Completion]:
        """Yield one request; count it, with its retries and tokens, however it ends.
        The gate (a budget, a dry run) may refuse it first: then nothing is yielded."""
        gate = self.gate
        if gate is not None:
            gate.reserve(request)
        sent, tokens = True, 0
        try:
            try:
                completion = yield request
            except JudgeError as error:
                # A request that never reached a server (refused, unreachable, no connection
                # in time, a bad proxy) is not counted as sent; its attempts count as retries.
                sent = getattr(error, "cause", None) not in _NOT_SENT
                self.stats.add(requests=int(sent), retries=error.retries)
                raise
            usage = completion.usage
            tokens = usage.prompt_tokens + usage.completion_tokens
            self.stats.add(
                requests=1,
                retries=completion.retries,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
            )
            return completion
        finally:
            if gate is not None:
                gate.settle(sent=sent, tokens=tokens)

    def _probe_keys(self, spec: CallSpec[Any], dialect: Dialect | None) -> Iterator[str]:
        """In `auto` mode, before the server has answered in any dialect, the keys of the
        dialects an earlier run may have ended with (those after `dialect`, then none):
        a run served from the cache then sends no request just to find its dialect."""
        if self.config.structured_output == "auto" and self.cache.reads:
            for later in self.dialects.fallbacks(dialect):
                yield spec.keyed(key_value(later))[0]

    def _from_cache(
        self, keys: Iterable[str], spec: CallSpec[ParsedT]
    ) -> tuple[ParsedT, CallInfo] | None:
        """The cached answer under the first of `keys` that has one; None when the judge
        must be asked. Raises when it cannot be: replay mode, or no judge to ask."""
        cache = self.cache
        if cache.reads:
            entry = next(filter(None, map(cache.get, keys)), None)
            if entry is not None:
                self.stats.add(cache_hits=1)
                info = CallInfo.model_construct(  # our own values: nothing to check
                    raw=entry.raw,
                    usage=entry.usage,
                    latency_s=entry.latency_s,
                    cached=True,
                    model=entry.model,
                )
                return spec.model_type.model_validate(entry.parsed), info
            self.stats.add(cache_misses=1)
        if cache.mode == "replay":
            raise CacheMissError(
                f"replay mode has no cached judge answer for {spec.what} with judge model "
                f"{self.model or '(none set)'!r}; run once with --judge-cache=rw against a "
                "judge to record it, with the same --judge-model"
            )
        if not self.can_ask:
            raise JudgeNotConfiguredError(
                f"no judge configured and no cached answer for {spec.what}: {NOT_CONFIGURED_HINT}"
            )
        return None

    def _store(
        self, key: str, fields: dict[str, object], parsed: BaseModel, info: CallInfo
    ) -> None:
        """Write a fresh answer to the cache (when the mode writes)."""
        if self.cache.writes:
            self.cache.put(
                CacheEntry.model_construct(  # our own key and plain fields: nothing to check
                    key=key,
                    fields=fields,
                    raw=info.raw,
                    parsed=parsed.model_dump(mode="json"),
                    usage=info.usage,
                    latency_s=info.latency_s,
                    created_at=time.time(),
                    model=info.model,
                ),
                checked=True,  # the key was computed from these fields (keyed_fields)
            )


def drive_blocking(
    call: Generator[Request, Completion, tuple[ParsedT, CallInfo]],
    send: Callable[[Request], Completion],
) -> tuple[ParsedT, CallInfo]:
    """Run a call's protocol, sending each request with a blocking `send`."""
    try:
        request = next(call)
        while True:
            try:
                completion = send(request)
            except JudgeError as error:
                request = call.throw(error)
            else:
                request = call.send(completion)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def drive_async(
    call: Generator[Request, Completion, tuple[ParsedT, CallInfo]],
    send: Callable[[Request], Awaitable[Completion]],
) -> tuple[ParsedT, CallInfo]:
    """Run a call's protocol, awaiting each request's `send`."""
    try:
        request = next(call)
        while True:
            try:
                completion = await send(request)
            except JudgeError as error:
                request = call.throw(error)
            else:
                request = call.send(completion)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
