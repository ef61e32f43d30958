"""Every report of a pytest run names the judge model, what was run, when, and whether the
run was complete (an interrupted or early-stopped run says so)."""

from __future__ import annotations

import json

import pytest

TESTS = """
from pytest_rubric_judge import assert_preferred

def test_a(judge):
    assert_preferred("Paris is the capital of France. GOOD", "Lyon.", prompt="Capital of France?")

def test_b(judge):
    assert 1 == 2

def test_c(judge):
    assert_preferred("Rome is the capital of Italy. GOOD", "Milan.", prompt="Capital of Italy?")
"""


def test_reports_name_model_data_time_and_completeness(
    pytester: pytest.Pytester, judge_args: list[str]
) -> None:
    pytester.makepyfile(test_run=TESTS)
    result = pytester.runpytest(*judge_args, "--judge-report=r.json", "--judge-report-md=r.md")
    result.assert_outcomes(passed=2, failed=1)
    run = json.loads((pytester.path / "r.json").read_text())["run"]
    assert run["judge_model"] == "fake-judge"
    assert "test" in run["data"] or run["data"]
    assert run["started"] <= run["finished"] and run["started"].endswith("+00:00")
    assert run["complete"] is True
    markdown = (pytester.path / "r.md").read_text()
    assert "Judge model `fake-judge`" in markdown and "Incomplete run" not in markdown

    stopped = pytester.runpytest(*judge_args, "-x", "--judge-report=s.json", "--judge-report-md=s.md")
    stopped.assert_outcomes(passed=1, failed=1)
    assert json.loads((pytester.path / "s.json").read_text())["run"]["complete"] is False
    assert "Incomplete run" in (pytester.path / "s.md").read_text()
