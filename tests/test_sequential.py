"""The sequential test's decision function: its properties, and its error rates simulated.

The same function decides in the assertions (`pytest_rubric_judge.confidence`) and in the
benchmark (`benchmarks/bench_sequential.py`), a fast run of which is checked here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rubric_judge.sequential import SequentialTest, flakiness

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_sequential.py"

confidences = st.sampled_from([0.6, 0.8, 0.9, 0.95, 0.99])
max_samples = st.integers(min_value=1, max_value=40)
outcome_lists = st.lists(st.booleans(), min_size=0, max_size=40)


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sequential", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# -- properties ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(confidences, max_samples, outcome_lists, st.data())
def test_more_wins_never_turn_a_pass_into_a_fail(
    confidence: float, most: int, outcomes: list[bool], data: st.DataObject
) -> None:
    test = SequentialTest(confidence=confidence, max_samples=most)
    losses = [i for i, won in enumerate(outcomes) if not won]
    if not losses:
        return
    flipped = list(outcomes)
    flipped[data.draw(st.sampled_from(losses))] = True
    before, after = test.decide(outcomes), test.decide(flipped)
    if before is not None and before.outcome == "pass":
        assert after is not None and after.outcome == "pass"
        assert after.samples <= before.samples  # and no later
    if after is not None and after.outcome == "fail":
        assert before is not None and before.outcome == "fail"


@settings(max_examples=300, deadline=None)
@given(confidences, max_samples, outcome_lists)
def test_never_decides_before_the_minimum_evidence(
    confidence: float, most: int, outcomes: list[bool]
) -> None:
    test = SequentialTest(confidence=confidence, max_samples=most)
    least = test.min_samples()
    # All wins at the minimum suffice; one fewer sample never does.
    assert test.status(least, 0) == "pass" and test.status(0, least) == "fail"
    assert test.status(least - 1, 0) is None and test.status(0, least - 1) is None
    decision = test.decide(outcomes)
    if decision is not None and decision.outcome != "undecided":
        assert decision.samples >= least
        # the evidence: at the minimum, every sample went the decided way
        if decision.samples == least:
            assert decision.wins in (0, least)


@settings(max_examples=300, deadline=None)
@given(confidences, max_samples, outcome_lists, st.integers(min_value=0, max_value=40))
def test_the_decision_does_not_depend_on_how_samples_were_drawn(
    confidence: float, most: int, outcomes: list[bool], cut: int
) -> None:
    """A decision on a prefix (a batch boundary) is the decision on the whole stream."""
    test = SequentialTest(confidence=confidence, max_samples=most)
    early = test.decide(outcomes[:cut])
    if early is not None:
        assert test.decide(outcomes) == early
    if len(outcomes) >= most:
        assert test.decide(outcomes) is not None  # max_samples always ends it


@settings(max_examples=300, deadline=None)
@given(confidences, st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=60))
def test_the_interval_holds_the_rate_and_agrees_with_the_decision(
    confidence: float, wins: int, losses: int
) -> None:
    test = SequentialTest(confidence=confidence)
    low, high = test.interval(wins, losses)
    assert 0.0 <= low <= high <= 1.0
    if wins + losses:
        assert low <= wins / (wins + losses) <= high
    status = test.status(wins, losses)
    assert (status == "pass") == (low >= 0.5 - 1e-12) or abs(low - 0.5) < 1e-9
    assert (status == "fail") == (high <= 0.5 + 1e-12) or abs(high - 0.5) < 1e-9


def test_examples_and_parameters() -> None:
    test = SequentialTest()
    assert (test.confidence, test.max_samples, test.design, test.batch) == (0.95, 16, 0.8, 4)
    assert test.min_samples() == 7  # 1.6^7 = 26.8 >= 20 > 1.6^6 = 16.8
    decision = test.decide([True] * 7)
    assert decision is not None and decision.outcome == "pass" and decision.split == "7-0"
    assert decision.interval == "[0.529, 1.000]"
    assert test.decide([True] * 6) is None
    undecided = test.decide([True, False] * 8)
    assert undecided is not None and undecided.outcome == "undecided" and undecided.samples == 16
    assert "undecided after 16 of at most 16 samples" in undecided.describe()
    assert list(test.next_batch(0)) == [0, 1, 2, 3]
    assert list(test.next_batch(14)) == [14, 15]
    for bad in (
        {"confidence": 0.5},
        {"confidence": 1.0},
        {"max_samples": 0},
        {"design": 0.5},
        {"batch": 0},
    ):
        with pytest.raises(ValueError):
            SequentialTest(**bad)  # type: ignore[arg-type]


def test_flakiness_classes() -> None:
    assert flakiness(4, 4) == "stable_pass"
    assert flakiness(0, 3) == "stable_fail"
    assert flakiness(2, 5) == "flaky"
    assert flakiness(1, 1) is None and flakiness(None, None) is None


# -- error rates -----------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("most", [4, 16, 40])
def test_exact_false_pass_rate_at_one_half_is_within_the_bound(
    confidence: float, most: int
) -> None:
    bench = load_bench()
    test = SequentialTest(confidence=confidence, max_samples=most)
    passed, failed, undecided, _ = bench.exact(test, 0.5)
    assert passed <= test.alpha and failed <= test.alpha
    assert passed + failed + undecided == pytest.approx(1.0)
    # below 1/2 it passes even less often (the test is monotone in p)
    assert bench.exact(test, 0.4)[0] <= passed


def test_fast_simulation_bounds_the_false_pass_rate() -> None:
    bench = load_bench()
    runs = 3000
    test, (n, k), rows = bench.run(runs=runs, seed=7)
    sequential = {row.p: row for row in rows if row.method.startswith("sequential")}
    # 1 - confidence = 0.05, plus four standard errors of a 3000-run estimate
    assert sequential[0.5].passed <= 0.05 + 4 * (0.05 * 0.95 / runs) ** 0.5
    assert sequential[0.5].passed == pytest.approx(bench.exact(test, 0.5)[0], abs=0.015)
    assert sequential[0.95].passed >= 0.97 and sequential[0.95].mean_samples < 10
    assert [sequential[p].passed for p in bench.WIN_RATES] == sorted(
        sequential[p].passed for p in bench.WIN_RATES
    )
    # the matched fixed-N vote: the same error rate at 1/2, at least the same power at p1
    assert bench.binomial_tail(n, k, 0.5) <= bench.exact(test, 0.5)[0]
    assert bench.binomial_tail(n, k, 0.8) >= bench.exact(test, 0.8)[0]
    assert n > sequential[0.95].mean_samples
    # a plain majority passes a coin flip about 40% of the time
    majority = next(row for row in rows if row.p == 0.5 and "majority" in row.method)
    assert majority.passed > 0.3
