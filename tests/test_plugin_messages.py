"""What the plugin prints, and which judged assertions belong to the run.

- The run's summary counts in words that agree with the numbers ("1 judged assertion").
- With no judge configured, the hint on how to configure one is printed once, in the
  summary; each test says in one line that no judge is configured.
- A judge server started by `--judge-serve` that exits, before it is ready or during the
  run, fails the judged tests with one line and the tail of its log, never a traceback.
- A mistake in a test's own `criteria=` is a one-line ERROR, not a pydantic traceback.
- Under `-m` expressions that name the `judge` marker, a test that uses the run's judge
  must carry the marker: otherwise it is an ERROR that says so, and the judge is not asked.
- A judged assertion given a judge of its own in a test not marked `judge` (a test of a
  judge, such as this project's own tests) stays in that test's report section and out of
  the run's summary, aggregates and reports.
"""

from __future__ import annotations

import json
import sys

import pytest

from pytest_rubric_judge.report.run_json import JudgmentRecord
from pytest_rubric_judge.report.text import summary_lines
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

pytest_plugins = ["pytester"]

GOOD = "Paris is the capital of France. GOOD"
BAD = "I think it is Lyon."


@pytest.fixture
def good_wins(fake_judge: FakeJudge) -> FakeJudge:
    fake_judge.policy = ByResponsePolicy("GOOD")
    return fake_judge


def test_summary_counts_agree_with_their_numbers() -> None:
    one = [JudgmentRecord(nodeid="t.py::a", assertion="assert_preferred", passed=True)]
    lines = summary_lines(one, {"requests": 3}, errors=[("t.py::b", "JudgeOutputError: x")])
    assert lines[-1].startswith("1 judged assertion, 1 judge error; 3 judge requests")
    lines = summary_lines(one * 2, {}, errors=[])
    assert lines[-1].startswith("2 judged assertions, 0 judge errors;")


def test_the_no_judge_hint_is_printed_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_rubric_judge import assert_preferred

        def test_one(judge):
            assert_preferred("new", "old", prompt="q1")

        def test_two(judge):
            assert_preferred("new", "old", prompt="q2")
        """
    )
    result = pytester.runpytest(f"--judge-cache-dir={pytester.path / 'cache'}", "-rE")
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    assert out.count("vllm serve") == 1, out
    assert out.count("RUBRIC_JUDGE_BASE_URL") == 1, out
    errors = [line for line in out.splitlines() if line.startswith("ERROR test_")]
    assert len(errors) == 4, out  # two in the judge summary, two in pytest's short summary
    ours = [line for line in errors if ": JudgeNot" in line]
    assert len(ours) == 2, out
    for line in ours:
        assert "JudgeNotConfiguredError: no judge configured" in line
        assert "RUBRIC_JUDGE_BASE_URL" not in line
    hint = out.split("= rubric judge =", 1)[1]
    assert "no judge configured: point the plugin at an OpenAI-compatible judge" in hint


DIES_LATER = """
import sys, time
from pytest_rubric_judge.testing import FakeJudge

print("serving for three requests", flush=True)
with FakeJudge(port=int(sys.argv[1])) as fake:
    while fake.request_count < 3:
        time.sleep(0.02)
    time.sleep(0.2)
print("out of memory, going away", flush=True)
sys.exit(7)
"""


def test_a_judge_server_that_dies_during_the_run_is_named(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (pytester.path / "dies_later.py").write_text(DIES_LATER)
    pytester.makepyfile(
        """
        import time
        from pytest_rubric_judge import assert_not_worse

        def test_first(judge):
            assert_not_worse("new", "old", prompt="q1")
            time.sleep(1.5)

        def test_second(judge):
            assert_not_worse("new", "old", prompt="q2")
        """
    )
    cache = tmp_path_factory.mktemp("cache")
    result = pytester.runpytest(
        f"--judge-serve={sys.executable} dies_later.py {{port}}",
        f"--judge-cache-dir={cache}",
        "--judge-max-retries=0",
    )
    result.assert_outcomes(passed=1, errors=1)
    out = result.stdout.str()
    assert "Traceback" not in out and "pytest_rubric_judge/" not in out
    assert "the judge server started by --judge-serve exited with status 7" in out
    assert "out of memory, going away" in out  # the log's tail
    assert "is the server running? Check --judge-url" not in out


CRITERIA_MISTAKES = """
from pytest_rubric_judge import assert_meets_rubric, assert_preferred

def test_weight_not_a_number(judge):
    assert_preferred("new", "old", prompt="q", criteria=[
        {"name": "accuracy", "description": "d", "weight": "heavy", "type": "scale"}])

def test_duplicate_name(judge):
    same = {"name": "accuracy", "description": "d", "weight": 1, "type": "scale"}
    assert_preferred("new", "old", prompt="q", criteria=[same, same])

def test_bad_type(judge):
    assert_meets_rubric("new", prompt="q", criteria=[
        {"name": "accuracy", "description": "d", "weight": 1, "type": "stars"}])

def test_not_a_list_of_criteria(judge):
    assert_preferred("new", "old", prompt="q", criteria="accuracy")
"""


def test_criteria_mistakes_are_one_line_errors(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(CRITERIA_MISTAKES)
    result = pytester.runpytest(*judge_args)
    result.assert_outcomes(errors=4)
    out = result.stdout.str()
    assert "pydantic" not in out and "Traceback" not in out and "FAILED" not in out
    errors = out.split("= ERRORS =", 1)[1].split("short test summary", 1)[0]
    assert "weight: Input should be a valid number" in errors and "'heavy'" in errors
    assert "criterion 'accuracy' appears more than once" in errors
    assert "type: Input should be 'scale' or 'binary'" in errors and "'stars'" in errors
    assert errors.count("JudgeUsageError: criteria= is not valid") == 4
    assert "test_criteria_mistakes_are_one_line_errors.py:4)" in errors  # where, in the test
    assert "it is not a list of dicts or Criterion objects" in errors
    assert fake_judge.request_count == 0
    assert "judge errors" not in out.split("= rubric judge =")[-1] or "0 judge errors" in out


UNMARKED = f"""
import pytest
from pytest_rubric_judge import assert_preferred

def test_direct():
    assert_preferred({GOOD!r}, {BAD!r}, prompt="What is the capital of France?")

@pytest.mark.judge_suite
def test_suite():
    assert_preferred({GOOD!r}, {BAD!r}, prompt="Capital of France?")

def test_plain():
    pass
"""


def test_an_unmarked_test_cannot_use_the_judge_under_not_judge(
    pytester: pytest.Pytester, good_wins: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(UNMARKED)
    result = pytester.runpytest(*judge_args, "-m", "not judge")
    result.assert_outcomes(passed=1, errors=1, deselected=1)  # judge_suite implies judge
    out = result.stdout.str()
    assert "test_direct uses the run's judge but is not marked `judge`" in out
    assert "@pytest.mark.judge" in out and "Traceback" not in out
    assert good_wins.request_count == 0  # the judge was never asked
    result = pytester.runpytest(*judge_args)  # no -m: it runs and is judged as before
    result.assert_outcomes(passed=3)
    assert good_wins.request_count > 0


OWN_JUDGE = f"""
import pytest
from pytest_rubric_judge import Judge, JudgmentFailed, assert_preferred
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

@pytest.fixture(scope="module")
def own():
    with FakeJudge(ByResponsePolicy("GOOD")) as fake, Judge(fake.url, fake.model) as judge:
        yield judge

def test_the_judge_itself(own):
    assert_preferred({GOOD!r}, {BAD!r}, prompt="q1", judge=own)
    with pytest.raises(JudgmentFailed):
        assert_preferred({BAD!r}, {GOOD!r}, prompt="q2", judge=own)

@pytest.mark.judge
def test_marked(own):
    assert_preferred({GOOD!r}, {BAD!r}, prompt="q3", judge=own)
"""


def test_assertions_with_a_judge_of_their_own_stay_out_of_the_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(OWN_JUDGE)
    report = pytester.path / "run.json"
    result = pytester.runpytest("-rA", f"--judge-report={report}")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    summary = out.split("= rubric judge =", 1)[1].split("short test summary", 1)[0]
    assert "test_the_judge_itself" not in summary and "CAUGHT" not in summary
    assert (
        "PASS test_assertions_with_a_judge_of_their_own_stay_out_of_the_run.py::test_marked"
        in summary
    )
    assert "1 judged assertion, 0 judge errors;" in summary
    # the test's own section still shows both of its assertions
    section = out.split("test_the_judge_itself", 1)[1]
    assert "assert_preferred passed" in section and "FAILED (caught by the test)" in section
    data = json.loads(report.read_text())
    assert [r["nodeid"].split("::")[1] for r in data["judgements"]] == ["test_marked"]


def test_judgments_carry_their_tests_collection_index(
    pytester: pytest.Pytester, good_wins: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        from pytest_rubric_judge import assert_preferred

        @pytest.mark.parametrize("n", range(4))
        def test_each(judge, n):
            assert_preferred({GOOD!r}, {BAD!r}, prompt=f"question {{n}}?")
        """
    )
    report = pytester.path / "run.json"
    result = pytester.runpytest(*judge_args, "-n", "2", f"--judge-report={report}")
    result.assert_outcomes(passed=4)
    data = json.loads(report.read_text())
    assert [r["index"] for r in data["judgements"]] == [0, 1, 2, 3]
