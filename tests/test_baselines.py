"""Baselines: missing, recorded, replaced only when beaten, untouched by failing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rubric_judge.baselines import baseline_path, file_name, read_baseline, write_baseline
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

pytest_plugins = ["pytester"]

SUITE = """
import pytest

ANSWERS = {"capital": CAPITAL, "sky": "The sky is blue. GOOD"}

@pytest.mark.parametrize("topic", ["capital", "sky"])
def test_answer(judge_baseline, topic):
    judge_baseline.assert_not_worse(ANSWERS[topic], prompt=f"Tell me about the {topic}.")
"""


@pytest.fixture
def judge_on_good(fake_judge: FakeJudge) -> FakeJudge:
    fake_judge.policy = ByResponsePolicy("GOOD")
    return fake_judge


def _suite(pytester: pytest.Pytester, capital: str) -> Path:
    return pytester.makepyfile(test_suite=SUITE.replace("CAPITAL", repr(capital)))


def _stored(pytester: pytest.Pytester, test_id: str) -> str | None:
    return read_baseline(baseline_path(pytester.path / "test_suite.py", test_id))


def test_missing_baseline_fails_with_instructions(
    pytester: pytest.Pytester, judge_on_good: FakeJudge, judge_args: list[str]
) -> None:
    _suite(pytester, "Paris.")
    result = pytester.runpytest(*judge_args)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*BaselineMissingError: no stored baseline for test_answer[[]capital[]]*--judge-update-baselines*"
        ]
    )
    assert not (pytester.path / "judge_baselines").exists()
    assert judge_on_good.request_count == 0


def test_update_records_then_replaces_only_when_beaten(
    pytester: pytest.Pytester, judge_on_good: FakeJudge, judge_args: list[str]
) -> None:
    _suite(pytester, "Paris.")
    result = pytester.runpytest(*judge_args, "--judge-update-baselines")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*baselines: recorded a new baseline: judge_baselines/test_suite/test_answer[[]capital[]].txt*"
        ]
    )
    assert _stored(pytester, "test_answer[capital]") == "Paris."
    assert _stored(pytester, "test_answer[sky]") == "The sky is blue. GOOD"

    # A better candidate (the judge prefers it in both orders) replaces the baseline.
    _suite(pytester, "Paris is the capital. GOOD")
    result = pytester.runpytest(*judge_args, "--judge-update-baselines")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*replaced a baseline the candidate beat in both orders*"])
    assert _stored(pytester, "test_answer[capital]") == "Paris is the capital. GOOD"

    # An equal candidate (tie) passes assert_not_worse but does not replace it.
    _suite(pytester, "It is Paris. GOOD")
    pytester.runpytest(*judge_args, "--judge-update-baselines").assert_outcomes(passed=2)
    assert _stored(pytester, "test_answer[capital]") == "Paris is the capital. GOOD"

    # Without the flag nothing is written even when the candidate wins.
    (pytester.path / "judge_baselines" / "test_suite" / "test_answer[capital].txt").write_text(
        "old"
    )
    _suite(pytester, "Paris. GOOD")
    pytester.runpytest(*judge_args).assert_outcomes(passed=2)
    assert _stored(pytester, "test_answer[capital]") == "old"


def test_failing_run_never_touches_baselines(
    pytester: pytest.Pytester, judge_on_good: FakeJudge, judge_args: list[str]
) -> None:
    _suite(pytester, "Paris.")
    pytester.makepyfile(test_other="def test_broken():\n    assert False\n")
    result = pytester.runpytest(*judge_args, "--judge-update-baselines")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*baselines: 2 update(s) held back because the run did not pass*"])
    assert not (pytester.path / "judge_baselines").exists()


def test_worse_candidate_fails_and_keeps_baseline(
    pytester: pytest.Pytester, judge_on_good: FakeJudge, judge_args: list[str]
) -> None:
    path = baseline_path(pytester.path / "test_suite.py", "test_answer[capital]")
    write_baseline(path, "Paris, the capital of France. GOOD")
    write_baseline(baseline_path(pytester.path / "test_suite.py", "test_answer[sky]"), "blue")
    _suite(pytester, "Lyon.")
    result = pytester.runpytest(*judge_args, "--judge-update-baselines")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*new is worse than baseline*"])
    assert read_baseline(path) == "Paris, the capital of France. GOOD"


def test_file_names_are_safe_and_distinct() -> None:
    assert file_name("test_q[capital]") == "test_q[capital].txt"
    odd = file_name("test_q[What is 2/2? é]")
    assert "/" not in odd and "?" not in odd
    assert file_name("test_q[a/b]") != file_name("test_q[a_b]")
    assert len(file_name("test_" + "x" * 500)) < 150


def test_write_is_atomic_and_exact(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "b.txt"
    write_baseline(path, "line one\r\nünïcode\n")
    assert read_baseline(path) == "line one\r\nünïcode\n"
    write_baseline(path, "second")
    assert read_baseline(path) == "second"
    assert [p.name for p in path.parent.iterdir()] == ["b.txt"]  # no temp files left
