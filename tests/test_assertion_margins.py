"""Pairwise assertions on verdicts whose label and weighted margin tell different stories.

The label decides (the weighted scores are observability): `assert_not_worse` fails on a
consistent preference for the baseline even when the weighted margin is 0, unless the
test gave a `tolerance` that the baseline's weighted lead stays within.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_rubric_judge import Judge, assertions
from pytest_rubric_judge.assertions import (
    GradeFailed,
    JudgmentFailed,
    assert_not_worse,
    not_worse_failure,
)
from pytest_rubric_judge.models import CallInfo, CriterionScore, Label, Rubric, SlotScores, Verdict
from pytest_rubric_judge.scoring import build_verdict, orient
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

BINARY = Rubric.of(
    [
        {"name": "names_the_capital", "weight": 0.5, "type": "binary"},
        {"name": "cites_a_source", "weight": 0.5, "type": "binary"},
    ]
)


def verdict(forward: Label, reversed_in_slots: Label, a: bool = True, b: bool = True) -> Verdict:
    """Both passes score A and B alike on every binary criterion; only the labels differ."""
    scores = tuple(CriterionScore(name=n, score_a=a, score_b=b) for n in BINARY.names)
    slot_f = SlotScores(scores=scores, preference=forward)
    swapped = tuple(CriterionScore(name=n, score_a=b, score_b=a) for n in BINARY.names)
    slot_r = SlotScores(scores=swapped, preference=reversed_in_slots)
    return build_verdict(
        BINARY,
        orient(slot_f, BINARY, "forward", CallInfo()),
        orient(slot_r, BINARY, "reversed", CallInfo()),
    )


def test_a_consistent_baseline_win_with_zero_margin_fails_without_tolerance() -> None:
    tied_scores = verdict("A>B", "B>A")  # the baseline (A) preferred in both orders
    assert tied_scores.preference == "A>B" and tied_scores.consistent
    assert tied_scores.margin == 0.0
    failure = not_worse_failure(tied_scores, tolerance=0.0, require_consistent=True)
    assert failure is not None
    assert "preferred baseline in both orders" in failure
    assert "no tolerance" in failure


def test_a_tolerance_covers_a_baseline_win_within_it() -> None:
    tied_scores = verdict("A>B", "B>A")
    assert not_worse_failure(tied_scores, tolerance=0.05, require_consistent=True) is None
    clear = verdict("A>B", "B>A", a=True, b=False)  # baseline leads by 1.0
    failure = not_worse_failure(clear, tolerance=0.05, require_consistent=True)
    assert failure is not None and "1.000, above tolerance 0.050" in failure


def test_a_flip_or_a_tie_still_passes() -> None:
    assert not_worse_failure(verdict("A>B", "A>B"), 0.0, True) is None  # position flip
    assert not_worse_failure(verdict("A=B", "A=B"), 0.0, True) is None
    assert not_worse_failure(verdict("B>A", "A>B"), 0.0, True) is None  # new preferred


def test_without_consistency_a_reconciled_baseline_win_fails_at_zero_margin() -> None:
    leaning = verdict("A>B", "A=B")  # reconciled A>B, not consistent
    assert leaning.preference == "A>B" and not leaning.consistent
    assert not_worse_failure(leaning, 0.0, require_consistent=True) is None
    failure = not_worse_failure(leaning, 0.0, require_consistent=False)
    assert failure is not None and "on balance" in failure


@pytest.fixture
def judge_preferring_old() -> Iterator[Judge]:
    policy = ByResponsePolicy("OLD", high=3, low=3)  # prefers OLD with equal scores
    with FakeJudge(policy) as fake, Judge(fake.url, fake.model, max_retries=0, timeout=10) as judge:
        yield judge


def test_assert_not_worse_fails_on_a_consistent_baseline_win_with_equal_scores(
    judge_preferring_old: Judge,
) -> None:
    with pytest.raises(JudgmentFailed, match="new is worse than baseline") as caught:
        assert_not_worse("a new answer", "the OLD answer", prompt="q", judge=judge_preferring_old)
    assert caught.value.verdict.margin == 0.0
    assert_not_worse(
        "a new answer", "the OLD answer", prompt="q", tolerance=0.01, judge=judge_preferring_old
    )


def test_both_assertion_errors_share_a_base_class() -> None:
    base = assertions.RubricAssertionError
    assert issubclass(JudgmentFailed, base)
    assert issubclass(GradeFailed, base)
    assert issubclass(base, AssertionError)
