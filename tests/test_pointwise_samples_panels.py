"""Pointwise grading, repeated samples and panels of judges, against real fake-judge servers."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_rubric_judge import (
    GradeFailed,
    Judge,
    JudgePanel,
    JudgmentFailed,
    assert_meets_rubric,
    assert_not_worse,
    assert_preferred,
)
from pytest_rubric_judge.models import Label
from pytest_rubric_judge.prompts import ParsedRequest
from pytest_rubric_judge.scoring import combine_panel, pairwise_agreement
from pytest_rubric_judge.stats import fleiss_kappa
from pytest_rubric_judge.testing import (
    ByResponsePolicy,
    FakeJudge,
    FixedPolicy,
    pass_yaml_answer,
    rubric_yaml_answer,
)

CRITERIA = [
    {"name": "accuracy", "description": "facts", "weight": 0.6},
    {"name": "clarity", "description": "writing", "weight": 0.4},
]


def judge_for(server: FakeJudge, cache: Path | None = None, **kwargs: object) -> Judge:
    return Judge(server.url, server.model, cache_dir=cache, max_retries=0, timeout=10, **kwargs)  # type: ignore[arg-type]


# -- pointwise ----------------------------------------------------------------------


def test_grade_shares_the_rubric_with_pairwise_judging(
    fake_judge: FakeJudge, tmp_path: Path
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD", high=5, low=2)
    with judge_for(fake_judge, tmp_path) as judge:
        judge.compare("Why is the sky blue?", "GOOD: Rayleigh scattering.", "It is.")
        grade = judge.grade("Why is the sky blue?", "GOOD: Rayleigh scattering.")
    tasks = [r.parsed.task for r in fake_judge.requests if r.parsed]
    assert tasks == ["rubric", "pass", "pass", "grade"]  # one rubric for both kinds
    assert grade.score == pytest.approx(1.0)
    assert [s.score for s in grade.scores] == [5, 5, 5]
    assert grade.rubric.names == ("accuracy", "completeness", "clarity")
    # cached like everything else
    with judge_for(fake_judge, tmp_path) as judge:
        again = judge.grade("Why is the sky blue?", "GOOD: Rayleigh scattering.")
    assert again.cached and fake_judge.request_count == 4


def test_assert_meets_rubric_min_score_and_min_criteria(fake_judge: FakeJudge) -> None:
    fake_judge.policy = FixedPolicy("A=B", {"accuracy": 5, "clarity": 2}, 1, rubric=CRITERIA)
    with judge_for(fake_judge) as judge:
        grade = assert_meets_rubric("an answer", prompt="q", min_score=0.6, judge=judge)
        assert grade.score == pytest.approx(0.6 * 1.0 + 0.4 * 0.25)
        with pytest.raises(GradeFailed) as info:
            assert_meets_rubric("an answer", prompt="q", min_criteria={"clarity": 4}, judge=judge)
        message = str(info.value)
        assert "clarity scored 2, below its minimum 4" in message
        assert "criterion" in message and "accuracy" in message and "0.700" in message
        with pytest.raises(GradeFailed, match=r"below min_score 0\.900"):
            assert_meets_rubric("an answer", prompt="q", min_score=0.9, judge=judge)
        with pytest.raises(ValueError, match="rubric lacks"):
            assert_meets_rubric("an answer", prompt="q", min_criteria={"tone": 3}, judge=judge)


def test_penalties_subtract_and_the_score_stays_in_range(fake_judge: FakeJudge) -> None:
    criteria = [
        {"name": "accuracy", "weight": 2.0},
        {"name": "invents_statistic", "weight": -1.0, "type": "binary"},
    ]
    fake_judge.policy = FixedPolicy("A=B", {"accuracy": 3, "invents_statistic": True}, 1)
    with judge_for(fake_judge) as judge:
        penalised = judge.grade("q", "answer", criteria=criteria)
        # positive weights normalise to 1, the penalty by the same factor: 0.5 - 0.5
        assert penalised.score == 0.0
        fake_judge.policy = FixedPolicy("A=B", {"accuracy": 5, "invents_statistic": False}, 1)
        clean = judge.grade("q", "answer", criteria=criteria)
        assert clean.score == 1.0
        fake_judge.policy = FixedPolicy("A=B", {"accuracy": 1, "invents_statistic": True}, 1)
        assert judge.grade("q", "other answer", criteria=criteria).score == 0.0  # clipped


def test_pointwise_in_pytest_report_and_junit(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD", high=5, low=2)
    pytester.makepyfile(
        """
        from pytest_rubric_judge import assert_meets_rubric

        def test_good(judge):
            assert_meets_rubric("GOOD answer", prompt="What is 2+2?")

        def test_bad(judge):
            assert_meets_rubric("weak answer", prompt="What is 2+2?", min_score=0.5)
        """
    )
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest(*judge_args, "-rA", f"--junitxml={xml}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*GradeFailed: the response does not meet the rubric: weighted score 0.250 is below min_score 0.500*",
            "*assert_meets_rubric passed: weighted score 1.000*",
            "*criterion*weight*score*justification*",
            "PASS *test_good: weighted score 1.000",
            "FAIL *test_bad: weighted score 0.250",
        ]
    )
    assert 'name="judge_score" value="1.0"' in xml.read_text()


# -- repeated samples -----------------------------------------------------------------


class NoisyPolicy:
    """A noisy judge: for each slot order, a fixed repeating sequence of slot labels.

    Keyed on the response in slot A, so the answers do not depend on which of the
    concurrent requests arrives first.
    """

    def __init__(self, labels_by_slot_a: dict[str, list[str]]) -> None:
        self._labels = {key: itertools.cycle(value) for key, value in labels_by_slot_a.items()}
        self._lock = threading.Lock()

    def __call__(self, request: ParsedRequest) -> str:
        if request.task == "rubric":
            return rubric_yaml_answer(CRITERIA)
        with self._lock:
            label = next(self._labels[request.response_a or ""])
        high, low = (4, 2) if label == "A>B" else (2, 4) if label == "B>A" else (3, 3)
        return pass_yaml_answer({"accuracy": (high, low), "clarity": (high, low)}, label)


@pytest.fixture
def noisy(fake_judge: FakeJudge) -> Iterator[FakeJudge]:
    yield fake_judge


def test_samples_majority_vote_split_and_cache_per_index(
    fake_judge: FakeJudge, tmp_path: Path
) -> None:
    # Every comparison's passes see "B>A" (slot B) except one in five: a noisy judge
    # that prefers the candidate in slot terms... so map labels by slot below.
    wins = ByResponsePolicy("GOOD")
    calls = itertools.count()

    def noisy(request: ParsedRequest) -> str:
        # the 3rd request of each sample run answers against the marker
        if request.task == "pass" and next(calls) % 10 == 3:
            return FixedPolicy("A>B" if "GOOD" in (request.response_b or "") else "B>A", 4, 2)(
                request
            )
        return wins(request)

    fake_judge.policy = noisy
    with judge_for(fake_judge, tmp_path, seed=11) as judge:
        verdict = judge.compare("q", "weak", "GOOD one", samples=5)
    assert len(verdict.samples) == 5
    assert verdict.votes is not None and sum(verdict.votes.values()) == 5
    assert verdict.preference == "B>A"
    assert verdict.votes["B>A"] == 4 and verdict.vote_split == "4-1"
    assert verdict.consistent
    seeds = sorted(
        {r.body.get("seed") for r in fake_judge.requests if r.parsed and r.parsed.task == "pass"}
    )
    assert seeds == [11, 12, 13, 14, 15]  # one seed per sample, sample 0 keeps the configured one
    requests = fake_judge.request_count
    # cached per sample index: asking again costs nothing; more samples cost only the new ones
    with judge_for(fake_judge, tmp_path, seed=11) as judge:
        again = judge.compare("q", "weak", "GOOD one", samples=5)
        assert again.cached and fake_judge.request_count == requests
        judge.compare("q", "weak", "GOOD one", samples=6)
    assert fake_judge.request_count == requests + 2


def test_samples_without_majority_are_a_tie(fake_judge: FakeJudge) -> None:
    # Each order says "y wins" once and "x wins" once. However the samples pair up, either
    # two consistent samples disagree (no majority: a tie) or both flip (a tie, undecided).
    fake_judge.policy = NoisyPolicy({"x": ["B>A", "A>B"], "y": ["A>B", "B>A"]})
    with judge_for(fake_judge) as judge:
        verdict = judge.compare("q", "x", "y", criteria=CRITERIA, samples=2)
    assert verdict.preference == "A=B"
    assert not verdict.consistent


def test_samples_option_in_pytest(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    pytester.makepyfile(
        """
        from pytest_rubric_judge import assert_preferred

        def test_sampled(judge):
            v = assert_preferred("GOOD new", "old", prompt="q", samples=3)
            assert v.vote_split == "3-0"
        """
    )
    result = pytester.runpytest(*judge_args, "-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*samples: 3-0 for B>A (B>A 3)*", "PASS *test_sampled*votes 3-0*"])
    assert fake_judge.request_count == 1 + 6


# -- panels ---------------------------------------------------------------------------


@pytest.fixture
def three_judges() -> Iterator[list[FakeJudge]]:
    servers = [FakeJudge(model=name).start() for name in ("judge-a", "judge-b", "judge-c")]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_panel_majority_shared_rubric_and_agreement(three_judges: list[FakeJudge]) -> None:
    good, also_good, biased = three_judges
    good.policy = ByResponsePolicy("GOOD")
    also_good.policy = ByResponsePolicy("GOOD")
    biased.policy = FixedPolicy("A>B", 5, 1)  # prefers slot A: flips with the order
    judges = [judge_for(s) for s in three_judges]
    with JudgePanel(judges, strategy="majority") as panel:
        verdict = panel.compare("q", "old", "GOOD new")
        assert verdict.preference == "B>A"
        assert verdict.consistent  # two of three judges agree in both orders
        assert [m.judge_model for m in verdict.panel] == ["judge-a", "judge-b", "judge-c"]
        assert verdict.panel[2].preference == "A=B" and not verdict.panel[2].consistent
        assert verdict.panel_agreement == pytest.approx(1 / 3)
        assert verdict.weighted_b == pytest.approx(sum(m.weighted_b for m in verdict.panel) / 3)
        assert_preferred("GOOD new", "old", prompt="q", judge=panel)
    # only the rubric judge wrote a rubric; all judges scored the same criteria
    assert [r.parsed.task for r in good.requests if r.parsed].count("rubric") == 1
    for server in (also_good, biased):
        assert "rubric" not in [r.parsed.task for r in server.requests if r.parsed]


def test_panel_strategies(three_judges: list[FakeJudge]) -> None:
    for server in three_judges[:2]:
        server.policy = ByResponsePolicy("GOOD")
    three_judges[2].policy = ByResponsePolicy("OLD")
    judges = [judge_for(s) for s in three_judges]
    unanimous = JudgePanel(judges, strategy="unanimous")
    verdict = unanimous.compare("q", "OLD", "GOOD", criteria=CRITERIA)
    assert verdict.preference == "A=B" and not verdict.consistent
    with pytest.raises(JudgmentFailed, match="did not decide"):
        assert_preferred("GOOD", "OLD", prompt="q", judge=unanimous, criteria=CRITERIA)
    assert_not_worse("GOOD", "OLD", prompt="q", judge=unanimous, criteria=CRITERIA)
    mean = JudgePanel(judges, strategy="mean_margin")
    assert mean.compare("q", "OLD", "GOOD", criteria=CRITERIA).preference == "B>A"
    with pytest.raises(ValueError, match="unknown panel strategy"):
        JudgePanel(judges, strategy="loudest")  # type: ignore[arg-type]
    unanimous.close()


def test_panel_requests_run_concurrently(three_judges: list[FakeJudge]) -> None:
    for server in three_judges:
        server.latency = 0.3
        server.policy = ByResponsePolicy("GOOD")
    import time

    with JudgePanel([judge_for(s) for s in three_judges]) as panel:
        started = time.perf_counter()
        panel.compare("q", "x", "GOOD", criteria=CRITERIA)
        elapsed = time.perf_counter() - started
    # 3 judges x 2 passes at 0.3 s each would take 1.8 s one after another
    assert elapsed < 1.0


def test_fleiss_kappa_against_hand_computation() -> None:
    # Three raters, four subjects; categories A, B, tie.
    ratings: list[list[Label]] = [
        ["A>B", "A>B", "A>B"],
        ["B>A", "B>A", "A=B"],
        ["A=B", "A=B (bothbad)", "A=B"],
        ["B>A", "A>B", "A=B"],
    ]
    # P_i: 1, 1/3, 1, 0 -> mean 7/12; shares A 4/12, B 3/12, tie 5/12 -> P_e = 50/144
    expected = (7 / 12 - 50 / 144) / (1 - 50 / 144)
    assert fleiss_kappa(ratings) == pytest.approx(expected)
    assert fleiss_kappa([["A>B", "A>B", "A>B"]]) is None
    assert pairwise_agreement(["A>B", "A>B", "B>A"]) == pytest.approx(1 / 3)


def test_combine_panel_rejects_bad_strategy() -> None:
    with pytest.raises(ValueError):
        combine_panel([], "loudest")  # type: ignore[arg-type]


def test_panel_grades_are_the_judges_mean(three_judges: list[FakeJudge]) -> None:
    scores = {"judge-a": 5, "judge-b": 3, "judge-c": 1}
    for server in three_judges:
        server.policy = FixedPolicy("A=B", scores[server.model], 1, rubric=CRITERIA)
    with JudgePanel([judge_for(s) for s in three_judges]) as panel:
        grade = panel.grade("q", "an answer")
    assert grade.combined == "judges" and len(grade.samples) == 3
    assert grade.score == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert [s.score for s in grade.scores] == [3, 3]  # per-criterion median
    assert grade.judge_model == "judge-a,judge-b,judge-c"
