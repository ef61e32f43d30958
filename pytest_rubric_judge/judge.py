"""The judge: rubric, then two passes in both orders, then a verdict.

`Judge` owns the HTTP client, the cache and a small thread pool. A rubric depends on the
prompt alone, so it is generated once per (prompt, reference) and reused for both orders
and for every pair of responses to that prompt. Every judge call goes through the cache
first; what the cache stores is the parsed answer in slot terms, so verdicts are rebuilt
from cached passes without calling the judge.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from . import prompts, schemas
from .cache import CacheEntry, CacheMode, JudgeCache, keyed_fields
from .client import ChatClient, Completion, _redact_userinfo
from .endpoints import MultiClient, split_urls
from .errors import (
    CacheMissError,
    InputTooLargeError,
    JudgeError,
    JudgeNotConfiguredError,
    JudgeOutputError,
    JudgeUnavailableError,
    ParseError,
)
from .models import (
    CallInfo,
    Criterion,
    Grade,
    GradeAnswer,
    Rubric,
    SlotScores,
    Usage,
    Verdict,
)
from .parsing import parse_grade, parse_pass, parse_rubric, render_error_hint
from .scoring import build_verdict, combine_grades, combine_samples, orient, weighted_score

ParsedT = TypeVar("ParsedT", bound=BaseModel)
CriteriaArg = Rubric | Iterable[Criterion | Mapping[str, object]] | None

DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_TOKENS = 2048
DEFAULT_MAX_INPUT_CHARS = 200_000
StructuredMode = Literal["auto", "json_schema", "off"]
STRUCTURED_MODES: tuple[str, ...] = ("auto", "json_schema", "off")
#: Statuses with which a server says it does not take `response_format` schemas.
STRUCTURED_REJECTED = frozenset({400, 404, 415, 422, 501})
#: How much of an unreadable answer a JudgeOutputError quotes.
RAW_EXCERPT = 160

NOT_CONFIGURED_HINT = (
    "point the plugin at an OpenAI-compatible judge: --judge-url and --judge-model "
    "(or RUBRIC_JUDGE_BASE_URL and RUBRIC_JUDGE_MODEL), for example after "
    "`vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000` use "
    "--judge-url http://127.0.0.1:8000/v1 --judge-model Qwen/Qwen2.5-7B-Instruct"
)


@dataclass
class JudgeStats:
    """Counters of one judge's work, safe to update from several threads."""

    requests: int = 0
    retries: int = 0
    repairs: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    judge_errors: int = 0
    structured_fallbacks: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {
                name: getattr(self, name)
                for name in self.__dataclass_fields__
                if not name.startswith("_")
            }


class Judge:
    """A judge model behind an OpenAI-compatible chat-completions endpoint.

    `base_url` may be None: the judge then answers from its cache only, and a comparison
    that is not cached raises `JudgeNotConfiguredError`. `model` may be None when the
    server serves one model: it is asked for its model list on first use.
    """

    def __init__(
        self,
        base_url: str | None,
        model: str | None,
        *,
        api_key: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_mode: CacheMode = "rw",
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        temperature: float = 0.0,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        top_p: float | None = None,
        seed: int | None = None,
        min_criteria: int = 2,
        max_criteria: int = 8,
        max_input_chars: int = DEFAULT_MAX_INPUT_CHARS,
        concurrency: int = 8,
        samples: int = 1,
        structured_output: StructuredMode = "auto",
        client: ChatClient | MultiClient | None = None,
    ) -> None:
        if cache_dir is None and cache_mode != "off":
            cache_mode = "off"
        if not 1 <= min_criteria <= max_criteria:
            raise ValueError("need 1 <= min_criteria <= max_criteria")
        if max_input_chars < 1:
            raise ValueError("max_input_chars must be >= 1")
        self.base_url = base_url
        self._model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.top_p = top_p
        self.seed = seed
        self.min_criteria = min_criteria
        self.max_criteria = max_criteria
        self.max_input_chars = max_input_chars
        if samples < 1:
            raise ValueError("samples must be 1 or more")
        self.samples = samples
        if structured_output not in STRUCTURED_MODES:
            raise ValueError(
                f"structured_output must be one of {', '.join(STRUCTURED_MODES)}, "
                f"not {structured_output!r}"
            )
        self.structured_output: StructuredMode = structured_output
        #: auto mode: None until the server rejects a schema, then False for the session.
        self._structured_ok: bool | None = None
        self.cache = JudgeCache(Path(cache_dir) if cache_dir is not None else None, cache_mode)
        self.stats = JudgeStats()
        if client is None and base_url:
            urls = split_urls(base_url)
            options: dict[str, Any] = {
                "api_key": api_key,
                "timeout": timeout,
                "max_retries": max_retries,
            }
            client = (
                ChatClient(urls[0], **options)
                if len(urls) == 1
                else MultiClient.from_urls(urls, **options)
            )
        self.client: ChatClient | MultiClient | None = client
        # Drawn once per judge so the prompt block stays a shared prefix between passes.
        self._context_code = prompts.new_code()
        self._pool = ThreadPoolExecutor(max_workers=max(2, concurrency), thread_name_prefix="judge")
        self._lock = threading.Lock()
        self._rubrics: dict[tuple[str, str | None], Rubric] = {}
        self._rubric_locks: dict[tuple[str, str | None], threading.Lock] = {}

    def __repr__(self) -> str:
        # Never show credentials: a URL may carry user:password@.
        url = (
            ",".join(_redact_userinfo(u) for u in split_urls(self.base_url))
            if self.base_url
            else None
        )
        return (
            f"{type(self).__name__}(base_url={url!r}, model={self._model!r}, "
            f"cache={self.cache.mode})"
        )

    # -- configuration ---------------------------------------------------------------

    @property
    def model(self) -> str:
        """The judge model's name; asked of the server when it was not given.

        In replay mode the server is never asked: the name is what was configured.
        """
        if self._model is None and self.cache.mode != "replay":
            with self._lock:
                if self._model is None:
                    if self.client is None:
                        return ""
                    models = self.client.list_models()
                    if len(models) != 1:
                        listed = ", ".join(models[:10]) if models else "none"
                        raise JudgeNotConfiguredError(
                            f"the judge server lists {len(models)} models ({listed}); "
                            "choose one with --judge-model or RUBRIC_JUDGE_MODEL"
                        )
                    self._model = models[0]
        return self._model or ""

    @property
    def sampling(self) -> dict[str, object]:
        """Sampling parameters: part of every cache key."""
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": self.seed,
            "structured_output": self._structured_wanted(),
        }

    def close(self) -> None:
        """Stop the worker threads and close connections and the cache."""
        self._pool.shutdown(wait=True)
        if self.client is not None:
            self.client.close()
        self.cache.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API ------------------------------------------------------------------

    def rubric(self, prompt: str, *, reference: str | None = None) -> Rubric:
        """Phase 1: the criteria for this prompt, generated once and reused."""
        self._check_size(prompt=prompt, reference=reference)
        memo_key = (prompt, reference)
        with self._lock:
            cached = self._rubrics.get(memo_key)
            if cached is not None:
                return cached
            key_lock = self._rubric_locks.setdefault(memo_key, threading.Lock())
        with key_lock:  # one generation per prompt, even under concurrent comparisons
            with self._lock:
                cached = self._rubrics.get(memo_key)
            if cached is not None:
                return cached
            messages = partial(
                prompts.rubric_messages,
                prompt,
                reference=reference,
                context_code=self._context_code,
                min_criteria=self.min_criteria,
                max_criteria=self.max_criteria,
            )
            rubric, _ = self._call(
                partial(self._keyed_fields, "rubric", prompt, reference),
                messages,
                lambda text: parse_rubric(
                    text, min_criteria=self.min_criteria, max_criteria=self.max_criteria
                ),
                Rubric,
                what=f"the rubric for prompt {_excerpt(prompt)}",
                response_format=schemas.rubric_format(self.min_criteria, self.max_criteria),
            )
            with self._lock:
                self._rubrics[memo_key] = rubric
            return rubric

    def compare(
        self,
        prompt: str,
        response_a: str,
        response_b: str,
        *,
        criteria: CriteriaArg = None,
        reference: str | None = None,
        samples: int | None = None,
    ) -> Verdict:
        """Judge A against B in both slot orders and reconcile the two passes.

        All passes are sent concurrently. With `criteria`, phase 1 is skipped. With
        `samples` (default: the judge's `samples`), each order is judged that many times
        with its own seed, and the preference is the majority of the reconciled samples.
        """
        self._check_size(
            prompt=prompt, reference=reference, response_a=response_a, response_b=response_b
        )
        count = self._sample_count(samples)
        rubric = self.rubric_for(prompt, reference, criteria)
        futures: list[Future[tuple[SlotScores, CallInfo]]] = [
            self._pool.submit(self._pass, prompt, rubric, a, b, reference, index)
            for index in range(count)
            for a, b in ((response_a, response_b), (response_b, response_a))
        ]
        results = _gather(futures)
        context: dict[str, Any] = {
            "prompt": prompt,
            "reference": reference,
            "response_a": response_a,
            "response_b": response_b,
        }
        verdicts = []
        for index in range(count):
            (slot_f, call_f), (slot_r, call_r) = results[2 * index : 2 * index + 2]
            forward = orient(slot_f, rubric, "forward", call_f)
            reversed_ = orient(slot_r, rubric, "reversed", call_r)
            model = forward.call.model or self._model or ""
            verdicts.append(build_verdict(rubric, forward, reversed_, judge_model=model, **context))
        return verdicts[0] if count == 1 else combine_samples(verdicts)

    def grade(
        self,
        prompt: str,
        response: str,
        *,
        criteria: CriteriaArg = None,
        reference: str | None = None,
        samples: int | None = None,
    ) -> Grade:
        """Grade one response against the prompt's rubric (shared with pairwise judging).

        One pointwise pass per sample; the weighted score is in [0, 1].
        """
        self._check_size(prompt=prompt, reference=reference, response=response)
        count = self._sample_count(samples)
        rubric = self.rubric_for(prompt, reference, criteria)
        futures: list[Future[tuple[GradeAnswer, CallInfo]]] = [
            self._pool.submit(self._grade_pass, prompt, rubric, response, reference, index)
            for index in range(count)
        ]
        grades = [
            Grade(
                score=weighted_score(rubric, answer.scores),
                rubric=rubric,
                scores=answer.scores,
                overall_justification=answer.overall_justification,
                warnings=(*rubric.warnings, *answer.warnings),
                call=call,
                cached=call.cached,
                prompt=prompt,
                reference=reference,
                response=response,
                judge_model=call.model or self._model or "",
            )
            for answer, call in _gather(futures)
        ]
        return grades[0] if count == 1 else combine_grades(grades)

    # -- internals -------------------------------------------------------------------

    def _sample_count(self, samples: int | None) -> int:
        count = self.samples if samples is None else samples
        if count < 1:
            raise ValueError("samples must be 1 or more")
        return count

    def rubric_for(self, prompt: str, reference: str | None, criteria: CriteriaArg) -> Rubric:
        """The test's own criteria as a rubric, else the judge's rubric for the prompt."""
        if criteria is None:
            return self.rubric(prompt, reference=reference)
        return Rubric.of(criteria, source="user")

    def _sample_seed(self, index: int) -> int | None:
        """Sample 0 uses the configured seed, so one sample shares the cache with none."""
        if index == 0:
            return self.seed
        return (self.seed or 0) + index

    def _check_size(self, **texts: str | None) -> None:
        for name, text in texts.items():
            if text is not None and len(text) > self.max_input_chars:
                raise InputTooLargeError(
                    f"{name} has {len(text):,} characters, over the limit of "
                    f"{self.max_input_chars:,}; shorten it or raise --judge-max-input-chars"
                )

    def _keyed_fields(
        self,
        kind: Literal["rubric", "pass", "grade"],
        prompt: str,
        reference: str | None,
        rubric: Rubric | None = None,
        slot_a: str | None = None,
        slot_b: str | None = None,
        sample: int = 0,
        structured: bool = False,
    ) -> tuple[str, dict[str, object]]:
        """The cache key and key fields of one judge call (`cache.keyed_fields`)."""
        extra: dict[str, object] = {}
        if kind == "rubric":
            # The rubric template asks for this many criteria, so it shapes the answer.
            extra["criteria_count"] = [self.min_criteria, self.max_criteria]
        if sample:
            extra["sample"] = sample
        return keyed_fields(
            kind=kind,
            protocol_version=prompts.PROTOCOL_VERSION,
            template_hash=(
                prompts.GRADE_TEMPLATE_HASH if kind == "grade" else prompts.TEMPLATE_HASH
            ),
            model=self.model,
            sampling={
                **self.sampling,
                "seed": self._sample_seed(sample),
                "structured_output": structured,
            },
            prompt=prompt,
            reference=reference,
            rubric=_canonical(rubric) if rubric is not None else None,
            response_slot_a=slot_a,
            response_slot_b=slot_b,
            extra=extra or None,
        )

    def _pass(
        self,
        prompt: str,
        rubric: Rubric,
        slot_a: str,
        slot_b: str,
        reference: str | None,
        sample: int = 0,
    ) -> tuple[SlotScores, CallInfo]:
        def messages() -> list[dict[str, str]]:
            return prompts.pass_messages(
                prompt,
                rubric,
                slot_a,
                slot_b,
                reference=reference,
                context_code=self._context_code,
                response_code=prompts.new_code(prompt, slot_a, slot_b, reference or ""),
            )

        return self._call(
            partial(self._keyed_fields, "pass", prompt, reference, rubric, slot_a, slot_b, sample),
            messages,
            lambda text: parse_pass(text, rubric),
            SlotScores,
            what=f"a pass on prompt {_excerpt(prompt)}",
            seed=self._sample_seed(sample),
            response_format=schemas.pass_format(rubric),
        )

    def _grade_pass(
        self, prompt: str, rubric: Rubric, response: str, reference: str | None, sample: int
    ) -> tuple[GradeAnswer, CallInfo]:
        def messages() -> list[dict[str, str]]:
            return prompts.grade_messages(
                prompt,
                rubric,
                response,
                reference=reference,
                context_code=self._context_code,
                response_code=prompts.new_code(prompt, response, reference or ""),
            )

        return self._call(
            partial(self._keyed_fields, "grade", prompt, reference, rubric, response, None, sample),
            messages,
            lambda text: parse_grade(text, rubric),
            GradeAnswer,
            what=f"a grading on prompt {_excerpt(prompt)}",
            seed=self._sample_seed(sample),
            response_format=schemas.grade_format(rubric),
        )

    def _call(
        self,
        fields_for: Callable[..., tuple[str, dict[str, object]]],
        messages: Callable[[], list[dict[str, str]]],
        parse: Callable[[str], ParsedT],
        model_type: type[ParsedT],
        *,
        what: str,
        seed: int | None = None,
        response_format: dict[str, object] | None = None,
    ) -> tuple[ParsedT, CallInfo]:
        """One judge call, constrained by `response_format` when structured output is on.

        In `auto` mode a server that rejects the schema (HTTP 400, 404, 415, 422 or 501) is
        asked again without it, and the judge stops sending schemas for the session.
        """
        structured = response_format is not None and self._structured_wanted()
        try:
            return self._call_once(
                fields_for(structured=structured),
                messages,
                parse,
                model_type,
                what=what,
                seed=seed,
                response_format=response_format if structured else None,
            )
        except JudgeUnavailableError as error:
            self._fall_back_from_schemas(error, structured=structured)
        return self._call_once(
            fields_for(structured=False),
            messages,
            parse,
            model_type,
            what=what,
            seed=seed,
            response_format=None,
        )

    def _fall_back_from_schemas(self, error: JudgeUnavailableError, *, structured: bool) -> None:
        """Re-raise `error` unless it is a server rejecting the schema in `auto` mode; then
        stop sending schemas for the session (the caller asks again without one)."""
        if not (
            structured and self.structured_output == "auto" and error.status in STRUCTURED_REJECTED
        ):
            raise error
        with self._lock:
            if self._structured_ok is not False:
                self._structured_ok = False
                self.stats.add(structured_fallbacks=1)

    def _structured_wanted(self) -> bool:
        if self.structured_output == "off":
            return False
        if self.structured_output == "json_schema":
            return True
        return self._structured_ok is not False

    def _call_once(
        self,
        keyed: tuple[str, dict[str, object]],
        messages: Callable[[], list[dict[str, str]]],
        parse: Callable[[str], ParsedT],
        model_type: type[ParsedT],
        *,
        what: str,
        seed: int | None,
        response_format: dict[str, object] | None,
    ) -> tuple[ParsedT, CallInfo]:
        """One judge call through the cache, with one repair request on a parse error."""
        key, fields = keyed
        hit = self._from_cache(key, model_type, what=what, can_ask=self.client is not None)
        if hit is not None:
            return hit
        dialogue = self._dialogue(messages(), parse, what)  # messages built only on a miss
        try:
            request = next(dialogue)
            while True:
                request = dialogue.send(self._complete(request, seed, response_format))
        except StopIteration as done:
            parsed, info = done.value
        except JudgeError:
            self.stats.add(judge_errors=1)
            raise
        return parsed, self._store(key, fields, parsed, info)

    def _dialogue(
        self, request: list[dict[str, str]], parse: Callable[[str], ParsedT], what: str
    ) -> Generator[list[dict[str, str]], Completion, tuple[ParsedT, CallInfo]]:
        """The requests of one judge call, without doing any I/O: yields the messages of the
        request, and of one repair request if the answer cannot be read; is sent each
        completion; returns the parsed answer and its `CallInfo`. The blocking call above
        and the batch's awaiting one drive the same steps."""
        started = time.perf_counter()
        completion = yield request
        usage, retries, repaired = completion.usage, completion.retries, False
        try:
            parsed = _parse_complete(parse, completion)
        except ParseError as first:
            self.stats.add(repairs=1)
            hint = render_error_hint(first, completion.finish_reason)
            completion = yield prompts.repair_messages(request, completion.text, hint)
            usage, retries, repaired = usage + completion.usage, retries + completion.retries, True
            try:
                parsed = _parse_complete(parse, completion)
            except ParseError as second:
                raise unreadable(what, second, completion) from second
        info = CallInfo(
            raw=completion.text,
            usage=usage,
            latency_s=time.perf_counter() - started,
            cached=False,
            repaired=repaired,
            retries=retries,
            model=completion.model,
        )
        return parsed, info

    def _from_cache(
        self, key: str, model_type: type[ParsedT], *, what: str, can_ask: bool
    ) -> tuple[ParsedT, CallInfo] | None:
        """The cached answer for `key`; None when the judge must be asked.

        Raises when it cannot be: replay mode, or no judge to ask (`can_ask` false).
        """
        if self.cache.reads:
            entry = self.cache.get(key)
            if entry is not None:
                self.stats.add(cache_hits=1)
                info = CallInfo(
                    raw=entry.raw,
                    usage=entry.usage,
                    latency_s=entry.latency_s,
                    cached=True,
                    model=entry.model,
                )
                return model_type.model_validate(entry.parsed), info
            self.stats.add(cache_misses=1)
        if self.cache.mode == "replay":
            self.stats.add(judge_errors=1)
            raise CacheMissError(
                f"replay mode has no cached judge answer for {what} with judge model "
                f"{self.model or '(none set)'!r}; run once with --judge-cache=rw against a "
                "judge to record it, with the same --judge-model"
            )
        if not can_ask:
            self.stats.add(judge_errors=1)
            raise JudgeNotConfiguredError(
                f"no judge configured and no cached answer for {what}: {NOT_CONFIGURED_HINT}"
            )
        return None

    def _store(
        self, key: str, fields: dict[str, object], parsed: BaseModel, info: CallInfo
    ) -> CallInfo:
        """Write a fresh answer to the cache (when the mode writes); returns `info`."""
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
        return info

    def _complete(
        self,
        messages: list[dict[str, str]],
        seed: int | None,
        response_format: dict[str, object] | None = None,
    ) -> Completion:
        assert self.client is not None
        try:
            completion = self.client.complete(
                messages, **self._request_options(seed, response_format)
            )
        except BaseException as error:
            self._count_failed(error)
            raise
        return self._counted(completion)

    def _request_options(
        self, seed: int | None, response_format: dict[str, object] | None
    ) -> dict[str, Any]:
        """The keyword arguments of a client's `complete`, besides the messages."""
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": seed,
            "response_format": response_format,
        }

    def _counted(self, completion: Completion) -> Completion:
        """Count one request that got an answer (its retries and tokens too)."""
        self.stats.add(
            requests=1,
            retries=completion.retries,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
        )
        return completion

    def _count_failed(self, error: BaseException) -> None:
        """Count one request that failed, with the retries spent on it."""
        self.stats.add(requests=1, retries=error.retries if isinstance(error, JudgeError) else 0)

    def compare_many(
        self, rows: Iterable[Any], *, concurrency: int = 32, **options: Any
    ) -> Iterable[Any]:
        """Judge many rows concurrently, yielding `batch.RowResult`s as they finish.

        Rows are mappings with `prompt`, `response_A`, `response_B` (optional `id`,
        `reference`); see `pytest_rubric_judge.batch.compare_many` for the options.
        """
        from .batch import compare_many

        return compare_many(self, rows, concurrency=concurrency, **options)


@functools.lru_cache(maxsize=1024)
def _canonical(rubric: Rubric) -> list[dict[str, object]]:
    """`rubric.canonical()`, once per rubric: every pass on a prompt keys on the same one.
    Shared between calls, so never changed in place."""
    return rubric.canonical()


def unreadable(what: str, error: ParseError, completion: Completion) -> JudgeOutputError:
    """The error for an answer still unreadable after the repair request, quoting its start."""
    return JudgeOutputError(
        f"the judge's answer for {what} could not be read after one repair request: "
        f"{render_error_hint(error, completion.finish_reason)}; its answer began "
        f"{_excerpt(completion.text, RAW_EXCERPT)}",
        raw=completion.text,
    )


def _parse_complete(parse: Callable[[str], ParsedT], completion: Completion) -> ParsedT:
    """Parse an answer, refusing one the server cut off at max_tokens even if it parses:
    a rubric cut after a whole criterion would silently lose the rest."""
    if completion.finish_reason == "length":
        raise ParseError("the answer was cut off before it ended")
    return parse(completion.text)


def _gather(futures: list[Future[Any]]) -> list[Any]:
    """Wait for every future (so finished passes reach the cache), then raise the first error."""
    errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]


def _excerpt(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")


__all__ = ["Judge", "JudgeStats", "Usage"]
