"""The plugin under pytest-xdist: every worker's findings reach the controller, once.

The main tests run four ways (`xdist_args`): no -n flag, -n 0, -n 2 and -p no:xdist. The
numbers asserted are the same in every mode: with two workers they only come out right
if each worker's judgements, errors, totals and baseline writes are merged exactly once.
Follow-up runs that check one more thing run with two workers only, to keep this fast.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from pytest_rubric_judge.baselines import baseline_path, read_baseline
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

pytest_plugins = ["pytester"]

#: Six prompts; the candidate wins four and loses two. judge_suite: losses do not fail.
PROMPT_SET = """
import pytest
from pytest_rubric_judge import assert_preferred

CASES = [(f"Question {i}?", i < 4) for i in range(6)]

@pytest.mark.judge_suite
@pytest.mark.parametrize("prompt,wins", CASES, ids=[f"q{i}" for i in range(6)])
def test_prompt_set(judge, prompt, wins):
    new = "A careful answer. GOOD" if wins else "a sloppy answer"
    baseline = "a plain answer" if wins else "The reference answer. GOOD"
    assert_preferred(new, baseline, prompt=prompt)
"""

SUMMARY_SECTION = re.compile(r"^=+ rubric judge =+$", re.MULTILINE)


@pytest.fixture
def good_wins(fake_judge: FakeJudge) -> FakeJudge:
    fake_judge.policy = ByResponsePolicy("GOOD")
    return fake_judge


def test_whole_run_is_summarized_reported_and_gated_once(
    pytester: pytest.Pytester, good_wins: FakeJudge, judge_args: list[str], xdist_args: list[str]
) -> None:
    pytester.makepyfile(test_set=PROMPT_SET)
    report, markdown, junit = (pytester.path / name for name in ("r.json", "r.md", "j.xml"))
    result = pytester.runpytest(
        *judge_args,
        *xdist_args,
        "--judge-fail-under=winrate=0.6,consistency=1",
        f"--judge-report={report}",
        f"--judge-report-md={markdown}",
        f"--junitxml={junit}",
    )
    result.assert_outcomes(passed=6)
    assert result.ret == 0
    out = result.stdout.str()
    assert len(SUMMARY_SECTION.findall(out)) == 1
    result.stdout.fnmatch_lines(
        [
            "FAIL test_set.py::test_prompt_set[[]q4[]]: baseline preferred (A>B)*",
            "6 judged assertions, 0 judge errors; 18 judge requests (0 retries, 0 repairs), "
            "0 cache hits*",
            "win rate of new over baseline: 0.667 [[]*[]] (95% Wilson, n=6); new 4, baseline 2*",
            "gate winrate >= 0.6: PASSED (0.667 = 4/6 decisive comparisons won by new)",
            "gate consistency >= 1: PASSED*",
        ]
    )
    assert "PytestWarning" not in out
    assert good_wins.request_count == 18  # 6 rubrics + 12 passes: nothing judged twice

    data = json.loads(report.read_text())
    nodeids = [record["nodeid"] for record in data["judgements"]]
    assert nodeids == [f"test_set.py::test_prompt_set[q{i}]" for i in range(6)]
    assert data["aggregates"]["reconciled"]["b_wins"] == 4
    assert data["totals"]["requests"] == 18 and data["passed"] is True
    assert "| comparisons | 6 (6 judged, 0 judge errors) |" in markdown.read_text()

    cases = ET.parse(junit).getroot().iter("testcase")
    props = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in cases
    }
    assert props["test_prompt_set[q0]"]["judge_preference"] == "B>A"
    assert props["test_prompt_set[q5]"]["judge_passed"] == "False"
    assert props["test_prompt_set[q5]"]["judge_suite"] == "True"

    if xdist_args != ["-n", "2"]:
        return
    # Second run: everything from the cache the workers shared; a stricter gate fails.
    result = pytester.runpytest(*judge_args, *xdist_args, "--judge-fail-under=winrate_lower=0.5")
    result.assert_outcomes(passed=6)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*0 judge requests (0 retries, 0 repairs), 18 cache hits*",
            "gate winrate_lower >= 0.5: FAILED (0.3*, win rate interval [[]0.3*",
            "judge gates: 1 of 1 not met; the run fails",
        ]
    )
    assert good_wins.request_count == 18


def test_judge_errors_from_every_worker_are_counted(
    pytester: pytest.Pytester, good_wins: FakeJudge, judge_args: list[str]
) -> None:
    xdist_args = ["-n", "2"]
    pytester.makepyfile(
        """
        import pytest
        from pytest_rubric_judge import assert_preferred

        @pytest.mark.parametrize("size", [10, 500, 600, 20])
        def test_size(judge, size):
            assert_preferred("GOOD " + "x" * size, "plain", prompt=f"size {size}")
        """
    )
    result = pytester.runpytest(
        *judge_args, *xdist_args, "--judge-max-input-chars=400", "--judge-fail-under=errors=1"
    )
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "ERROR test_judge_errors_from_every_worker_are_counted.py::test_size[[]500[]]: "
            "InputTooLargeError*",
            "2 judged assertions, 2 judge errors*",
            "gate errors <= 1: FAILED (2 judge errors)",
        ]
    )


def test_baselines_are_written_by_the_controller_after_a_passing_run(
    pytester: pytest.Pytester, good_wins: FakeJudge, judge_args: list[str], xdist_args: list[str]
) -> None:
    pytester.makepyfile(
        test_b="""
        import pytest

        @pytest.mark.parametrize("topic", ["a", "b", "c", "d"])
        def test_answer(judge_baseline, topic):
            judge_baseline.assert_not_worse(f"About {topic}. GOOD", prompt=f"Tell me of {topic}.")
        """,
        test_other="def test_broken():\n    assert False\n",
    )
    if xdist_args == ["-n", "2"]:
        result = pytester.runpytest(*judge_args, *xdist_args, "--judge-update-baselines")
        result.assert_outcomes(passed=4, failed=1)
        result.stdout.fnmatch_lines(
            ["baselines: 4 update(s) held back because the run did not pass"]
        )
        assert not (pytester.path / "judge_baselines").exists()  # no worker wrote on its own

    (pytester.path / "test_other.py").unlink()
    result = pytester.runpytest(*judge_args, *xdist_args, "--judge-update-baselines")
    result.assert_outcomes(passed=4)
    notes = [line for line in result.outlines if line.startswith("baselines: recorded")]
    assert len(notes) == 4
    for topic in "abcd":
        path = baseline_path(pytester.path / "test_b.py", f"test_answer[{topic}]")
        assert read_baseline(path) == f"About {topic}. GOOD"
