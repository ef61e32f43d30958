"""Sequential judging to a confidence, and flakiness, against real fake-judge servers.

The judge is `ProbabilisticPolicy`: it prefers the response marked NEW with a known
probability, drawn per request seed, so each sample (seed base + i) is its own draw and
both orders of a sample agree. What the plugin decides is checked against the decision
function run on the policy's own draws.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_rubric_judge import (
    GradeFailed,
    Judge,
    JudgePanel,
    JudgeUndecided,
    JudgmentFailed,
    assert_meets_rubric,
    assert_not_worse,
    assert_preferred,
)
from pytest_rubric_judge.sequential import Decision, SequentialTest
from pytest_rubric_judge.testing import FakeJudge, ParsedRequest, ProbabilisticPolicy

pytest_plugins = ["pytester"]

NEW, OLD = "NEW answer, detailed", "old answer"


def judge_for(server: FakeJudge, cache: Path | None = None) -> Judge:
    return Judge(server.url, server.model, cache_dir=cache, max_retries=0, timeout=10)


def expected(policy: ProbabilisticPolicy, drawn: int) -> Decision:
    """The decision on the policy's own draws (no --judge-seed: sample 0 sends no seed),
    `drawn` samples having been drawn (whole batches)."""
    test = SequentialTest()
    seeds = [None, *range(1, test.max_samples)]
    decision = test.decide([policy.wins(seed) for seed in seeds])
    assert decision is not None
    return replace(decision, drawn=drawn)


def pass_seeds(server: FakeJudge) -> list[object]:
    return [r.body.get("seed") for r in server.requests if r.parsed and r.parsed.task == "pass"]


# -- the assertions ------------------------------------------------------------------


def test_a_judge_that_always_prefers_new_passes_after_few_samples(fake_judge: FakeJudge) -> None:
    fake_judge.policy = ProbabilisticPolicy(1.0)
    with judge_for(fake_judge) as judge:
        verdict = assert_preferred(NEW, OLD, prompt="q", judge=judge, confidence=0.95)
    decision = verdict.sequential
    assert decision is not None
    assert (decision.outcome, decision.samples, decision.wins, decision.drawn) == ("pass", 7, 7, 8)
    assert decision.low > 0.5 and decision.high == 1.0
    assert verdict.preference == "B>A" and verdict.vote_split == "7-0"
    assert len(verdict.samples) == 7
    # two batches of four samples, each in both orders, and one rubric: nothing asked twice
    assert fake_judge.request_count == 1 + 2 * 8
    seeds = pass_seeds(fake_judge)
    assert sorted(seeds, key=str) == sorted(
        [None, None, *[i for i in range(1, 8) for _ in "ab"]], key=str
    )


def test_a_coin_flip_judge_ends_undecided_at_max_samples(fake_judge: FakeJudge) -> None:
    policy = ProbabilisticPolicy(0.5, seed=1)
    fake_judge.policy = policy
    with judge_for(fake_judge) as judge, pytest.raises(JudgeUndecided) as info:
        assert_preferred(NEW, OLD, prompt="q", judge=judge, confidence=0.95)
    error = info.value
    assert isinstance(error, AssertionError) and error.verdict is not None
    assert error.decision == expected(policy, drawn=16)
    assert error.decision is not None and error.decision.outcome == "undecided"
    assert error.decision.samples == 16 and error.decision.low < 0.5 < error.decision.high
    message = str(error)
    assert message.startswith("undecided at 95% confidence after max_samples=16 samples")
    assert "sequential test undecided after 16 of at most 16 samples" in message
    assert fake_judge.request_count == 1 + 2 * 16


def test_a_biased_judge_fails(fake_judge: FakeJudge) -> None:
    policy = ProbabilisticPolicy(0.1, seed=1)
    fake_judge.policy = policy
    with judge_for(fake_judge) as judge, pytest.raises(JudgmentFailed) as info:
        assert_preferred(NEW, OLD, prompt="q", judge=judge, confidence=0.95)
    decision = info.value.verdict.sequential
    assert decision == expected(policy, drawn=12) and decision is not None
    assert (decision.outcome, decision.samples, decision.wins) == ("fail", 10, 1)
    assert decision.high < 0.5
    assert "at 95% confidence the samples say no" in str(info.value)


def test_not_worse_and_meets_rubric_decide_on_their_own_wins(fake_judge: FakeJudge) -> None:
    fake_judge.policy = ProbabilisticPolicy(0.0)  # always prefers the other response
    with judge_for(fake_judge) as judge:
        # the judge never prefers NEW: as the candidate it is worse on every sample
        with pytest.raises(JudgmentFailed):
            assert_not_worse(NEW, OLD, prompt="q", judge=judge, confidence=0.9)
        verdict = assert_not_worse(OLD, NEW, prompt="q", judge=judge, confidence=0.9)
        assert verdict.sequential is not None and verdict.sequential.outcome == "pass"
        with pytest.raises(GradeFailed) as info:
            assert_meets_rubric(NEW, prompt="q", min_score=0.5, judge=judge, confidence=0.9)
        decision = info.value.grade.sequential
        assert decision is not None and decision.outcome == "fail" and decision.wins == 0
    fake_judge.policy = ProbabilisticPolicy(1.0)
    with judge_for(fake_judge) as judge:
        grade = assert_meets_rubric(NEW, prompt="q", min_score=0.5, judge=judge, confidence=0.9)
    assert grade.sequential is not None and grade.sequential.outcome == "pass"
    assert len(grade.samples) == grade.sequential.samples == SequentialTest(0.9).min_samples()


def test_max_samples_and_argument_mistakes(fake_judge: FakeJudge) -> None:
    fake_judge.policy = ProbabilisticPolicy(0.5, seed=1)
    with judge_for(fake_judge) as judge:
        with pytest.raises(JudgeUndecided) as info:
            assert_preferred(NEW, OLD, prompt="q", judge=judge, confidence=0.9, max_samples=6)
        assert info.value.decision is not None and info.value.decision.samples == 6
        assert fake_judge.request_count == 1 + 2 * 6  # a last batch of two, not four
        with pytest.raises(ValueError, match="not both"):
            assert_preferred(NEW, OLD, prompt="q", judge=judge, confidence=0.9, samples=3)
        with pytest.raises(ValueError, match="give confidence= too"):
            assert_preferred(NEW, OLD, prompt="q", judge=judge, max_samples=3)
        with pytest.raises(ValueError, match=r"above 0\.5 and below 1"):
            assert_preferred(NEW, OLD, prompt="q", judge=judge, confidence=95)


def test_a_rerun_asks_nothing(fake_judge: FakeJudge, tmp_path: Path) -> None:
    fake_judge.policy = ProbabilisticPolicy(0.5, seed=1)
    with judge_for(fake_judge, tmp_path) as judge, pytest.raises(JudgeUndecided) as first:
        assert_preferred(NEW, OLD, prompt="q", judge=judge, confidence=0.95)
    asked = fake_judge.request_count
    with judge_for(fake_judge, tmp_path) as judge, pytest.raises(JudgeUndecided) as second:
        assert_preferred(NEW, OLD, prompt="q", judge=judge, confidence=0.95)
    assert fake_judge.request_count == asked  # every sample came from the cache
    assert second.value.decision == first.value.decision
    assert second.value.verdict is not None and second.value.verdict.cached


def test_cache_off_asks_each_sample_once(fake_judge: FakeJudge) -> None:
    fake_judge.policy = ProbabilisticPolicy(0.9, seed=1)  # passes after 13 samples
    with judge_for(fake_judge) as judge:
        verdict = assert_preferred(NEW, OLD, prompt="q", judge=judge, confidence=0.95)
    assert verdict.sequential is not None and verdict.sequential.samples == 13
    seeds = pass_seeds(fake_judge)
    assert len(seeds) == 2 * 16 and len(set(map(str, seeds))) == 16  # each sample, both orders


def test_a_panel_judges_each_sample_as_a_panel() -> None:
    servers = [FakeJudge(ProbabilisticPolicy(1.0), model=f"judge-{i}").start() for i in range(2)]
    try:
        panel = JudgePanel([judge_for(server) for server in servers])
        with panel:
            verdict = assert_preferred(NEW, OLD, prompt="q", judge=panel, confidence=0.95)
        assert verdict.sequential is not None and verdict.sequential.samples == 7
        assert all(sample.panel for sample in verdict.samples)
        assert [s.request_count for s in servers] == [1 + 16, 16]  # one rubric, from judge 0
    finally:
        for server in servers:
            server.stop()


# -- in pytest -----------------------------------------------------------------------


class ByPrompt:
    """A policy per prompt (the rubric request too), for suites of differently biased tests."""

    def __init__(self, policies: dict[str, ProbabilisticPolicy]) -> None:
        self.policies = policies

    def __call__(self, request: ParsedRequest) -> str:
        return self.policies[request.prompt](request)


SUITE = f"""
from pytest_rubric_judge import assert_preferred

def test_always(judge):
    assert_preferred({NEW!r}, {OLD!r}, prompt="always")

def test_coin(judge):
    assert_preferred({NEW!r}, {OLD!r}, prompt="coin")

def test_biased(judge):
    assert_preferred({NEW!r}, {OLD!r}, prompt="biased")

def test_never(judge):
    assert_preferred({NEW!r}, {OLD!r}, prompt="never")
"""


@pytest.fixture
def mixed_judge(fake_judge: FakeJudge) -> FakeJudge:
    fake_judge.policy = ByPrompt(
        {
            "always": ProbabilisticPolicy(1.0),
            "coin": ProbabilisticPolicy(0.5, seed=1),  # undecided, 7 of 16
            "biased": ProbabilisticPolicy(0.1, seed=1),  # fails, 1 of 10: flaky
            "never": ProbabilisticPolicy(0.0),
        }
    )
    return fake_judge


def test_outcomes_summary_flakiness_and_reports(
    pytester: pytest.Pytester, mixed_judge: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(SUITE)
    xml, report, markdown = (pytester.path / name for name in ("j.xml", "r.json", "r.md"))
    result = pytester.runpytest(
        *judge_args,
        "--judge-confidence=0.95",
        f"--junitxml={xml}",
        f"--judge-report={report}",
        f"--judge-report-md={markdown}",
    )
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "PASS *test_always*held 7-0 in 7 samples, win probability in [[]0.529, 1.000]*",
            "UNDECIDED *test_coin*held 7-9 in 16 samples*",
            "FAIL *test_biased*held 1-9 in 10 samples*",
            "flakiness across samples, 4 sampled assertions: 1 stable pass, 1 stable fail, 2 flaky",
            "FLAKY *test_coin: assert_preferred held in 7 of 16 samples",
            "FLAKY *test_biased: assert_preferred held in 1 of 10 samples",
        ]
    )
    result.stdout.fnmatch_lines(["*sequential test undecided after 16 of at most 16 samples*"])
    assert "FLAKY test_outcomes_summary_flakiness_and_reports.py::test_always" not in (
        result.stdout.str()
    )
    cases = {case.get("name"): case for case in ET.parse(xml).iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["test_coin"].iter("property")}
    assert props["judge_decision"] == "undecided" and props["judge_samples_used"] == "16"
    assert props["judge_sample_wins"] == "7-9" and props["judge_flakiness"] == "flaky"
    assert props["judge_confidence"] == "0.95" and props["judge_win_interval"].startswith("[0.")
    data = json.loads(report.read_text())
    records = {r["nodeid"].rsplit("::", 1)[1]: r for r in data["judgements"]}
    assert {name: r["flakiness"] for name, r in records.items()} == {
        "test_always": "stable_pass",
        "test_coin": "flaky",
        "test_biased": "flaky",
        "test_never": "stable_fail",
    }
    sequential = records["test_coin"]["verdict"]["sequential"]
    assert sequential["outcome"] == "undecided" and sequential["samples"] == 16
    assert (records["test_biased"]["sample_wins"], records["test_biased"]["sample_count"]) == (
        1,
        10,
    )
    text = markdown.read_text()
    assert "| flaky / stable pass / stable fail (assertions with samples) | 2 / 1 / 1 |" in text
    assert "### Flaky assertions (2)" in text and "held in 7 of 16 samples" in text


@pytest.mark.parametrize(
    ("mode", "outcomes"),
    [
        ("fail", {"passed": 1, "failed": 1}),
        ("error", {"passed": 1, "errors": 1}),
        ("skip", {"passed": 1, "skipped": 1}),
    ],
)
def test_judge_undecided_outcomes(
    pytester: pytest.Pytester,
    mixed_judge: FakeJudge,
    judge_args: list[str],
    mode: str,
    outcomes: dict[str, int],
) -> None:
    pytester.makepyfile(SUITE)
    report = pytester.path / "r.json"
    args = ["--judge-confidence=0.95", f"--judge-undecided={mode}", f"--judge-report={report}"]
    result = pytester.runpytest(*judge_args, *args, "-k", "always or coin", "-rA")
    result.assert_outcomes(**outcomes)
    errors = json.loads(report.read_text())["errors"]
    if mode == "error":
        result.stdout.fnmatch_lines(["*JudgeUndecided: undecided at 95% confidence after*"])
        assert [e["kind"] for e in errors] == ["undecided"]
    else:
        assert errors == []
    if mode == "skip":
        result.stdout.fnmatch_lines(
            ["SKIPPED [[]1[]] test_judge_undecided_outcomes.py:*: undecided at 95% confidence*"]
        )
    assert result.ret == (0 if mode == "skip" else 1)


def test_an_undecided_assertion_in_a_suite_counts_toward_the_gates(
    pytester: pytest.Pytester, mixed_judge: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        from pytest_rubric_judge import assert_preferred

        @pytest.mark.judge_suite
        def test_coin(judge):
            assert_preferred({NEW!r}, {OLD!r}, prompt="coin")
        """
    )
    result = pytester.runpytest(*judge_args, "--judge-confidence=0.95")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["UNDECIDED *test_coin*", "judge_suite: 1 judged assertion*"])
    errored = pytester.runpytest(*judge_args, "--judge-confidence=0.95", "--judge-undecided=error")
    errored.assert_outcomes(errors=1)


def test_rerun_in_pytest_asks_nothing(
    pytester: pytest.Pytester, mixed_judge: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(SUITE)
    first = pytester.runpytest(*judge_args, "--judge-confidence=0.95")
    asked = mixed_judge.request_count
    second = pytester.runpytest(*judge_args, "--judge-confidence=0.95")
    assert mixed_judge.request_count == asked
    first.assert_outcomes(passed=1, failed=3)
    second.assert_outcomes(passed=1, failed=3)
    second.stdout.fnmatch_lines(["*0 judge requests*"])


def test_fixed_samples_report_flakiness_too(
    pytester: pytest.Pytester, mixed_judge: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest(*judge_args, "--judge-samples=5", "-k", "coin or always")
    result.stdout.fnmatch_lines(
        [
            "flakiness across samples, 2 sampled assertions: 1 stable pass, 0 stable fail, 1 flaky",
            "FLAKY *test_coin: assert_preferred held in * of 5 samples",
        ]
    )


# -- options ---------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["cli", "env", "ini"])
def test_options_from_cli_env_and_ini(
    pytester: pytest.Pytester,
    mixed_judge: FakeJudge,
    judge_args: list[str],
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    pytester.makepyfile(SUITE)
    values = {"confidence": "0.9", "max_samples": "6", "undecided": "skip"}
    args: list[str] = []
    if source == "cli":
        args = [f"--judge-{key.replace('_', '-')}={value}" for key, value in values.items()]
    elif source == "env":
        for key, value in values.items():
            monkeypatch.setenv(f"RUBRIC_JUDGE_{key.upper()}", value)
    else:
        pytester.makeini(
            "[pytest]\n" + "".join(f"judge_{key} = {value}\n" for key, value in values.items())
        )
    result = pytester.runpytest(*judge_args, *args, "-k", "coin", "-rA")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * undecided at 90% confidence after max_samples=6*"])


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--judge-confidence=95", "must be above 0.5 and below 1"),
        ("--judge-max-samples=0", "must be 1 or more"),
        ("--judge-undecided=ignore", "is not one of fail, error, skip"),
    ],
)
def test_bad_values_are_usage_errors(pytester: pytest.Pytester, flag: str, message: str) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(flag)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_an_assertion_given_samples_keeps_them_under_a_run_confidence(
    pytester: pytest.Pytester, mixed_judge: FakeJudge, judge_args: list[str]
) -> None:
    pytester.makepyfile(
        f"""
        from pytest_rubric_judge import assert_preferred

        def test_fixed(judge):
            verdict = assert_preferred({NEW!r}, {OLD!r}, prompt="always", samples=2)
            assert verdict.sequential is None and len(verdict.samples) == 2

        def test_own_confidence(judge):
            verdict = assert_preferred(
                {NEW!r}, {OLD!r}, prompt="always", confidence=0.6, max_samples=3
            )
            assert verdict.sequential.confidence == 0.6 and verdict.sequential.samples == 2
        """
    )
    result = pytester.runpytest(*judge_args, "--judge-confidence=0.95")
    result.assert_outcomes(passed=2)
