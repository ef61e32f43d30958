"""Judged assertions.

Pairwise: a candidate (`new`) against a `baseline`, judged in both orders. The baseline is
response A and the candidate response B, as in the protocol's aggregates, so a verdict's
`B>A` means the candidate won. Messages speak of "baseline" and "new".

Pointwise: `assert_meets_rubric` grades one response against the prompt's rubric.

Both kinds of failure are a `RubricAssertionError` (an AssertionError): `JudgmentFailed`
for a pairwise assertion, `GradeFailed` for a pointwise one. A judge that could not give a
verdict raises `JudgeError` instead, which is not an AssertionError.

The label decides, the weighted scores only grant tolerance. `assert_not_worse` fails on
a preference for the baseline in both orders whatever the weighted margin, even a margin
of 0 (with a binary rubric both responses often score the same while the judge still
prefers one). A `tolerance` greater than 0 lets such a verdict pass when the baseline's
weighted lead, baseline minus new, is at most `tolerance`; a lead of 0 or less is then
within it. With the default tolerance of 0 no preference for the baseline passes.

With `confidence=` (or `--judge-confidence`) each assertion is judged sample after sample
until a sequential test decides (`confidence`, `sequential`): a sample *wins* when the
assertion holds on that sample alone. A decided failure is a `JudgmentFailed` or
`GradeFailed`; running out of samples (`max_samples`) undecided raises `JudgeUndecided`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeAlias

from .confidence import (
    sample_wins,
    sequential_compare,
    sequential_failure,
    sequential_grade,
    sequential_test,
)
from .context import Judgment, record, resolve_judge
from .models import Grade, ScoreValue, Verdict
from .report.text import grade_headline, grade_table, headline, members_lines, signed, verdict_table
from .scoring import named_warnings

if TYPE_CHECKING:
    from .inputs import ContextInput, PromptInput, ResponseInput
    from .judge import CriteriaArg, JudgeLike

    AnyJudge: TypeAlias = JudgeLike

NAMES = ("baseline", "new")


class RubricAssertionError(AssertionError):
    """A judged assertion did not hold: the common base of `JudgmentFailed` and
    `GradeFailed`, for code that handles both."""


class JudgmentFailed(RubricAssertionError):
    """A pairwise assertion did not hold. `verdict` holds everything the judge said."""

    def __init__(self, message: str, verdict: Verdict) -> None:
        super().__init__(message)
        self.verdict = verdict


class GradeFailed(RubricAssertionError):
    """A pointwise assertion did not hold. `grade` holds everything the judge said."""

    def __init__(self, message: str, grade: Grade) -> None:
        super().__init__(message)
        self.grade = grade


class JudgeUndecided(RubricAssertionError):
    """A sequentially judged assertion ran out of samples (`max_samples`) undecided: its
    samples could not tell, at the confidence asked, whether it holds. `verdict` (pairwise)
    or `grade` (pointwise) holds the samples; `decision` the test's counts and interval.
    `--judge-undecided` decides what pytest makes of it (fail, error or skip)."""

    #: The error's kind in the run's report when `--judge-undecided=error` makes it one.
    kind = "undecided"

    def __init__(self, message: str, result: Verdict | Grade) -> None:
        super().__init__(message)
        self.verdict = result if isinstance(result, Verdict) else None
        self.grade = result if isinstance(result, Grade) else None
        self.decision = result.sequential


def _message(reason: str, verdict: Verdict) -> str:
    lines = [
        reason,
        headline(verdict, NAMES),
        *members_lines(verdict, NAMES),
        *verdict_table(verdict, NAMES),
    ]
    lines.extend(f"warning: {w}" for w in named_warnings(verdict, NAMES))
    return "\n".join(lines)


def _pairwise(
    assertion: str,
    failure_of: Callable[[Verdict], str | None],
    new: ResponseInput,
    baseline: ResponseInput,
    *,
    prompt: PromptInput,
    judge: AnyJudge | None,
    criteria: CriteriaArg,
    reference: str | None,
    context: ContextInput,
    samples: int | None,
    confidence: float | None = None,
    max_samples: int | None = None,
) -> Verdict:
    """Judge baseline (A) against new (B), record the judgment, raise when it fails."""
    __tracebackhide__ = True  # pytest shows the failing assertion, not this frame
    judge = resolve_judge(judge)
    test = sequential_test(confidence, max_samples, samples)

    def won(sample: Verdict) -> bool:
        return failure_of(sample) is None

    if test is None:
        verdict = judge.compare(
            prompt,
            baseline,
            new,
            criteria=criteria,
            reference=reference,
            context=context,
            samples=samples,
        )
        failure = failure_of(verdict)
        wins, count = sample_wins(verdict.samples, won)
    else:
        verdict = sequential_compare(
            judge,
            test,
            won,
            prompt,
            baseline,
            new,
            criteria=criteria,
            reference=reference,
            context=context,
        )
        assert verdict.sequential is not None
        failure = sequential_failure(verdict.sequential, assertion)
        wins, count = verdict.sequential.wins, verdict.sequential.samples
    record(
        Judgment(
            verdict=verdict,
            assertion=assertion,
            passed=failure is None,
            names=NAMES,
            judge=judge,
            sample_wins=wins,
            sample_count=count,
        )
    )
    if failure is not None:
        if verdict.sequential is not None and verdict.sequential.outcome == "undecided":
            raise JudgeUndecided(_message(failure, verdict), verdict)
        raise JudgmentFailed(_message(failure, verdict), verdict)
    return verdict


def preferred_failure(verdict: Verdict, min_margin: float, require_consistent: bool) -> str | None:
    """Why `assert_preferred` fails on this verdict, or None when it holds."""
    if require_consistent and not verdict.consistent:
        if verdict.samples or verdict.panel:
            return (
                "the judge did not decide: too few of its samples or judges agreed in both "
                f"orders on {verdict.preference}"
            )
        return (
            "the judge did not decide: its verdict flipped with the order of the responses "
            f"(forward {verdict.forward.preference}, reversed {verdict.reversed.preference})"
        )
    if verdict.preference != "B>A":
        return f"the judge did not prefer new over baseline: {verdict.preference}"
    gain = verdict.weighted_b - verdict.weighted_a
    if gain < min_margin:
        return (
            f"new's weighted score leads baseline's by {signed(gain)}, "
            f"less than min_margin {min_margin:.3f}"
        )
    return None


def not_worse_failure(verdict: Verdict, tolerance: float, require_consistent: bool) -> str | None:
    """Why `assert_not_worse` fails on this verdict, or None when it holds.

    The label decides: a preference for the baseline (in both orders, unless
    `require_consistent` is off) fails, whatever the weighted margin, unless `tolerance`
    is above 0 and the baseline's weighted lead is at most `tolerance`.
    """
    baseline_won = verdict.preference == "A>B" and (verdict.consistent or not require_consistent)
    if not baseline_won:
        return None
    lead = verdict.weighted_a - verdict.weighted_b
    if tolerance > 0 and lead <= tolerance:
        return None
    orders = "in both orders" if verdict.consistent else "on balance"
    if tolerance > 0:
        excess = f"with a weighted lead of {lead:.3f}, above tolerance {tolerance:.3f}"
    else:
        excess = f"(weighted lead {signed(lead)}; no tolerance given)"
    return f"new is worse than baseline: the judge preferred baseline {orders} {excess}"


def assert_preferred(
    new: ResponseInput,
    baseline: ResponseInput,
    min_margin: float = 0.0,
    *,
    prompt: PromptInput,
    judge: AnyJudge | None = None,
    criteria: CriteriaArg = None,
    reference: str | None = None,
    context: ContextInput = None,
    require_consistent: bool = True,
    samples: int | None = None,
    confidence: float | None = None,
    max_samples: int | None = None,
) -> Verdict:
    """Pass only when the judge prefers `new` in both orders, by at least `min_margin`.

    `min_margin` bounds new's weighted score minus baseline's (both in [0, 1]). With
    `require_consistent=False` the reconciled preference suffices. Raises `JudgmentFailed`
    (an AssertionError) with the criterion table, or `JudgeError` when the judge could not
    give a verdict. `judge` may be a `Judge` or a `JudgePanel`. With `confidence` (e.g.
    0.95), samples are drawn until a sequential test decides that more than half of them
    hold (pass) or fewer (fail); undecided at `max_samples` raises `JudgeUndecided`.
    """
    __tracebackhide__ = True
    return _pairwise(
        "assert_preferred",
        lambda verdict: preferred_failure(verdict, min_margin, require_consistent),
        new,
        baseline,
        prompt=prompt,
        judge=judge,
        criteria=criteria,
        reference=reference,
        context=context,
        samples=samples,
        confidence=confidence,
        max_samples=max_samples,
    )


def assert_not_worse(
    new: ResponseInput,
    baseline: ResponseInput,
    *,
    prompt: PromptInput,
    tolerance: float = 0.0,
    judge: AnyJudge | None = None,
    criteria: CriteriaArg = None,
    reference: str | None = None,
    context: ContextInput = None,
    require_consistent: bool = True,
    samples: int | None = None,
    confidence: float | None = None,
    max_samples: int | None = None,
) -> Verdict:
    """Fail when the judge prefers the baseline in both orders.

    The label decides, whatever the weighted margin (even 0). With `tolerance` above 0, a
    preference for the baseline still passes when the baseline's weighted score leads
    new's by at most `tolerance`. A verdict that flips with the order is not evidence
    that `new` is worse, so it passes (the report still shows the flip). With
    `require_consistent=False` a reconciled preference for the baseline is enough to fail.
    With `confidence`, a sequential test decides on the share of samples that are not worse.
    """
    __tracebackhide__ = True
    return _pairwise(
        "assert_not_worse",
        lambda verdict: not_worse_failure(verdict, tolerance, require_consistent),
        new,
        baseline,
        prompt=prompt,
        judge=judge,
        criteria=criteria,
        reference=reference,
        context=context,
        samples=samples,
        confidence=confidence,
        max_samples=max_samples,
    )


def meets_rubric_failure(
    grade: Grade, min_score: float, min_criteria: Mapping[str, ScoreValue] | None
) -> str | None:
    """Why `assert_meets_rubric` fails on this grade, or None when it holds."""
    reasons = []
    if grade.score < min_score:
        reasons.append(f"weighted score {grade.score:.3f} is below min_score {min_score:.3f}")
    for name, minimum in (min_criteria or {}).items():
        item = grade.score_of(name)
        if item is None:
            continue  # checked before the judge was called
        if isinstance(minimum, bool):
            if item.score is not minimum:
                reasons.append(f"{name} is {item.score}, required {minimum}")
        elif isinstance(item.score, bool) or item.score < minimum:
            reasons.append(f"{name} scored {item.score}, below its minimum {minimum}")
    return "; ".join(reasons) or None


def _check_min_criteria(grade: Grade, min_criteria: Mapping[str, ScoreValue] | None) -> None:
    unknown = [name for name in (min_criteria or {}) if grade.rubric.get(name) is None]
    if unknown:
        raise ValueError(
            f"min_criteria names {unknown}, which the rubric lacks; its criteria are "
            f"{list(grade.rubric.names)} (pass criteria= to fix the rubric)"
        )


def assert_meets_rubric(
    response: ResponseInput,
    *,
    prompt: PromptInput,
    min_score: float = 0.6,
    min_criteria: Mapping[str, ScoreValue] | None = None,
    criteria: CriteriaArg = None,
    reference: str | None = None,
    context: ContextInput = None,
    judge: AnyJudge | None = None,
    samples: int | None = None,
    confidence: float | None = None,
    max_samples: int | None = None,
) -> Grade:
    """Pass when the response's weighted score is at least `min_score` (in [0, 1]).

    `min_criteria={"accuracy": 4}` also requires per-criterion minimums (for a binary
    criterion, the required value). The rubric is the prompt's, shared with pairwise
    judging, unless `criteria` are given. Raises `GradeFailed` (an AssertionError) with
    the criterion table, or `JudgeError` when the judge could not grade. With `confidence`,
    a sequential test decides on the share of samples that meet the bar.
    """
    __tracebackhide__ = True
    if not 0.0 <= min_score <= 1.0:
        raise ValueError("min_score must be within [0, 1]")
    judge = resolve_judge(judge)
    test = sequential_test(confidence, max_samples, samples)

    def won(sample: Grade) -> bool:
        _check_min_criteria(sample, min_criteria)
        return meets_rubric_failure(sample, min_score, min_criteria) is None

    if test is None:
        grade = judge.grade(
            prompt,
            response,
            criteria=criteria,
            reference=reference,
            context=context,
            samples=samples,
        )
        _check_min_criteria(grade, min_criteria)
        failure = meets_rubric_failure(grade, min_score, min_criteria)
        members = grade.samples if grade.combined == "samples" else ()
        wins, count = sample_wins(members, won)
    else:
        grade = sequential_grade(
            judge,
            test,
            won,
            prompt,
            response,
            criteria=criteria,
            reference=reference,
            context=context,
        )
        assert grade.sequential is not None
        failure = sequential_failure(grade.sequential, "assert_meets_rubric")
        wins, count = grade.sequential.wins, grade.sequential.samples
    record(
        Judgment(
            verdict=None,
            grade=grade,
            assertion="assert_meets_rubric",
            passed=failure is None,
            judge=judge,
            sample_wins=wins,
            sample_count=count,
        )
    )
    if failure is not None:
        undecided = grade.sequential is not None and grade.sequential.outcome == "undecided"
        lines = [
            failure if undecided else f"the response does not meet the rubric: {failure}",
            grade_headline(grade),
            *grade_table(grade),
        ]
        if grade.sequential is not None:
            lines.insert(2, grade.sequential.describe())
        lines.extend(f"warning: {w}" for w in grade.warnings)
        if undecided:
            raise JudgeUndecided("\n".join(lines), grade)
        raise GradeFailed("\n".join(lines), grade)
    return grade
