"""What a judged test's outcome is, everywhere it is reported.

- A judge error is an error in every output: ERROR on the terminal and `<error>` (never
  `<failure>`) in JUnit XML, whether it happened in a fixture or in the test body, with
  and without xdist.
- `@pytest.mark.judge_suite` records pointwise failures (`assert_meets_rubric`) for the
  gates, as it does pairwise ones, instead of failing the test.
- A judged assertion that fails inside `pytest.raises` (a test of the judge itself) is
  what the test expected: it does not count toward the gates, and the summary does not
  print FAIL for it.
"""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET

import pytest

from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

pytest_plugins = ["pytester"]

GOOD = "Paris is the capital of France. GOOD"
BAD = "I think it is Lyon."


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


UNREACHABLE = """
import pytest
from pytest_rubric_judge import assert_preferred

@pytest.fixture
def verdict(judge):
    return judge.compare("q?", "a", "b")

def test_in_the_body():
    assert_preferred("a", "b", prompt="q?")

def test_in_a_fixture(verdict):
    pass

def test_a_real_failure():
    assert 1 == 2
"""


def test_a_judge_error_is_an_error_in_junit_xml_and_on_the_terminal(
    pytester: pytest.Pytester, xdist_args: list[str]
) -> None:
    pytester.makepyfile(UNREACHABLE)
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest(
        f"--judge-url={closed_port_url()}",
        "--judge-model=m",
        "--judge-max-retries=0",
        f"--junitxml={xml}",
        "-rA",
        *xdist_args,
    )
    result.assert_outcomes(errors=2, failed=1)
    out = result.stdout.str()
    assert (
        "ERROR test_a_judge_error_is_an_error_in_junit_xml_and_on_the_terminal.py::test_in_the_body"
        in out
    )
    cases = {case.get("name"): case for case in ET.parse(xml).getroot().iter("testcase")}
    for name in ("test_in_the_body", "test_in_a_fixture"):
        case = cases[name]
        assert case.find("failure") is None, name
        error = case.find("error")
        assert error is not None, name
        assert "JudgeUnavailableError" in (error.get("message") or ""), name
    assert cases["test_a_real_failure"].find("failure") is not None
    assert cases["test_a_real_failure"].find("error") is None
    suite = next(ET.parse(xml).getroot().iter("testsuite"))
    assert (suite.get("errors"), suite.get("failures")) == ("2", "1")


@pytest.fixture
def good_wins(fake_judge: FakeJudge) -> FakeJudge:
    fake_judge.policy = ByResponsePolicy("GOOD")
    return fake_judge


def test_judge_suite_records_pointwise_failures_for_the_gates(
    pytester: pytest.Pytester, good_wins: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        from pytest_rubric_judge import assert_meets_rubric

        pytestmark = pytest.mark.judge_suite

        def test_pointwise():
            assert_meets_rubric({BAD!r}, prompt="What is the capital of France?", min_score=0.99)
        """
    )
    report = pytester.path / "run.json"
    result = pytester.runpytest(*judge_args, f"--judge-report={report}")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert (
        "FAIL test_judge_suite_records_pointwise_failures_for_the_gates.py::test_pointwise" in out
    )
    assert "judge_suite: 1 " in out
    data = json.loads(report.read_text())
    (record,) = data["judgements"]
    assert record["suite"] is True and record["passed"] is False


CAUGHT = f"""
import pytest
from pytest_rubric_judge import GradeFailed, JudgmentFailed, assert_meets_rubric, assert_preferred

def test_the_judge_prefers_the_better_answer():
    assert_preferred({GOOD!r}, {BAD!r}, prompt="What is the capital of France?")

def test_the_judge_catches_a_worse_answer():
    with pytest.raises(JudgmentFailed):
        assert_preferred({BAD!r}, {GOOD!r}, prompt="Capital of France, please?")

def test_the_judge_catches_a_bad_grade():
    with pytest.raises(GradeFailed):
        assert_meets_rubric({BAD!r}, prompt="Name the capital of France.", min_score=0.99)
"""


def test_a_failure_caught_by_pytest_raises_does_not_count(
    pytester: pytest.Pytester, good_wins: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(CAUGHT)
    report = pytester.path / "run.json"
    result = pytester.runpytest(
        *judge_args, "--judge-fail-under=winrate=1,consistency=1", f"--judge-report={report}"
    )
    result.assert_outcomes(passed=3)
    assert result.ret == 0
    out = result.stdout.str()
    summary = out.split("= rubric judge =", 1)[1]
    assert "FAIL " not in summary
    assert "gate winrate >= 1: PASSED (1.000 = 1/1" in summary
    assert (
        "CAUGHT test_a_failure_caught_by_pytest_raises_does_not_count.py::test_the_judge_catches_a_worse_answer"
        in summary
    )
    data = json.loads(report.read_text())
    assert data["passed"] is True
    caught = [r for r in data["judgements"] if r["caught"]]
    assert len(caught) == 2 and not any(r["passed"] for r in caught)
    assert data["aggregates"]["comparisons"] == 1


def test_a_failure_that_escapes_still_counts(
    pytester: pytest.Pytester, good_wins: FakeJudge, judge_args: list[str]
) -> None:
    """A test that catches the failure and raises another from it still failed on it."""
    pytester.makepyfile(
        f"""
        from pytest_rubric_judge import JudgmentFailed, assert_preferred

        def test_rewraps():
            try:
                assert_preferred({BAD!r}, {GOOD!r}, prompt="What is the capital of France?")
            except JudgmentFailed as failure:
                raise AssertionError("the candidate regressed") from failure
        """
    )
    result = pytester.runpytest(*judge_args, "--judge-fail-under=winrate=1")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "FAIL test_a_failure_that_escapes_still_counts.py::test_rewraps" in out
    assert "gate winrate >= 1: FAILED" in out
