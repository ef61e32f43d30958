"""What a judge does, written once: a rubric, a comparison, a grading, a panel's verdict.

Each is a coroutine over a `Runner`, which knows one thing: how to run one judge call
(`CallCore.protocol`) and so how to run several at once. The blocking `Judge` runs these
coroutines on one background event loop, its calls sent from worker threads by the
blocking client (`threaded_calls`); a batch runs them on its own loop, its calls sent by
the asyncio client (`async_calls`). Samples, both orders and panels are "run these calls
concurrently" in both.

Rows sharing a prompt wait for the same rubric request: the first asks, the others await
its task, and the rubric is then remembered per judge (bounded; the cache has the rest).
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from concurrent.futures import Executor
from typing import Any, TypeVar

from pydantic import BaseModel

from .calls import CallCore, drive_async, drive_blocking
from .callspec import CallSpec, Request, sendable
from .http_policy import Completion
from .inputs import Prepared, prepare
from .models import CallInfo, Criterion, Grade, Rubric, Verdict
from .prompts import is_structured
from .scoring import (
    DEFAULT_TIE_BAND,
    PanelStrategy,
    build_verdict,
    combine_grades,
    combine_panel,
    combine_samples,
    orient,
    weighted_score,
)

T = TypeVar("T")
ParsedT = TypeVar("ParsedT", bound=BaseModel)
CriteriaArg = Rubric | Iterable[Criterion | Mapping[str, object]] | None
CallFn = Callable[[CallCore, CallSpec[Any]], Awaitable[tuple[Any, CallInfo]]]


class Runner:
    """Runs judge calls on one event loop, through `call`; dedups rubric requests."""

    def __init__(self, call: CallFn) -> None:
        self.call = call
        self._rubric_tasks: dict[tuple[int, str, str | None, bool], asyncio.Future[Rubric]] = {}

    async def rubric(
        self, core: CallCore, prompt: Any, reference: str | None, context: Any = None
    ) -> Rubric:
        """Phase 1: the criteria for this prompt, generated once and reused."""
        if not isinstance(prompt, str) or context is not None:
            prompt = prepare(
                prompt, (), context=context, max_chars=core.config.max_input_chars
            ).prompt
        prompt, reference = sendable(prompt), sendable(reference)
        core.check_size(prompt=prompt, reference=reference)
        found = core.memo_rubric(prompt, reference)
        if found is not None:
            return found
        key = (id(core), prompt, reference, is_structured(prompt))
        task = self._rubric_tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(self._make_rubric(core, prompt, reference))
            self._rubric_tasks[key] = task
            task.add_done_callback(lambda _: self._rubric_tasks.pop(key, None))
        # Several comparisons may wait on one rubric; one waiter's cancellation spares it.
        return await asyncio.shield(task)

    async def _make_rubric(self, core: CallCore, prompt: str, reference: str | None) -> Rubric:
        rubric, _ = await self.call(core, core.rubric_spec(prompt, reference))
        core.remember_rubric(prompt, reference, rubric)
        return rubric  # type: ignore[no-any-return]

    async def rubric_for(
        self, core: CallCore, prompt: Any, reference: str | None, criteria: CriteriaArg
    ) -> Rubric:
        """The test's own criteria as a rubric, else the judge's rubric for the prompt."""
        if criteria is None:
            return await self.rubric(core, prompt, reference)
        return Rubric.of(criteria, source="user")

    async def compare(
        self,
        core: CallCore,
        prompt: Any,
        response_a: Any,
        response_b: Any,
        *,
        criteria: CriteriaArg = None,
        reference: str | None = None,
        samples: int | None = None,
        first_sample: int = 0,
        context: Any = None,
    ) -> Verdict:
        """A against B in both slot orders, each sample, concurrently; reconciled.

        Samples `first_sample` to `first_sample + samples - 1` (each its own seed and cache
        entry): a sequential test draws its batches without asking for earlier ones again.
        The prompt may be chat messages, the responses trajectories, with a `context`
        (`inputs.prepare`); what had to be cut to fit is in the verdict's warnings.
        """
        prepared = _prepare(core, prompt, (response_a, response_b), context)
        prompt, (response_a, response_b) = prepared.prompt, prepared.responses
        prompt, reference = sendable(prompt), sendable(reference)
        response_a, response_b = sendable(response_a), sendable(response_b)
        core.check_size(
            prompt=prompt, reference=reference, response_a=response_a, response_b=response_b
        )
        count = core.sample_count(samples)
        rubric = await self.rubric_for(core, prompt, reference, criteria)
        results = await gather_all(
            self.call(core, core.pass_spec(prompt, rubric, a, b, reference, index))
            for index in range(first_sample, first_sample + count)
            for a, b in ((response_a, response_b), (response_b, response_a))
        )
        verdicts = []
        for index in range(count):
            (slot_f, call_f), (slot_r, call_r) = results[2 * index : 2 * index + 2]
            forward = orient(slot_f, rubric, "forward", call_f)
            reversed_ = orient(slot_r, rubric, "reversed", call_r)
            verdicts.append(
                build_verdict(
                    rubric,
                    forward,
                    reversed_,
                    judge_model=forward.call.model or core.model,
                    prompt=prompt,
                    reference=reference,
                    response_a=response_a,
                    response_b=response_b,
                )
            )
        verdict = verdicts[0] if count == 1 else combine_samples(verdicts)
        return _warned(verdict, prepared.warnings)

    async def grade(
        self,
        core: CallCore,
        prompt: Any,
        response: Any,
        *,
        criteria: CriteriaArg = None,
        reference: str | None = None,
        samples: int | None = None,
        first_sample: int = 0,
        context: Any = None,
    ) -> Grade:
        """One response against the prompt's rubric (shared with pairwise judging)."""
        prepared = _prepare(core, prompt, (response,), context)
        prompt, (response,) = prepared.prompt, prepared.responses
        prompt, reference, response = sendable(prompt), sendable(reference), sendable(response)
        core.check_size(prompt=prompt, reference=reference, response=response)
        count = core.sample_count(samples)
        rubric = await self.rubric_for(core, prompt, reference, criteria)
        answers = await gather_all(
            self.call(core, core.grade_spec(prompt, rubric, response, reference, index))
            for index in range(first_sample, first_sample + count)
        )
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
                judge_model=call.model or core.model,
            )
            for answer, call in answers
        ]
        grade = grades[0] if count == 1 else combine_grades(grades)
        return _warned(grade, prepared.warnings)

    async def panel_compare(
        self,
        cores: Sequence[CallCore],
        rubric_core: CallCore,
        strategy: PanelStrategy,
        prompt: Any,
        response_a: Any,
        response_b: Any,
        *,
        criteria: CriteriaArg = None,
        reference: str | None = None,
        samples: int | None = None,
        tie_band: float = DEFAULT_TIE_BAND,
        first_sample: int = 0,
        context: Any = None,
    ) -> Verdict:
        """Every judge's both-order verdict on the rubric judge's rubric, combined."""
        prepared = _prepare(rubric_core, prompt, (response_a, response_b), context)
        prompt, (response_a, response_b) = prepared.prompt, prepared.responses
        rubric = await self.rubric_for(rubric_core, prompt, reference, criteria)
        verdicts = await gather_all(
            self.compare(
                core,
                prompt,
                response_a,
                response_b,
                criteria=rubric,
                reference=reference,
                samples=samples,
                first_sample=first_sample,
            )
            for core in cores
        )
        return _warned(combine_panel(verdicts, strategy, tie_band=tie_band), prepared.warnings)

    async def panel_grade(
        self,
        cores: Sequence[CallCore],
        rubric_core: CallCore,
        prompt: Any,
        response: Any,
        *,
        criteria: CriteriaArg = None,
        reference: str | None = None,
        samples: int | None = None,
        first_sample: int = 0,
        context: Any = None,
    ) -> Grade:
        """Every judge grades on the same rubric; the panel's score is the mean."""
        prepared = _prepare(rubric_core, prompt, (response,), context)
        prompt, (response,) = prepared.prompt, prepared.responses
        rubric = await self.rubric_for(rubric_core, prompt, reference, criteria)
        grades = await gather_all(
            self.grade(
                core,
                prompt,
                response,
                criteria=rubric,
                reference=reference,
                samples=samples,
                first_sample=first_sample,
            )
            for core in cores
        )
        return _warned(combine_grades(grades, "judges"), prepared.warnings)


ResultT = TypeVar("ResultT", Verdict, Grade)


def _prepare(core: CallCore, prompt: Any, responses: tuple[Any, ...], context: Any) -> Prepared:
    """The inputs as the judge reads them (`inputs.prepare`), within `core`'s input limit;
    one response is "the response" in warnings, two are "response A" and "response B"."""
    names = ("the response",) if len(responses) == 1 else None
    limit = core.config.max_input_chars
    return prepare(prompt, responses, context=context, max_chars=limit, names=names)


def _warned(result: ResultT, warnings: tuple[str, ...]) -> ResultT:
    """`result` with the warnings of its inputs (what was cut to fit) first, once each."""
    added: tuple[str, ...] = tuple(w for w in warnings if w not in result.warnings)
    if not added:
        return result
    return result.model_copy(update={"warnings": (*added, *result.warnings)})


async def gather_all(work: Iterable[Awaitable[T]]) -> list[T]:
    """Await all (so finished calls reach the cache), then raise the first error."""
    outcomes = await asyncio.gather(*work, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes  # type: ignore[return-value]


def threaded_calls(executor: Executor | None = None) -> CallFn:
    """Each call driven by `drive_blocking` in a worker thread (of `executor`, else of the
    judge's own pool), its requests sent by the judge's blocking client."""

    async def call(core: CallCore, spec: CallSpec[Any]) -> tuple[Any, CallInfo]:
        loop = asyncio.get_running_loop()
        send = core.send if core.send is not None else _cannot_send
        return await loop.run_in_executor(
            executor or core.executor, drive_blocking, core.protocol(spec), send
        )

    return call


def _cannot_send(request: Request) -> Completion:
    raise AssertionError("a call without a client must be answered by the cache")


def async_calls(send: Callable[[CallCore, Request], Awaitable[Completion]]) -> CallFn:
    """Each call driven by `drive_async` on the loop, its requests awaited."""

    async def call(core: CallCore, spec: CallSpec[Any]) -> tuple[Any, CallInfo]:
        return await drive_async(core.protocol(spec), lambda request: send(core, request))

    return call
