"""Judging one assertion to a confidence: seeded samples in batches until the test decides.

With `confidence=` (or the run's `--judge-confidence`), an assertion does not judge a
fixed number of samples: it draws them a batch at a time (`sequential.DEFAULT_BATCH`,
each sample both orders, all of a batch concurrently) and asks the sequential test
(`sequential.SequentialTest`, the same function the benchmark simulates) after each
batch whether the samples so far decide: pass, fail, or, at `max_samples`, undecided.
Sample i is sent with seed `base + i` and cached under its index, so a rerun draws the
same batches from the cache and asks the judge nothing.

What a sample's *win* is belongs to the assertion (a function of one sample's verdict or
grade); this module only draws, counts and combines. The result is the combination of the
samples the decision used (`scoring.combine_samples`, `combine_grades`) with the
decision attached as its `sequential` field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from .context import current_context
from .models import Grade, Verdict
from .scoring import combine_grades, combine_samples
from .sequential import DEFAULT_MAX_SAMPLES, Decision, SequentialTest

if TYPE_CHECKING:
    from .inputs import ContextInput, PromptInput, ResponseInput
    from .judge import CriteriaArg, JudgeLike

__all__ = [
    "sample_wins",
    "sequential_compare",
    "sequential_failure",
    "sequential_grade",
    "sequential_test",
]

ResultT = TypeVar("ResultT", Verdict, Grade)

#: What a win of each assertion's samples says, for the messages.
CLAIMS = {
    "assert_preferred": "the judge prefers new over baseline",
    "assert_not_worse": "new is not worse than baseline",
    "assert_meets_rubric": "the response meets the rubric",
}


def sequential_test(
    confidence: float | None, max_samples: int | None, samples: int | None
) -> SequentialTest | None:
    """The test an assertion runs, or None for plain judging (a fixed number of samples).

    An assertion's own `confidence` wins over the run's (`--judge-confidence`); an
    assertion given `samples=` (and no confidence) judges that many samples even when the
    run sets a confidence. `max_samples` defaults to the run's `--judge-max-samples`.
    """
    if confidence is not None and samples is not None:
        raise ValueError(
            "give samples= or confidence=, not both: with a confidence the sequential "
            "test decides how many samples to draw (at most max_samples=)"
        )
    context = current_context()
    if confidence is None and samples is None and context is not None:
        confidence = context.confidence
    if confidence is None:
        if max_samples is not None:
            raise ValueError(
                "max_samples= bounds sequential judging: give confidence= too "
                "(or set --judge-confidence)"
            )
        return None
    if max_samples is None:
        found = context.max_samples if context is not None else None
        max_samples = found if found is not None else DEFAULT_MAX_SAMPLES
    return SequentialTest(confidence=confidence, max_samples=max_samples)


def _run(
    test: SequentialTest,
    draw: Callable[[range], Sequence[ResultT]],
    won: Callable[[ResultT], bool],
) -> tuple[list[ResultT], Decision]:
    """Draw batches until the test decides; every result drawn, and the decision."""
    results: list[ResultT] = []
    outcomes: list[bool] = []
    while True:
        wanted = test.next_batch(len(results))
        batch = list(draw(wanted))[: len(wanted)]
        if not batch:
            raise RuntimeError(f"the judge returned no result for samples {wanted}")
        results.extend(batch)
        outcomes.extend(won(result) for result in batch)
        decision = test.decide(outcomes)
        if decision is not None:
            return results, replace(decision, drawn=len(results))


def _drawer(
    judge: JudgeLike, kind: str, inputs: tuple[Any, ...], options: dict[str, Any]
) -> Callable[[range], Sequence[Any]]:
    """How samples of a comparison or a grading (`kind`) are drawn, a batch of indices at
    a time: through the judge's `compare_samples`/`grade_samples` when it has them, else
    all samples so far from `compare`/`grade` (its cache spares the earlier ones)."""
    batch = getattr(judge, f"{kind}_samples", None)
    whole = getattr(judge, kind)

    def draw(indices: range) -> Sequence[Any]:
        if callable(batch):
            found: Sequence[Any] = batch(
                *inputs, first=indices.start, count=len(indices), **options
            )
            return found
        result = whole(*inputs, samples=indices.stop, **options)
        return (result.samples or (result,))[indices.start :]

    return draw


def sequential_compare(
    judge: JudgeLike,
    test: SequentialTest,
    won: Callable[[Verdict], bool],
    prompt: PromptInput,
    response_a: ResponseInput,
    response_b: ResponseInput,
    *,
    criteria: CriteriaArg = None,
    reference: str | None = None,
    context: ContextInput = None,
) -> Verdict:
    """A against B, sample after sample, until `test` decides on the samples' wins."""
    options = {"criteria": criteria, "reference": reference, "context": context}
    draw = _drawer(judge, "compare", (prompt, response_a, response_b), options)
    results, decision = _run(test, draw, won)
    combined = combine_samples(results[: decision.samples])
    return combined.model_copy(update={"sequential": decision})


def sequential_grade(
    judge: JudgeLike,
    test: SequentialTest,
    won: Callable[[Grade], bool],
    prompt: PromptInput,
    response: ResponseInput,
    *,
    criteria: CriteriaArg = None,
    reference: str | None = None,
    context: ContextInput = None,
) -> Grade:
    """One response graded sample after sample until `test` decides on the samples' wins."""
    options = {"criteria": criteria, "reference": reference, "context": context}
    draw = _drawer(judge, "grade", (prompt, response), options)
    results, decision = _run(test, draw, won)
    combined = combine_grades(results[: decision.samples])
    return combined.model_copy(update={"sequential": decision})


def sample_wins(
    members: Sequence[ResultT], won: Callable[[ResultT], bool]
) -> tuple[int | None, int | None]:
    """(wins, samples) across the samples of a plainly sampled result; (None, None) for
    fewer than two samples."""
    if len(members) < 2:
        return None, None
    return sum(1 for member in members if won(member)), len(members)


def _percent(confidence: float) -> str:
    return f"{confidence * 100:.4g}%"


def sequential_failure(decision: Decision, assertion: str) -> str | None:
    """Why a sequentially judged assertion did not hold (failed or undecided), or None."""
    if decision.outcome == "pass":
        return None
    claim = CLAIMS.get(assertion, "the assertion holds")
    level = _percent(decision.confidence)
    counts = f"{decision.wins} of {decision.samples} samples"
    if decision.outcome == "fail":
        return (
            f"at {level} confidence the samples say no: {claim} in {counts} only "
            f"(win probability in {decision.interval}, below 1/2)"
        )
    return (
        f"undecided at {level} confidence after max_samples={decision.max_samples} samples: "
        f"{claim} in {counts} (win probability in {decision.interval}, which holds 1/2); "
        "raise --judge-max-samples or lower the confidence to decide"
    )
