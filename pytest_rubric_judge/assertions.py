"""Regression assertions: a candidate (`new`) against a `baseline`, judged in both orders.

The baseline is response A and the candidate response B, as in the protocol's aggregates,
so a verdict's `B>A` means the candidate won. Messages speak of "baseline" and "new".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .context import Judgement, record, resolve_judge
from .models import Verdict
from .report.text import headline, signed, verdict_table

if TYPE_CHECKING:
    from .judge import CriteriaArg, Judge

NAMES = ("baseline", "new")


class JudgmentFailed(AssertionError):
    """A judged assertion did not hold. `verdict` holds everything the judge said."""

    def __init__(self, message: str, verdict: Verdict) -> None:
        super().__init__(message)
        self.verdict = verdict


def _message(reason: str, verdict: Verdict) -> str:
    lines = [reason, headline(verdict, NAMES), *verdict_table(verdict, NAMES)]
    lines.extend(f"warning: {w}" for w in verdict.warnings)
    return "\n".join(lines)


def _both_orders(verdict: Verdict, label: str) -> bool:
    return verdict.forward.preference == label and verdict.reversed.preference == label


def _finish(assertion: str, judge: Judge, verdict: Verdict, failure: str | None) -> Verdict:
    __tracebackhide__ = True  # pytest shows the failing assertion, not this frame
    record(
        Judgement(
            verdict=verdict,
            assertion=assertion,
            passed=failure is None,
            names=NAMES,
            judge=judge,
        )
    )
    if failure is not None:
        raise JudgmentFailed(_message(failure, verdict), verdict)
    return verdict


def preferred_failure(verdict: Verdict, min_margin: float, require_consistent: bool) -> str | None:
    """Why `assert_preferred` fails on this verdict, or None when it holds."""
    if require_consistent and not verdict.consistent:
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
    """Why `assert_not_worse` fails on this verdict, or None when it holds."""
    baseline_won = (
        _both_orders(verdict, "A>B") if require_consistent else verdict.preference == "A>B"
    )
    loss = verdict.weighted_a - verdict.weighted_b
    if baseline_won and loss > tolerance:
        orders = "in both orders" if verdict.consistent else "on balance"
        return (
            f"new is worse than baseline: the judge preferred baseline {orders} with a "
            f"margin of {loss:.3f}, above tolerance {tolerance:.3f}"
        )
    return None


def assert_preferred(
    new: str,
    baseline: str,
    min_margin: float = 0.0,
    *,
    prompt: str,
    judge: Judge | None = None,
    criteria: CriteriaArg = None,
    reference: str | None = None,
    require_consistent: bool = True,
) -> Verdict:
    """Pass only when the judge prefers `new` in both orders, by at least `min_margin`.

    `min_margin` bounds new's weighted score minus baseline's (both in [0, 1]). With
    `require_consistent=False` the reconciled preference suffices. Raises `JudgmentFailed`
    (an AssertionError) with the criterion table, or `JudgeError` when the judge could not
    give a verdict.
    """
    __tracebackhide__ = True
    judge = resolve_judge(judge)
    verdict = judge.compare(prompt, baseline, new, criteria=criteria, reference=reference)
    return _finish(
        "assert_preferred",
        judge,
        verdict,
        preferred_failure(verdict, min_margin, require_consistent),
    )


def assert_not_worse(
    new: str,
    baseline: str,
    *,
    prompt: str,
    tolerance: float = 0.0,
    judge: Judge | None = None,
    criteria: CriteriaArg = None,
    reference: str | None = None,
    require_consistent: bool = True,
) -> Verdict:
    """Fail only when the baseline is preferred in both orders by more than `tolerance`.

    A verdict that flips with the order is not evidence that `new` is worse, so it passes
    (the report still shows the flip). With `require_consistent=False` a reconciled
    preference for the baseline is enough to fail.
    """
    __tracebackhide__ = True
    judge = resolve_judge(judge)
    verdict = judge.compare(prompt, baseline, new, criteria=criteria, reference=reference)
    return _finish(
        "assert_not_worse",
        judge,
        verdict,
        not_worse_failure(verdict, tolerance, require_consistent),
    )
