"""Baselines: missing, recorded, replaced only when beaten, untouched by failing runs."""

from __future__ import annotations

import json
import os
import stat
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


# -- same-named tests in different classes ----------------------------------------------------

CLASSES = """
class TestFrench:
    def test_capital(self, judge_baseline):
        judge_baseline.assert_not_worse("Paris. GOOD", prompt="Capital of France?")

class TestItalian:
    def test_capital(self, judge_baseline):
        judge_baseline.assert_not_worse("Rome. GOOD", prompt="Capital of Italy?")
"""


def _folder(pytester: pytest.Pytester) -> Path:
    return pytester.path / "judge_baselines" / "test_classes"


def test_same_named_tests_in_different_classes_have_their_own_baselines(
    pytester: pytest.Pytester, judge_on_good: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(test_classes=CLASSES)
    result = pytester.runpytest(*judge_args, "--judge-update-baselines")
    result.assert_outcomes(passed=2)
    folder = _folder(pytester)
    assert sorted(p.name for p in folder.iterdir()) == [
        "TestFrench.test_capital.txt",
        "TestItalian.test_capital.txt",
    ]
    assert (folder / "TestFrench.test_capital.txt").read_text() == "Paris. GOOD"
    assert (folder / "TestItalian.test_capital.txt").read_text() == "Rome. GOOD"
    # The next run reads each class's own baseline (ties, so both hold).
    pytester.runpytest(*judge_args).assert_outcomes(passed=2)


def test_a_baseline_under_the_old_name_is_read_then_moved(
    pytester: pytest.Pytester, judge_on_good: FakeJudge, judge_args: list[str]
) -> None:
    """One class test used `test_capital.txt`: read it, write the new name, remove the old."""
    pytester.makepyfile(test_classes=CLASSES.split("class TestItalian")[0])
    old = _folder(pytester) / "test_capital.txt"
    write_baseline(old, "Paris is the capital. GOOD")
    # Without --judge-update-baselines the old file is read and nothing is written.
    pytester.runpytest(*judge_args).assert_outcomes(passed=1)
    assert [p.name for p in _folder(pytester).iterdir()] == ["test_capital.txt"]
    result = pytester.runpytest(*judge_args, "--judge-update-baselines")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*baselines: moved test_capital.txt to TestFrench.test_capital.txt*"]
    )
    assert [p.name for p in _folder(pytester).iterdir()] == ["TestFrench.test_capital.txt"]
    assert read_baseline(_folder(pytester) / "TestFrench.test_capital.txt") == (
        "Paris is the capital. GOOD"
    )


def test_an_old_baseline_shared_by_two_classes_is_copied_and_kept(
    pytester: pytest.Pytester, judge_on_good: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(test_classes=CLASSES)
    old = _folder(pytester) / "test_capital.txt"
    write_baseline(old, "A capital. GOOD")
    result = pytester.runpytest(*judge_args, "--judge-update-baselines")
    result.assert_outcomes(passed=2)
    names = sorted(p.name for p in _folder(pytester).iterdir())
    assert names == [
        "TestFrench.test_capital.txt",
        "TestItalian.test_capital.txt",
        "test_capital.txt",
    ]
    result.stdout.fnmatch_lines(["*baselines: kept test_capital.txt*"])


def test_an_old_baseline_is_kept_when_the_other_class_was_not_collected(
    pytester: pytest.Pytester, judge_on_good: FakeJudge, judge_args: list[str]
) -> None:
    """Selecting one class by node id: the other class may still read the old file."""
    pytester.makepyfile(test_classes=CLASSES)
    old = _folder(pytester) / "test_capital.txt"
    write_baseline(old, "A capital. GOOD")
    result = pytester.runpytest(
        *judge_args, "--judge-update-baselines", "test_classes.py::TestFrench"
    )
    result.assert_outcomes(passed=1)
    assert old.exists()
    assert (_folder(pytester) / "TestFrench.test_capital.txt").exists()


# -- the end of the run cannot crash ----------------------------------------------------------

LONE_SURROGATE = """
def test_records(judge_baseline):
    judge_baseline.assert_not_worse("caf\\ud800 GOOD", prompt="A word?")
"""

FULL_DISK = """
import errno
import os

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    os.fsync = no_space
"""


@pytest.mark.parametrize("fault", ["lone_surrogate", "full_disk"])
def test_a_baseline_that_cannot_be_written_is_one_line_and_the_reports_are_written(
    pytester: pytest.Pytester, judge_on_good: FakeJudge, judge_args: list[str], fault: str
) -> None:
    if fault == "lone_surrogate":
        pytester.makepyfile(test_suite=LONE_SURROGATE)
    else:
        pytester.makepyfile(test_suite=LONE_SURROGATE.replace("\\ud800", "e"))
        pytester.makeconftest(FULL_DISK)
    report, summary = pytester.path / "run.json", pytester.path / "run.md"
    result = pytester.runpytest(
        *judge_args,
        "--judge-update-baselines",
        f"--judge-report={report}",
        f"--judge-report-md={summary}",
    )
    out = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out
    lines = [line for line in out.splitlines() if "baselines: NOT written" in line]
    assert len(lines) == 1, out
    assert "test_records.txt" in lines[0]
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR  # what was asked for was not done
    if fault == "full_disk":
        assert "No space left on device" in lines[0]
    else:
        assert "not valid UTF-8" in lines[0]
    assert report.exists() and summary.exists()  # the reports were still written
    assert json.loads(report.read_text())["passed"] is False
    baseline = pytester.path / "judge_baselines" / "test_suite" / "test_records.txt"
    assert not baseline.exists()
    assert not list(baseline.parent.glob("*.tmp")) if baseline.parent.exists() else True


# -- file modes -------------------------------------------------------------------------------


def test_a_rewritten_baseline_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "b.txt"
    write_baseline(path, "first")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # like any new file
    for mode in (0o644, 0o664, 0o600):
        path.chmod(mode)
        write_baseline(path, f"mode {mode:o}")
        assert stat.S_IMODE(path.stat().st_mode) == mode
        assert read_baseline(path) == f"mode {mode:o}"
