"""The pytest plugin end to end: real pytest runs (pytester) against a real fake-judge server."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest

from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge, FixedPolicy

pytest_plugins = ["pytester"]

GOOD = "Paris is the capital of France. GOOD"
BAD = "I think it is Lyon."

PREFERRED_TEST = f"""
from pytest_rubric_judge import assert_preferred, assert_not_worse

def test_new_is_better(judge):
    assert_preferred({GOOD!r}, {BAD!r}, prompt="What is the capital of France?")
"""


@pytest.fixture
def good_wins(fake_judge: FakeJudge) -> FakeJudge:
    fake_judge.policy = ByResponsePolicy("GOOD")
    return fake_judge


def test_pass_shows_summary_and_report_section(
    pytester: pytest.Pytester, good_wins: FakeJudge, judge_args: list[str], xdist_args: list[str]
) -> None:
    # Runs four ways (no -n, -n 0, -n 2, -p no:xdist): the same section and summary in each.
    pytester.makepyfile(PREFERRED_TEST)
    result = pytester.runpytest(*judge_args, *xdist_args, "-rA")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    # report section with the criterion table
    assert "rubric judge" in out
    result.stdout.fnmatch_lines(
        [
            "*assert_preferred passed: new preferred (B>A), consistent in both orders*",
            "*criterion*weight*baseline*new*justification*",
            "*weighted*1.00*",
        ]
    )
    # terminal summary: one line per judged test and totals
    result.stdout.fnmatch_lines(
        [
            "*= rubric judge =*",
            "PASS test_pass_shows_summary_and_report_section.py::test_new_is_better: new preferred (B>A), consistent, margin new-baseline +*",
            "1 judged assertion, 0 judge errors; 3 judge requests*0 cache hits*tokens",
        ]
    )
    assert good_wins.request_count == 3  # one rubric, two passes


def test_fail_message_has_criterion_table(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    pytester.makepyfile(
        f"""
        from pytest_rubric_judge import assert_preferred, JudgmentFailed

        def test_worse(judge):
            assert_preferred({BAD!r}, {GOOD!r}, prompt="What is the capital of France?")
        """
    )
    result = pytester.runpytest(*judge_args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*JudgmentFailed: the judge did not prefer new over baseline: A>B*",
            "*baseline preferred (A>B), consistent in both orders; margin new - baseline = -*",
            "*criterion*weight*baseline*new*",
            "*FAIL test_fail_message_has_criterion_table.py::test_worse: baseline preferred*",
        ]
    )


def test_position_flip_is_not_a_decision(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    # A judge that always prefers whatever sits in slot A.
    fake_judge.policy = FixedPolicy("A>B", 5, 2)
    pytester.makepyfile(
        """
        from pytest_rubric_judge import assert_preferred, assert_not_worse

        def test_preferred(judge):
            assert_preferred("new answer", "old answer", prompt="q")

        def test_not_worse(judge):
            v = assert_not_worse("new answer", "old answer", prompt="q")
            assert not v.consistent and v.preference == "A=B"
        """
    )
    result = pytester.runpytest(*judge_args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the judge did not decide: its verdict flipped with the order of the responses "
            "(forward A>B, reversed B>A)*",
            "*position flip*",
            "*INCONSISTENT*",
        ]
    )


def test_unparseable_judge_is_an_error_not_a_failure(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.script("criteria: [broken", "still not yaml: [")
    pytester.makepyfile(PREFERRED_TEST)
    result = pytester.runpytest(*judge_args)
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "JudgeOutputError: the judge's answer for the rubric for prompt" in out
    assert "after one repair request" in out
    assert "ERROR test_unparseable_judge_is_an_error_not_a_failure.py::test_new_is_better" in out
    # the repair request carried the parse error back to the judge
    repair = fake_judge.requests[1].body["messages"]
    assert repair[-1]["role"] == "user" and "could not be used" in repair[-1]["content"]
    assert result.ret == 1


def test_no_judge_configured_errors_with_instructions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PREFERRED_TEST)
    result = pytester.runpytest(f"--judge-cache-dir={pytester.path / 'cache'}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*JudgeNotConfiguredError: no judge configured and no cached answer*see the rubric "
            "judge summary*",
            "no judge configured: point the plugin at*--judge-url*vllm serve*",
        ]
    )


def test_second_run_makes_zero_requests(
    pytester: pytest.Pytester, good_wins: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(PREFERRED_TEST)
    pytester.runpytest(*judge_args).assert_outcomes(passed=1)
    first = good_wins.request_count
    assert first == 3
    result = pytester.runpytest(*judge_args)
    result.assert_outcomes(passed=1)
    assert good_wins.request_count == first
    result.stdout.fnmatch_lines(["*consistent, margin*, cached", "*0 judge requests*3 cache hits*"])


def test_replay_mode_uses_no_network_and_misses_are_errors(
    pytester: pytest.Pytester, good_wins: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(PREFERRED_TEST)
    pytester.runpytest(*judge_args).assert_outcomes(passed=1)
    recorded = good_wins.request_count
    cache_arg = next(a for a in judge_args if a.startswith("--judge-cache-dir"))
    replay = [cache_arg, f"--judge-model={good_wins.model}", "--judge-cache=replay"]
    # no URL at all: everything comes from the cache
    pytester.runpytest(*replay).assert_outcomes(passed=1)
    # a new comparison is a miss: an error, and the server is never asked
    pytester.makepyfile(
        test_new="""
        from pytest_rubric_judge import assert_preferred

        def test_other(judge):
            assert_preferred("a GOOD answer", "another", prompt="a prompt never judged")
        """
    )
    result = pytester.runpytest(*replay, f"--judge-url={good_wins.url}")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*CacheMissError: replay mode has no cached judge answer*"])
    assert good_wins.request_count == recorded


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "n2"])
def test_junitxml_carries_verdict_properties(
    pytester: pytest.Pytester, good_wins: FakeJudge, judge_args: list[str], workers: list[str]
) -> None:
    pytester.makepyfile(PREFERRED_TEST)
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest(*judge_args, *workers, f"--junitxml={xml}")
    result.assert_outcomes(passed=1)
    assert "PytestWarning" not in result.stdout.str()
    props = {p.get("name"): p.get("value") for p in ET.parse(xml).getroot().iter("property")}
    assert props["judge_preference"] == "B>A"
    assert props["judge_consistent"] == "True"
    assert float(props["judge_weighted_new"]) > float(props["judge_weighted_baseline"])
    assert props["judge_criterion_accuracy"].startswith("weight=0.500 baseline=")
    assert props["judge_passed"] == "True"


def test_hooks_make_judge_and_verdict(
    pytester: pytest.Pytester, good_wins: FakeJudge, tmp_path: os.PathLike[str]
) -> None:
    pytester.makeconftest(
        f"""
        from pytest_rubric_judge import Judge

        SEEN = []

        def pytest_rubric_judge_make_judge(config):
            return Judge({good_wins.url!r}, {good_wins.model!r}, cache_dir=None)

        def pytest_rubric_judge_verdict(item, verdict):
            SEEN.append((item.name, verdict.preference))

        def pytest_sessionfinish(session):
            print("VERDICTS", SEEN)
        """
    )
    pytester.makepyfile(PREFERRED_TEST)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=1)
    assert "VERDICTS [('test_new_is_better', 'B>A')]" in result.stdout.str()


def test_judge_marker_deselects(pytester: pytest.Pytester, judge_args: list[str]) -> None:
    pytester.makepyfile(
        PREFERRED_TEST
        + """
def test_plain():
    pass
"""
    )
    result = pytester.runpytest(*judge_args, "-m", "not judge")
    result.assert_outcomes(passed=1, deselected=1)


def test_bad_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--judge-cache=sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*'sometimes' is not a cache mode; choose one of rw, replay, refresh, off*"]
    )
    pytester.makeini("[pytest]\njudge_timeout = -3\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini key judge_timeout: '-3' must be greater than 0*"])


def test_api_key_is_sent_but_never_stored_or_printed(
    pytester: pytest.Pytester,
    good_wins: FakeJudge,
    judge_args: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "sk-test-SENTINEL-0123456789"
    monkeypatch.setenv("RUBRIC_JUDGE_API_KEY", secret)
    pytester.makepyfile(
        PREFERRED_TEST
        + """
def test_fails(judge):
    assert_preferred("plain", "GOOD one", prompt="What is the capital of France?")
"""
    )
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest(*judge_args, "-rA", f"--junitxml={xml}")
    result.assert_outcomes(passed=1, failed=1)
    assert good_wins.requests[0].headers["authorization"] == f"Bearer {secret}"
    assert secret not in result.stdout.str() + result.stderr.str()
    assert secret not in xml.read_text()
    cache_dir = next(a for a in judge_args if a.startswith("--judge-cache-dir")).split("=", 1)[1]
    for root, _, files in os.walk(cache_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                assert secret.encode() not in handle.read()
