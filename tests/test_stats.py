"""Win rates and intervals against values computed independently."""

from __future__ import annotations

import math
import random

import pytest

from pytest_rubric_judge.models import (
    CallInfo,
    CriterionScore,
    Label,
    Rubric,
    SlotScores,
    Verdict,
)
from pytest_rubric_judge.scoring import build_verdict, orient
from pytest_rubric_judge.stats import (
    Aggregator,
    aggregate,
    bootstrap_interval,
    mean_stderr,
    wilson_interval,
)

RUBRIC = Rubric.of([{"name": "accuracy", "weight": 1.0}])


def verdict(forward: Label, reversed_: Label, score_a: int = 3, score_b: int = 3):  # type: ignore[no-untyped-def]
    def slot(label: Label, a: int, b: int) -> SlotScores:
        return SlotScores(
            scores=(CriterionScore(name="accuracy", score_a=a, score_b=b),), preference=label
        )

    flip = {"A>B": "B>A", "B>A": "A>B"}.get(reversed_, reversed_)
    f = orient(slot(forward, score_a, score_b), RUBRIC, "forward", CallInfo())
    r = orient(slot(flip, score_b, score_a), RUBRIC, "reversed", CallInfo())  # type: ignore[arg-type]
    return build_verdict(RUBRIC, f, r)


def test_wilson_seven_of_ten() -> None:
    interval = wilson_interval(7, 10)
    assert (round(interval.low, 3), round(interval.high, 3)) == (0.397, 0.892)
    assert interval.describe() == "[0.397, 0.892] (95% Wilson, n=10)"


def test_wilson_by_hand_at_other_level() -> None:
    # z for 90% is 1.6448536; computed from the closed form independently of the code
    z, n, p = 1.6448536269514722, 40, 0.25
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    interval = wilson_interval(10, 40, level=0.90)
    assert interval.low == pytest.approx(centre - half, abs=1e-9)
    assert interval.high == pytest.approx(centre + half, abs=1e-9)
    assert wilson_interval(0, 0).low == 0.0 and wilson_interval(0, 0).high == 1.0
    assert wilson_interval(0, 5).low == 0.0
    with pytest.raises(ValueError):
        wilson_interval(6, 5)


def test_bootstrap_is_seeded_and_stated() -> None:
    outcomes = [1.0] * 7 + [0.0] * 3
    first = bootstrap_interval(outcomes, resamples=5000, seed=7)
    again = bootstrap_interval(outcomes, resamples=5000, seed=7)
    other = bootstrap_interval(outcomes, resamples=5000, seed=8)
    assert first == again
    assert "seed 8" in other.describe()
    # The seed is really used: on outcomes with many distinct values two seeds differ.
    spread = [((i * 37) % 101) / 100 for i in range(60)]
    seven = bootstrap_interval(spread, resamples=2000, seed=7)
    eight = bootstrap_interval(spread, resamples=2000, seed=8)
    assert seven == bootstrap_interval(spread, resamples=2000, seed=7)
    assert (seven.low, seven.high) != (eight.low, eight.high)
    assert 0.3 <= first.low <= 0.5 and 0.85 <= first.high <= 1.0
    assert "5000 resamples, seed 7" in first.describe()


def test_mean_stderr() -> None:
    mean, stderr = mean_stderr([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert stderr == pytest.approx(math.sqrt(5 / 3) / 2)
    assert mean_stderr([]) == (0.0, 0.0)


def test_article_summary_from_counts() -> None:
    """The article's job: 7 B wins, 3 A wins, 1 error of 11 comparisons."""
    verdicts = [verdict("B>A", "B>A", 2, 4)] * 7 + [verdict("A>B", "A>B", 4, 2)] * 3 + [None]
    result = aggregate(verdicts, resamples=1000, seed=0)
    assert result.comparisons == 11
    assert result.reconciled.b_wins == 7 and result.reconciled.a_wins == 3
    assert result.reconciled.errors == 1 and result.passes.errors == 2
    assert result.passes.b_wins == 14
    assert result.winrate == pytest.approx(0.7)
    assert (round(result.wilson.low, 3), round(result.wilson.high, 3)) == (0.397, 0.892)
    assert result.consistency_rate == 1.0
    assert result.bootstrap is not None and result.bootstrap.resamples == 1000


def test_ties_inconsistency_and_means() -> None:
    verdicts = [
        verdict("B>A", "B>A", 1, 5),
        verdict("A>B", "B>A", 3, 3),  # position flip -> A=B, inconsistent
        verdict("A=B (bothbad)", "A=B (bothbad)", 1, 1),
    ]
    result = aggregate(verdicts, resamples=None)
    assert result.reconciled.ties == 1 and result.reconciled.bothbad == 1
    assert result.consistency_rate == pytest.approx(2 / 3)
    assert result.winrate == 1.0
    assert result.tie_aware_winrate == pytest.approx((1 + 1) / 3)
    assert result.weighted_b.mean == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert result.margin.mean == pytest.approx(((0 - 1) + 0 + 0) / 3)
    assert result.criteria["accuracy"]["mean_b"] == pytest.approx(0.5)
    assert result.bootstrap is None


def _mixed_verdicts() -> list[Verdict | None]:
    """Forty comparisons of every kind, scores varied so that float sums depend on order."""
    kinds: list[tuple[Label, Label, int, int] | None] = [
        ("B>A", "B>A", 2, 5),
        ("A>B", "A>B", 4, 1),
        ("B>A", "B>A", 3, 4),
        ("A>B", "B>A", 3, 3),
        ("B>A", "B>A", 1, 3),
        None,
    ]
    picked = [kinds[(7 * i) % len(kinds)] for i in range(40)]
    return [None if kind is None else verdict(*kind) for kind in picked]


def _feed(order: list[int], verdicts: list[Verdict | None]) -> str:
    aggregator = Aggregator(resamples=37, seed=3)
    for index in order:
        item = verdicts[index]
        if item is None:
            aggregator.add_error(index=index)
        else:
            aggregator.add(item, index=index)
    return aggregator.result().model_dump_json()


def test_aggregates_do_not_depend_on_arrival_order() -> None:
    verdicts = _mixed_verdicts()
    in_order = list(range(len(verdicts)))
    shuffled = list(in_order)
    random.Random(11).shuffle(shuffled)
    reversed_order = in_order[::-1]
    first = _feed(in_order, verdicts)
    assert _feed(shuffled, verdicts) == first
    assert _feed(reversed_order, verdicts) == first


def test_invalid_rows_are_counted_apart_from_judge_errors() -> None:
    aggregator = Aggregator(resamples=None)
    aggregator.add(verdict("B>A", "B>A", 2, 4), index=0)
    aggregator.add_error(index=1)
    aggregator.add_invalid(index=2)
    aggregator.add_invalid(index=3)
    result = aggregator.result()
    assert result.invalid_rows == 2
    assert result.reconciled.errors == 1
    assert result.comparisons == 2  # rows that reached the judge
    assert result.rows == 4
