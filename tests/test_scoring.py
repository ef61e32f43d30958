"""Weighted scores, orientation, reconciliation and rescoring, against the protocol's numbers."""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from pathlib import Path

import pytest

from pytest_rubric_judge import models, parsing, scoring
from pytest_rubric_judge.models import (
    CallInfo,
    Criterion,
    CriterionScore,
    GradeScore,
    Label,
    Rubric,
    ScoreValue,
    SlotScores,
    Verdict,
)
from pytest_rubric_judge.parsing import parse_pass
from pytest_rubric_judge.scoring import (
    build_verdict,
    flip_label,
    label_from_margin,
    orient,
    reconcile,
    weighted_score,
    weighted_scores,
)

ROW0_RUBRIC = Rubric.of(
    [
        {"name": "accuracy", "weight": 0.5, "type": "scale"},
        {"name": "completeness", "weight": 0.3, "type": "scale"},
        {"name": "clarity", "weight": 0.2, "type": "scale"},
    ],
    source="judge",
)
ROW0_SCORES = (
    CriterionScore(name="accuracy", score_a=2, score_b=4),
    CriterionScore(name="completeness", score_a=1, score_b=5),
    CriterionScore(name="clarity", score_a=2, score_b=5),
)


def test_row0_vector_exactly() -> None:
    weighted_a, weighted_b = weighted_scores(ROW0_RUBRIC, ROW0_SCORES)
    assert weighted_a == pytest.approx(0.175, abs=1e-12)
    assert weighted_b == pytest.approx(0.875, abs=1e-12)
    assert weighted_a - weighted_b == pytest.approx(-0.700, abs=1e-12)


def test_binary_maps_to_one_and_zero() -> None:
    rubric = Rubric.of(
        [{"name": "cites_source", "weight": 0.4, "type": "binary"}, {"name": "tone", "weight": 0.6}]
    )
    scores = (
        CriterionScore(name="cites_source", score_a=True, score_b=False),
        CriterionScore(name="tone", score_a=1, score_b=5),
    )
    assert weighted_scores(rubric, scores) == pytest.approx((0.4, 0.6))


def test_weights_not_summing_to_one_are_renormalized_with_a_warning() -> None:
    rubric = Rubric.of([{"name": "a", "weight": 2.0}, {"name": "b", "weight": 1.0}])
    assert [c.weight for c in rubric.criteria] == pytest.approx([2 / 3, 1 / 3])
    assert any("renormalized" in w for w in rubric.warnings)
    within = Rubric.of([{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.505}])
    assert within.warnings == ()


def test_score_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="outside 1-5"):
        weighted_scores(
            ROW0_RUBRIC, (*ROW0_SCORES[:2], CriterionScore(name="clarity", score_a=6, score_b=1))
        )


@pytest.mark.parametrize(
    ("forward", "reversed_", "expected", "consistent"),
    [
        # every row of the protocol's table
        ("A>B", "A>B", "A>B", True),
        ("A>B", "B>A", "A=B", False),
        ("A>B", "A=B", "A>B", False),
        ("A=B", "A=B", "A=B", True),
        # and the rest of the grid
        ("B>A", "B>A", "B>A", True),
        ("B>A", "A>B", "A=B", False),
        ("A=B", "B>A", "B>A", False),
        ("A=B (bothbad)", "A=B (bothbad)", "A=B (bothbad)", True),
        ("A=B (bothbad)", "A=B", "A=B", True),
        ("A=B (bothbad)", "A>B", "A>B", False),
    ],
)
def test_reconciliation_table(
    forward: Label, reversed_: Label, expected: Label, consistent: bool
) -> None:
    assert reconcile(forward, reversed_) == (expected, consistent)


def test_flip_label() -> None:
    assert [flip_label(x) for x in ("A>B", "B>A", "A=B", "A=B (bothbad)")] == [
        "B>A",
        "A>B",
        "A=B",
        "A=B (bothbad)",
    ]


def _slot(preference: Label, scores: tuple[CriterionScore, ...]) -> SlotScores:
    return SlotScores(scores=scores, preference=preference, overall_justification="why")


def test_reversed_pass_is_mapped_back_to_original_responses() -> None:
    # The reversed pass showed original B in slot A: its slot scores are B's.
    slot_scores = tuple(
        CriterionScore(
            name=s.name,
            score_a=s.score_b,
            score_b=s.score_a,
            justification_a=f"about B {s.name}",
            justification_b=f"about A {s.name}",
        )
        for s in ROW0_SCORES
    )
    oriented = orient(_slot("A>B", slot_scores), ROW0_RUBRIC, "reversed", CallInfo(raw="x"))
    assert oriented.preference == "B>A"
    assert oriented.weighted_a == pytest.approx(0.175)
    assert oriented.weighted_b == pytest.approx(0.875)
    accuracy = oriented.score("accuracy")
    assert accuracy is not None
    assert (accuracy.score_a, accuracy.score_b) == (2, 4)
    assert accuracy.justification_a == "about A accuracy"


def test_verdict_means_both_passes_and_flags_position_flip() -> None:
    forward = orient(_slot("B>A", ROW0_SCORES), ROW0_RUBRIC, "forward", CallInfo(cached=True))
    # A slot-biased judge: prefers whatever is in slot A, and scores slot A higher.
    biased = tuple(CriterionScore(name=s.name, score_a=5, score_b=1) for s in ROW0_SCORES)
    reversed_ = orient(_slot("A>B", biased), ROW0_RUBRIC, "reversed", CallInfo(cached=False))
    verdict = build_verdict(ROW0_RUBRIC, forward, reversed_)
    assert reversed_.preference == "B>A"  # mapped back: slot A was original B
    assert verdict.preference == "B>A"
    assert verdict.consistent
    assert verdict.weighted_b == pytest.approx((0.875 + 1.0) / 2)
    assert verdict.margin == pytest.approx(verdict.weighted_a - verdict.weighted_b)
    assert verdict.cached is False

    flip = orient(_slot("B>A", biased), ROW0_RUBRIC, "reversed", CallInfo())
    flipped = build_verdict(ROW0_RUBRIC, forward.model_copy(update={"preference": "B>A"}), flip)
    assert flipped.preference == "A=B"
    assert not flipped.consistent
    assert any("position flip" in w for w in flipped.warnings)


def test_rescore_drops_and_reweights_offline() -> None:
    forward = orient(_slot("B>A", ROW0_SCORES), ROW0_RUBRIC, "forward", CallInfo())
    reversed_ = orient(
        _slot(
            "A>B",
            tuple(
                CriterionScore(name=s.name, score_a=s.score_b, score_b=s.score_a)
                for s in ROW0_SCORES
            ),
        ),
        ROW0_RUBRIC,
        "reversed",
        CallInfo(),
    )
    verdict = build_verdict(ROW0_RUBRIC, forward, reversed_)
    assert verdict.margin == pytest.approx(-0.7)

    only_accuracy = verdict.rescored(drop=("completeness", "clarity"))
    assert only_accuracy.rubric.names == ("accuracy",)
    assert only_accuracy.weighted_a == pytest.approx(0.25)
    assert only_accuracy.weighted_b == pytest.approx(0.75)
    assert only_accuracy.preference == "B>A"
    assert only_accuracy.rescored_with == {
        "weights": {},
        "drop": ["completeness", "clarity"],
        "tie_band": 0.05,
    }

    # Reweighting: clarity alone decides; with a huge tie band the margin is a tie.
    reweighted = verdict.rescored(weights={"clarity": 1.0, "accuracy": 1e-9, "completeness": 1e-9})
    assert reweighted.margin == pytest.approx(-0.75, abs=1e-6)
    assert verdict.rescored(tie_band=0.9).preference == "A=B"
    assert verdict.preference == "B>A"  # the original is untouched


def test_rescore_rejects_unknown_or_empty() -> None:
    forward = orient(_slot("B>A", ROW0_SCORES), ROW0_RUBRIC, "forward", CallInfo())
    verdict = build_verdict(ROW0_RUBRIC, forward, forward.model_copy(update={"order": "reversed"}))
    with pytest.raises(ValueError, match="unknown criteria"):
        verdict.rescored(drop=("nope",))
    with pytest.raises(ValueError, match="every criterion"):
        verdict.rescored(drop=ROW0_RUBRIC.names)
    with pytest.raises(ValueError, match="must be non-zero"):
        verdict.rescored(weights={"accuracy": 0})


@pytest.mark.parametrize(
    ("margin", "label"), [(0.2, "A>B"), (-0.2, "B>A"), (0.05, "A=B"), (-0.049, "A=B")]
)
def test_label_from_margin(margin: float, label: Label) -> None:
    assert label_from_margin(margin, 0.05) == label


def test_criterion_names_must_be_snake_case() -> None:
    with pytest.raises(ValueError):
        Criterion(name="Has Spaces", weight=1.0)
    with pytest.raises(ValueError):
        Criterion(name="x" * 41, weight=1.0)
    with pytest.raises(ValueError):
        Rubric.of([{"name": "a", "weight": 1}, {"name": "a", "weight": 1}])


# -- robust weights and one weighted score -------------------------------------------------


def _verdict() -> Verdict:
    forward = orient(_slot("B>A", ROW0_SCORES), ROW0_RUBRIC, "forward", CallInfo())
    swapped = tuple(
        CriterionScore(name=s.name, score_a=s.score_b, score_b=s.score_a) for s in ROW0_SCORES
    )
    reversed_ = orient(_slot("A>B", swapped), ROW0_RUBRIC, "reversed", CallInfo())
    return build_verdict(ROW0_RUBRIC, forward, reversed_)


@pytest.mark.parametrize("weight", [math.inf, -math.inf, math.nan, 1e309])
def test_rescoring_refuses_a_non_finite_weight(weight: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        _verdict().rescored(weights={"accuracy": weight})


def test_rescoring_with_huge_weights_does_not_overflow() -> None:
    rescored = _verdict().rescored(weights={"accuracy": 1e308, "completeness": 1e308})
    assert math.isfinite(rescored.margin)
    # clarity's weight (0.2) is negligible next to 1e308: accuracy and completeness decide
    assert rescored.weighted_a == pytest.approx((0.25 + 0.0) / 2)
    assert rescored.preference == "B>A"


def test_normalization_scales_by_the_largest_weight_first() -> None:
    rubric = Rubric.of([{"name": "a", "weight": 1e308}, {"name": "b", "weight": 1.5e308}])
    assert [c.weight for c in rubric.criteria] == pytest.approx([0.4, 0.6])
    tiny = Rubric.of([{"name": "a", "weight": 5e-324}, {"name": "b", "weight": 5e-324}])
    assert [c.weight for c in tiny.criteria] == pytest.approx([0.5, 0.5])


def test_weights_too_far_apart_are_refused() -> None:
    with pytest.raises(ValueError, match="too far apart"):
        Rubric.of([{"name": "a", "weight": 1e308}, {"name": "b", "weight": 5e-324}])


def test_an_unnormalized_rubric_is_scored_as_if_normalized() -> None:
    raw = Rubric(criteria=(Criterion(name="a", weight=3.0), Criterion(name="b", weight=1.0)))
    scores = (
        CriterionScore(name="a", score_a=1, score_b=5),
        CriterionScore(name="b", score_a=5, score_b=1),
    )
    assert weighted_scores(raw, scores) == pytest.approx((0.25, 0.75))
    grade = (GradeScore(name="a", score=5), GradeScore(name="b", score=1))
    assert weighted_score(raw, grade) == pytest.approx(0.75)


def test_every_weighted_score_goes_through_one_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pairwise, pointwise, rescoring and contradiction paths share one computation."""
    calls: list[str] = []
    original = Rubric.weighted

    def counting(self: Rubric, values: Mapping[str, ScoreValue]) -> float:
        calls.append("x")
        return original(self, values)

    monkeypatch.setattr(Rubric, "weighted", counting)
    weighted_scores(ROW0_RUBRIC, ROW0_SCORES)
    assert len(calls) == 2
    weighted_score(ROW0_RUBRIC, [GradeScore(name=s.name, score=3) for s in ROW0_SCORES])
    assert len(calls) == 3
    _verdict().rescored(drop=("clarity",))
    assert len(calls) > 3
    before = len(calls)
    parse_pass(
        "scores:\n  - {name: accuracy, score_A: 2, score_B: 4}\n"
        "  - {name: completeness, score_A: 1, score_B: 5}\n"
        "  - {name: clarity, score_A: 2, score_B: 5}\npreference: A>B\n",
        ROW0_RUBRIC,
    )
    assert len(calls) == before + 2  # the contradiction check uses the same computation
    assert not hasattr(parsing, "_weighted")


def test_models_does_not_import_scoring() -> None:
    tree = ast.parse(Path(models.__file__).read_text(encoding="utf-8"))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert "scoring" not in imported


# -- contradiction warnings speak of the original responses --------------------------------


def test_a_contradiction_in_the_forward_pass_is_worded_as_before() -> None:
    forward = orient(_slot("A>B", ROW0_SCORES), ROW0_RUBRIC, "forward", CallInfo())
    assert forward.warnings == ("preference A>B contradicts the scores (A 0.17, B 0.88)",)


def test_a_contradiction_in_the_reversed_pass_speaks_of_the_original_responses() -> None:
    """The judge saw B in slot A and wrote B>A: mapped back that is A>B against scores that
    favour B. The warning must not say "A" where the judge's slot A was response B."""
    swapped = tuple(
        CriterionScore(name=s.name, score_a=s.score_b, score_b=s.score_a) for s in ROW0_SCORES
    )
    reversed_ = orient(_slot("B>A", swapped), ROW0_RUBRIC, "reversed", CallInfo())
    assert reversed_.preference == "A>B"
    (warning,) = reversed_.warnings
    assert warning.startswith("preference A>B contradicts the scores (A 0.17, B 0.88)")
    assert "B was shown first" in warning and "wrote B>A" in warning
    forward = orient(_slot("B>A", ROW0_SCORES), ROW0_RUBRIC, "forward", CallInfo())
    verdict = build_verdict(ROW0_RUBRIC, forward, reversed_)
    named = scoring.named_warnings(verdict, ("baseline", "new"))
    assert any(
        w.startswith("reversed pass: preference A>B (baseline preferred) contradicts the scores "
                     "(baseline 0.17, new 0.88); new was shown first")
        for w in named
    ), named  # fmt: skip
    assert scoring.named_warnings(verdict, ("A", "B")) == list(verdict.warnings)


def test_the_slot_worded_contradiction_of_a_parsed_pass_is_reworded() -> None:
    """A parsed pass (as cached) carries its contradiction in the judge's slot terms;
    orientation replaces it, it does not repeat it."""
    swapped = tuple(
        CriterionScore(name=s.name, score_a=s.score_b, score_b=s.score_a) for s in ROW0_SCORES
    )
    old = _slot("B>A", swapped).model_copy(
        update={"warnings": ("preference B>A contradicts the scores (A 0.88, B 0.17)",)}
    )
    reversed_ = orient(old, ROW0_RUBRIC, "reversed", CallInfo())
    assert len(reversed_.warnings) == 1
    assert reversed_.warnings[0].startswith("preference A>B contradicts the scores (A 0.17")
