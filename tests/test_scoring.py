"""Weighted scores, orientation, reconciliation and rescoring, against the protocol's numbers."""

from __future__ import annotations

import pytest

from pytest_rubric_judge.models import (
    CallInfo,
    Criterion,
    CriterionScore,
    Label,
    Rubric,
    SlotScores,
)
from pytest_rubric_judge.scoring import (
    build_verdict,
    flip_label,
    label_from_margin,
    orient,
    reconcile,
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
