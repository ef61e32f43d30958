"""Suite-level gates: parsing at the command line, evaluation, exit status, judge_suite."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from pytest_rubric_judge.gates import (
    GATE_KEYS,
    Gate,
    evaluate,
    gates_argument,
    parse_gate,
    parse_gates,
)
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.models import Verdict
from pytest_rubric_judge.stats import Aggregator, wilson_interval
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge, FixedPolicy

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def verdicts() -> Iterator[dict[str, list[Verdict]]]:
    """Real verdicts from the fake judge: candidate wins, candidate losses, position flips."""
    with FakeJudge(ByResponsePolicy("GOOD")) as fake, Judge(fake.url, fake.model) as judge:
        wins = [judge.compare(f"w{i}", "plain", "a GOOD answer") for i in range(3)]
        losses = [judge.compare("l0", "a GOOD answer", "plain")]
        fake.policy = FixedPolicy("A>B", 5, 2)  # always prefers slot A: flips with order
        flips = [judge.compare(f"f{i}", "one", "two") for i in range(2)]
    yield {"wins": wins, "losses": losses, "flips": flips}


def _aggregates(*groups: list[Verdict], errors: int = 0) -> Aggregator:
    aggregator = Aggregator(resamples=None)
    for group in groups:
        for verdict in group:
            aggregator.add(verdict)
    for _ in range(errors):
        aggregator.add_error()
    return aggregator


# -- parsing -----------------------------------------------------------------------------


def test_parse_accepts_each_key_and_comma_lists() -> None:
    gates = parse_gates("winrate=0.5, winrate_lower=0.45,consistency=0.9,errors=0")
    assert [g.key for g in gates] == list(GATE_KEYS)
    assert [g.threshold for g in gates] == [0.5, 0.45, 0.9, 0.0]
    assert parse_gate(" WinRate = 1 ").spelling == "winrate=1"
    assert parse_gate("errors=3").condition == "errors <= 3"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("speed=3", "unknown gate key 'speed'"),
        ("winrate", "not a gate of the form key=threshold"),
        ("winrate=", "not a gate of the form key=threshold"),
        ("winrate=high", "winrate=high is not a number"),
        ("winrate=1.5", "must be between 0 and 1"),
        ("consistency=nan", "must be between 0 and 1"),
        ("errors=-1", "must be 0 or more"),
        ("errors=0.5", "is not a whole number"),
    ],
)
def test_bad_expressions_name_the_accepted_keys(text: str, fragment: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        gates_argument(text)
    message = str(info.value)
    assert fragment in message
    assert "accepted keys: winrate=RATE, winrate_lower=RATE, consistency=RATE" in message
    assert "errors=N" in message


def test_an_empty_gate_list_is_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="no gate given"):
        gates_argument(" , ")


# -- evaluation --------------------------------------------------------------------------


def test_winrate_is_the_candidates_share_of_decisive_comparisons(
    verdicts: dict[str, list[Verdict]],
) -> None:
    aggregates = _aggregates(verdicts["wins"], verdicts["losses"], verdicts["flips"]).result()
    # 3 wins, 1 loss; the flips reconcile to ties and are not decisive.
    at, above = evaluate(
        [Gate(key="winrate", threshold=0.75), parse_gate("winrate=0.76")], aggregates
    )
    assert at.passed and at.value == 0.75
    assert at.detail == "0.750 = 3/4 decisive comparisons won by new"
    assert not above.passed and "FAILED" in above.line()


def test_winrate_lower_is_the_wilson_lower_bound(verdicts: dict[str, list[Verdict]]) -> None:
    aggregates = _aggregates(verdicts["wins"], verdicts["losses"]).result()
    low = wilson_interval(3, 4).low
    (result,) = evaluate([parse_gate("winrate_lower=0.3")], aggregates)
    assert result.value == pytest.approx(low) and result.passed == (low >= 0.3)
    assert "95% Wilson, n=4" in result.detail
    (strict,) = evaluate([parse_gate("winrate_lower=0.5")], aggregates)
    assert not strict.passed


def test_consistency_counts_position_flips(verdicts: dict[str, list[Verdict]]) -> None:
    aggregates = _aggregates(verdicts["wins"], verdicts["flips"]).result()
    passed, failed = evaluate(
        [parse_gate("consistency=0.6"), parse_gate("consistency=0.61")], aggregates
    )
    assert passed.passed and passed.detail == "0.600 = 3/5 comparisons consistent"
    assert not failed.passed


def test_errors_is_an_upper_bound(verdicts: dict[str, list[Verdict]]) -> None:
    aggregates = _aggregates(verdicts["wins"], errors=2).result()
    ok, too_many = evaluate([parse_gate("errors=2"), parse_gate("errors=1")], aggregates)
    assert ok.passed and not too_many.passed
    assert too_many.line() == "gate errors <= 1: FAILED (2 judge errors)"


def test_a_gate_with_nothing_to_measure_fails(verdicts: dict[str, list[Verdict]]) -> None:
    aggregates = _aggregates(verdicts["flips"]).result()  # ties only: nothing decisive
    results = evaluate(parse_gates("winrate=0,winrate_lower=0"), aggregates)
    assert [r.passed for r in results] == [False, False]
    assert "no decisive comparisons" in results[0].detail
    (consistency,) = evaluate(parse_gates("consistency=0"), Aggregator().result())
    assert not consistency.passed and "no comparisons" in consistency.detail


# -- in a pytest run ---------------------------------------------------------------------

SUITE = """
import pytest
from pytest_rubric_judge import assert_preferred

PAIRS = {"wins": ("a GOOD answer", "plain"), "loses": ("a weak answer", "a GOOD baseline")}

@pytest.mark.judge_suite
@pytest.mark.parametrize("case", ["wins", "loses"])
def test_suite(judge, case):
    new, baseline = PAIRS[case]
    assert_preferred(new, baseline, prompt="the suite prompt")

def test_plain_loses(judge):
    assert_preferred("a weak answer", "a GOOD one", prompt="a plain prompt")

@pytest.mark.judge_suite
def test_suite_error(judge):
    assert_preferred("x" * 500, "plain", prompt="too long")
"""


def test_judge_suite_records_failures_without_failing_and_keeps_errors(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest(*judge_args, "-rA", "--judge-max-input-chars=400")
    # the losing suite comparison passes, the plain one fails, the judge error stays one
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*assert_preferred FAILED: baseline preferred (A>B)*",
            "judge_suite: recorded for the suite-level gates (--judge-fail-under)*",
            "FAIL test_suite.py::test_suite[[]loses[]]*",
            "ERROR test_suite.py::test_suite_error: InputTooLargeError*",
            "judge_suite: 1 judged assertion(s) did not hold; they count toward the gates instead of "
            "failing their tests (no --judge-fail-under gate is set)",
        ]
    )


def test_gates_from_repeated_flags_set_the_exit_status(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    pytester.makepyfile(test_suite=SUITE.split("def test_plain_loses")[0])
    args = [*judge_args, "--judge-fail-under", "winrate=0.5", "--judge-fail-under=errors=0"]
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "gate winrate >= 0.5: PASSED (0.500 = 1/2 decisive comparisons won by new)",
            "gate errors <= 0: PASSED (0 judge errors)",
        ]
    )
    result = pytester.runpytest(*judge_args, "--judge-fail-under=winrate=0.51")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["gate winrate >= 0.51: FAILED (0.500 = 1/2*"])


def test_bad_gate_is_a_usage_error_from_flag_and_ini(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--judge-fail-under=speed=3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*argument --judge-fail-under: unknown gate key 'speed'; accepted keys: winrate=RATE*"]
    )
    pytester.makeini("[pytest]\njudge_fail_under =\n    winrate=0.5\n    errors=many\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini key judge_fail_under: errors=many is not a whole number*"])
