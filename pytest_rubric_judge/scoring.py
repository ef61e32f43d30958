"""Weighted scores, orientation of passes, reconciliation of two orders, offline rescoring.

All pure functions of the models, so a verdict can be rebuilt from cached passes whenever
the reconciliation or the weights change, without calling the judge. The weighted score
itself is computed by `Rubric.weighted` alone; the functions here apply it to passes and
grades.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from .models import (
    DEFAULT_TIE_BAND,
    CallInfo,
    CriterionScore,
    Grade,
    GradeScore,
    Label,
    Order,
    PassResult,
    Rubric,
    ScoreValue,
    SlotScores,
    Verdict,
    label_from_margin,
)

__all__ = [
    "CONTRADICTION_MARGIN",
    "DEFAULT_TIE_BAND",
    "LABEL_VALUE",
    "PANEL_STRATEGIES",
    "PanelStrategy",
    "build_verdict",
    "clip01",
    "combine_grades",
    "combine_panel",
    "combine_samples",
    "contradiction",
    "flip_label",
    "label_from_margin",
    "majority",
    "named_warnings",
    "orient",
    "pairwise_agreement",
    "reconcile",
    "rescore",
    "reweighted_rubric",
    "weighted_score",
    "weighted_scores",
]

#: SPEC's label values: A>B = +1, B>A = -1, both ties = 0.
LABEL_VALUE: dict[Label, int] = {"A>B": 1, "B>A": -1, "A=B": 0, "A=B (bothbad)": 0}
#: A label contradicts the scores when the other side's weighted score is higher by more.
CONTRADICTION_MARGIN = 0.1
#: How a contradiction was worded when parsing still checked it, in slot terms. A parsed
#: pass cached then carries it; orientation replaces it with the wording below.
_SLOT_WORDED_CONTRADICTION = re.compile(
    r"preference (?:A>B|B>A) contradicts the scores \(A \d+\.\d\d, B \d+\.\d\d\)"
)


def flip_label(label: Label) -> Label:
    """The same judgment with the slots swapped."""
    if label == "A>B":
        return "B>A"
    if label == "B>A":
        return "A>B"
    return label


def weighted_scores(rubric: Rubric, scores: Iterable[CriterionScore]) -> tuple[float, float]:
    """(weighted_A, weighted_B): sum over criteria of weight x normalized score.

    Computed by `Rubric.weighted` with the rubric's normalized weights. Penalty criteria
    (negative weights) subtract; the result is clipped to [0, 1].
    """
    return rubric.weighted_pair(scores)


def clip01(value: float) -> float:
    """Clamp to [0, 1]; only penalties can push a weighted score below 0."""
    return min(1.0, max(0.0, value))


def weighted_score(rubric: Rubric, scores: Iterable[GradeScore]) -> float:
    """A single response's weighted score in [0, 1] (pointwise grading)."""
    return rubric.weighted({s.name: s.score for s in scores})


def _swap(score: CriterionScore) -> CriterionScore:
    return CriterionScore(
        name=score.name,
        score_a=score.score_b,
        score_b=score.score_a,
        justification_a=score.justification_b,
        justification_b=score.justification_a,
    )


def contradiction(item: PassResult, names: tuple[str, str] = ("A", "B")) -> str | None:
    """The warning for a pass whose label favours the response its scores put lower.

    It speaks of the original responses, named `names`; for the reversed pass it also
    says that the second response was shown first, and what the judge wrote in its own
    slot terms. None when the label and the scores agree (within 0.1).
    """
    label, weighted_a, weighted_b = item.preference, item.weighted_a, item.weighted_b
    if not (
        (label == "A>B" and weighted_b - weighted_a > CONTRADICTION_MARGIN)
        or (label == "B>A" and weighted_a - weighted_b > CONTRADICTION_MARGIN)
    ):
        return None
    who = ""
    if names != ("A", "B"):
        who = f" ({names[0] if label == 'A>B' else names[1]} preferred)"
    text = (
        f"preference {label}{who} contradicts the scores "
        f"({names[0]} {weighted_a:.2f}, {names[1]} {weighted_b:.2f})"
    )
    if item.order == "reversed":
        text += f"; {names[1]} was shown first, so the judge wrote {flip_label(label)}"
    return text


def orient(slot: SlotScores, rubric: Rubric, order: Order, call: CallInfo) -> PassResult:
    """Turn a pass in slot terms into one about the original A and B.

    The reversed pass showed response B in slot A, so its scores, justifications and
    label are swapped back. A label that contradicts the judge's own scores is kept, with
    a warning in the original responses' terms.
    """
    scores = slot.scores if order == "forward" else tuple(_swap(s) for s in slot.scores)
    preference = slot.preference if order == "forward" else flip_label(slot.preference)
    weighted_a, weighted_b = weighted_scores(rubric, scores)
    result = PassResult(
        order=order,
        scores=scores,
        preference=preference,
        overall_justification=slot.overall_justification,
        weighted_a=weighted_a,
        weighted_b=weighted_b,
        warnings=tuple(w for w in slot.warnings if not _SLOT_WORDED_CONTRADICTION.fullmatch(w)),
        call=call,
    )
    warning = contradiction(result)
    if warning is None:
        return result
    return result.model_copy(update={"warnings": (*result.warnings, warning)})


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


def named_warnings(verdict: Verdict, names: tuple[str, str]) -> list[str]:
    """`verdict.warnings` with each contradiction warning reworded in the caller's names
    for A and B (for example "baseline" and "new"), and so is the input a cut-to-fit
    warning names ("response A: ..."); other warnings as they are."""
    reworded: dict[str, str] = {}
    pending = [verdict]
    while pending:
        current = pending.pop()
        pending.extend((*current.samples, *current.panel))
        for item in current.passes:
            plain, named = contradiction(item), contradiction(item, names)
            if plain is not None and named is not None:
                reworded[f"{item.order} pass: {plain}"] = f"{item.order} pass: {named}"
    slots = {f"response {slot}: ": f"{name}: " for slot, name in zip("AB", names, strict=True)}
    result: list[str] = []
    for warning in verdict.warnings:
        warning = reworded.get(warning, warning)
        prefix = warning[: len("response A: ")]
        result.append(slots[prefix] + warning[len(prefix) :] if prefix in slots else warning)
    return result


def reweighted_rubric(
    rubric: Rubric, weights: Mapping[str, float] | None = None, drop: Iterable[str] = ()
) -> Rubric:
    """The rubric with some weights replaced and some criteria dropped, renormalized."""
    return rubric.reweighted(weights, drop)


def rescore(
    verdict: Verdict,
    *,
    weights: Mapping[str, float] | None = None,
    drop: Iterable[str] = (),
    tie_band: float = DEFAULT_TIE_BAND,
) -> Verdict:
    """Recompute a verdict offline with other weights; the preference follows the margin."""
    return verdict.rescored(weights=weights, drop=drop, tie_band=tie_band)


# -- repeated samples and panels ------------------------------------------------------


def majority(labels: Sequence[Label]) -> Label | None:
    """The label more than half of `labels` share (ties and both-bad count apart), or None."""
    counts = Counter(labels)
    label, count = counts.most_common(1)[0]
    return label if count * 2 > len(labels) else None


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items)


def _combined(
    members: Sequence[Verdict], preference: Label, consistent: bool, **update: Any
) -> Verdict:
    """A verdict that stands for several: mean scores, the chosen label, a representative.

    The representative (whose passes the report's table shows) is the first member that
    agrees with the combined preference.
    """
    representative = next((v for v in members if v.preference == preference), members[0])
    weighted_a = _mean(v.weighted_a for v in members)
    weighted_b = _mean(v.weighted_b for v in members)
    warnings = list(dict.fromkeys(w for v in members for w in v.warnings))
    return representative.model_copy(
        update={
            "preference": preference,
            "consistent": consistent,
            "weighted_a": weighted_a,
            "weighted_b": weighted_b,
            "margin": weighted_a - weighted_b,
            "warnings": tuple(warnings),
            "cached": all(v.cached for v in members),
            **update,
        }
    )


def combine_samples(samples: Sequence[Verdict]) -> Verdict:
    """Repeated samples of one comparison: the preference is the majority of the reconciled
    samples (no majority: a tie); consistent when a majority of samples were consistent and
    agree with it."""
    labels = [v.preference for v in samples]
    winner = majority(labels)
    preference: Label = winner if winner is not None else "A=B"
    backing = sum(1 for v in samples if v.consistent and v.preference == preference)
    return _combined(
        samples,
        preference,
        winner is not None and backing * 2 > len(samples),
        samples=tuple(samples),
        votes=dict(Counter(labels)),
    )


PanelStrategy = Literal["majority", "unanimous", "mean_margin"]
PANEL_STRATEGIES: tuple[str, ...] = ("majority", "unanimous", "mean_margin")


def pairwise_agreement(labels: Sequence[Label]) -> float | None:
    """Share of pairs of judges whose reconciled preferences agree (ties agree with ties)."""
    values = [LABEL_VALUE[label] for label in labels]
    pairs = [(x, y) for i, x in enumerate(values) for y in values[i + 1 :]]
    if not pairs:
        return None
    return sum(1 for x, y in pairs if x == y) / len(pairs)


def combine_panel(
    verdicts: Sequence[Verdict],
    strategy: PanelStrategy = "majority",
    *,
    tie_band: float = DEFAULT_TIE_BAND,
) -> Verdict:
    """Several judges' verdicts on one comparison, as one verdict.

    majority: the label more than half the judges give, else a tie; unanimous: the label
    every judge gives, else a tie; mean_margin: the label of the mean margin with
    `tie_band`. Consistent when more than half the judges were consistent and agree with
    the panel (every judge, for unanimous). Weighted scores are the judges' means.
    """
    labels = [v.preference for v in verdicts]
    if strategy == "majority":
        preference: Label = majority(labels) or "A=B"
    elif strategy == "unanimous":
        preference = labels[0] if len(set(labels)) == 1 else "A=B"
    elif strategy == "mean_margin":
        preference = label_from_margin(_mean(v.margin for v in verdicts), tie_band)
    else:
        raise ValueError(f"unknown panel strategy {strategy!r}; choose one of {PANEL_STRATEGIES}")
    backing = sum(
        1 for v in verdicts if v.consistent and LABEL_VALUE[v.preference] == LABEL_VALUE[preference]
    )
    needed = len(verdicts) if strategy == "unanimous" else len(verdicts) // 2 + 1
    return _combined(
        verdicts,
        preference,
        backing >= needed,
        panel=tuple(verdicts),
        panel_strategy=strategy,
        panel_agreement=pairwise_agreement(labels),
        judge_model=",".join(v.judge_model for v in verdicts),
    )


def combine_grades(
    grades: Sequence[Grade], combined: Literal["samples", "judges"] = "samples"
) -> Grade:
    """Several gradings of one response: mean score, per-criterion median (binary: majority)."""
    first = grades[0]
    scores = []
    for criterion in first.rubric.criteria:
        values = [s.score for g in grades if (s := g.score_of(criterion.name)) is not None]
        if criterion.type == "binary":
            value: ScoreValue = sum(bool(v) for v in values) * 2 > len(values)
        else:
            value = sorted(int(v) for v in values)[(len(values) - 1) // 2]  # lower median
        source = next(g.score_of(criterion.name) for g in grades)
        scores.append(
            GradeScore(
                name=criterion.name,
                score=value,
                justification=source.justification if source is not None else "",
            )
        )
    return first.model_copy(
        update={
            "score": _mean(g.score for g in grades),
            "scores": tuple(scores),
            "warnings": tuple(dict.fromkeys(w for g in grades for w in g.warnings)),
            "cached": all(g.cached for g in grades),
            "samples": tuple(grades),
            "combined": combined,
            "judge_model": ",".join(dict.fromkeys(g.judge_model for g in grades)),
        }
    )
