"""Weighted scores, orientation of passes, reconciliation of two orders, offline rescoring.

All pure functions of the models, so a verdict can be rebuilt from cached passes whenever
the reconciliation or the weights change, without calling the judge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .models import (
    CallInfo,
    CriterionScore,
    Label,
    Order,
    PassResult,
    Rubric,
    SlotScores,
    Verdict,
)

#: SPEC's label values: A>B = +1, B>A = -1, both ties = 0.
LABEL_VALUE: dict[Label, int] = {"A>B": 1, "B>A": -1, "A=B": 0, "A=B (bothbad)": 0}
DEFAULT_TIE_BAND = 0.05


def flip_label(label: Label) -> Label:
    """The same judgement with the slots swapped."""
    if label == "A>B":
        return "B>A"
    if label == "B>A":
        return "A>B"
    return label


def weighted_scores(rubric: Rubric, scores: Iterable[CriterionScore]) -> tuple[float, float]:
    """(weighted_A, weighted_B): sum over criteria of weight x normalized score.

    Weights are used as they stand in `rubric`, which is normalized to sum to 1.
    """
    by_name = {s.name: s for s in scores}
    total_a = total_b = 0.0
    for criterion in rubric.criteria:
        item = by_name.get(criterion.name)
        if item is None:
            raise ValueError(f"criterion {criterion.name!r} has no score")
        total_a += criterion.weight * criterion.normalize(item.score_a)
        total_b += criterion.weight * criterion.normalize(item.score_b)
    return total_a, total_b


def _swap(score: CriterionScore) -> CriterionScore:
    return CriterionScore(
        name=score.name,
        score_a=score.score_b,
        score_b=score.score_a,
        justification_a=score.justification_b,
        justification_b=score.justification_a,
    )


def orient(slot: SlotScores, rubric: Rubric, order: Order, call: CallInfo) -> PassResult:
    """Turn a pass in slot terms into one about the original A and B.

    The reversed pass showed response B in slot A, so its scores, justifications and
    label are swapped back.
    """
    scores = slot.scores if order == "forward" else tuple(_swap(s) for s in slot.scores)
    preference = slot.preference if order == "forward" else flip_label(slot.preference)
    weighted_a, weighted_b = weighted_scores(rubric, scores)
    return PassResult(
        order=order,
        scores=scores,
        preference=preference,
        overall_justification=slot.overall_justification,
        weighted_a=weighted_a,
        weighted_b=weighted_b,
        warnings=slot.warnings,
        call=call,
    )


def reconcile(forward: Label, reversed_: Label) -> tuple[Label, bool]:
    """Combine the labels of both orders (both already mapped to the original A and B).

    Consistent when both passes have the same value. An inconsistent pair takes the sign
    of the sum, so A>B against B>A is a tie; `A=B (bothbad)` is kept only when both passes
    say it.
    """
    value_f, value_r = LABEL_VALUE[forward], LABEL_VALUE[reversed_]
    consistent = value_f == value_r
    total = value_f + value_r
    if total > 0:
        return "A>B", consistent
    if total < 0:
        return "B>A", consistent
    if forward == reversed_ == "A=B (bothbad)":
        return "A=B (bothbad)", consistent
    return "A=B", consistent


def build_verdict(
    rubric: Rubric, forward: PassResult, reversed_: PassResult, **context: Any
) -> Verdict:
    """The verdict of two oriented passes: reconciled label, mean weighted scores."""
    preference, consistent = reconcile(forward.preference, reversed_.preference)
    weighted_a = (forward.weighted_a + reversed_.weighted_a) / 2
    weighted_b = (forward.weighted_b + reversed_.weighted_b) / 2
    warnings = [*rubric.warnings]
    for item in (forward, reversed_):
        warnings.extend(f"{item.order} pass: {w}" for w in item.warnings)
    if not consistent:
        warnings.append(
            f"position flip: forward pass said {forward.preference}, "
            f"reversed pass said {reversed_.preference}"
        )
    return Verdict(
        preference=preference,
        consistent=consistent,
        weighted_a=weighted_a,
        weighted_b=weighted_b,
        margin=weighted_a - weighted_b,
        rubric=rubric,
        forward=forward,
        reversed=reversed_,
        warnings=tuple(warnings),
        cached=forward.call.cached and reversed_.call.cached,
        **context,
    )


def label_from_margin(margin: float, tie_band: float = DEFAULT_TIE_BAND) -> Label:
    """A>B above the tie band, B>A below minus the band, else A=B."""
    if margin > tie_band:
        return "A>B"
    if margin < -tie_band:
        return "B>A"
    return "A=B"


def reweighted_rubric(
    rubric: Rubric, weights: Mapping[str, float] | None = None, drop: Iterable[str] = ()
) -> Rubric:
    """The rubric with some weights replaced and some criteria dropped, renormalized."""
    weights = dict(weights or {})
    dropped = set(drop)
    unknown = (set(weights) | dropped) - set(rubric.names)
    if unknown:
        raise ValueError(
            f"unknown criteria {sorted(unknown)}; this rubric has {list(rubric.names)}"
        )
    for name, weight in weights.items():
        if not weight > 0:
            raise ValueError(f"weight for {name!r} must be > 0 (drop the criterion instead)")
    kept = tuple(
        c.model_copy(update={"weight": float(weights.get(c.name, c.weight))})
        for c in rubric.criteria
        if c.name not in dropped
    )
    if not kept:
        raise ValueError("rescoring would drop every criterion; keep at least one")
    total = sum(c.weight for c in kept)
    kept = tuple(c.model_copy(update={"weight": c.weight / total}) for c in kept)
    return rubric.model_copy(update={"criteria": kept, "warnings": ()})


def rescore(
    verdict: Verdict,
    *,
    weights: Mapping[str, float] | None = None,
    drop: Iterable[str] = (),
    tie_band: float = DEFAULT_TIE_BAND,
) -> Verdict:
    """Recompute a verdict offline with other weights; the preference follows the margin."""
    if tie_band < 0:
        raise ValueError("tie_band must be >= 0")
    drop = tuple(drop)
    rubric = reweighted_rubric(verdict.rubric, weights, drop)
    keep = set(rubric.names)
    passes = []
    for item in verdict.passes:
        scores = tuple(s for s in item.scores if s.name in keep)
        weighted_a, weighted_b = weighted_scores(rubric, scores)
        passes.append(
            item.model_copy(
                update={
                    "scores": scores,
                    "weighted_a": weighted_a,
                    "weighted_b": weighted_b,
                    "preference": label_from_margin(weighted_a - weighted_b, tie_band),
                }
            )
        )
    forward, reversed_ = passes
    weighted_a = (forward.weighted_a + reversed_.weighted_a) / 2
    weighted_b = (forward.weighted_b + reversed_.weighted_b) / 2
    return verdict.model_copy(
        update={
            "rubric": rubric,
            "forward": forward,
            "reversed": reversed_,
            "weighted_a": weighted_a,
            "weighted_b": weighted_b,
            "margin": weighted_a - weighted_b,
            "preference": label_from_margin(weighted_a - weighted_b, tie_band),
            "consistent": forward.preference == reversed_.preference,
            "rescored_with": {
                "weights": dict(weights or {}),
                "drop": list(drop),
                "tie_band": tie_band,
            },
        }
    )
