"""Conversations and trajectories through every way of judging: samples, panels,
confidence, grading with context, and the cache; as with plain text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_rubric_judge import Judge, JudgePanel, assert_meets_rubric, assert_preferred
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge, ProbabilisticPolicy

CONVERSATION = [
    {"role": "system", "content": "You are a travel assistant."},
    {"role": "user", "content": "I am going to Paris."},
    {"role": "assistant", "content": "When are you going?"},
    {"role": "user", "content": "In May. What should I pack?"},
]


def trajectory(answer: str) -> list[dict[str, object]]:
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "17 C, rain on 10 days"},
        {"role": "assistant", "content": answer},
    ]


NEW, OLD = trajectory("Layers and an umbrella. GOOD"), trajectory("Shorts.")


def judge_for(server: FakeJudge, cache: Path | None = None) -> Judge:
    return Judge(server.url, server.model, cache_dir=cache, max_retries=0, timeout=10)


@pytest.fixture
def three_judges() -> Iterator[list[FakeJudge]]:
    servers = [FakeJudge(model=f"judge-{n}", policy=ByResponsePolicy("GOOD")) for n in "abc"]
    for server in servers:
        server.start()
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def _passes(server: FakeJudge) -> int:
    return sum(1 for r in server.requests if r.parsed is not None and r.parsed.task == "pass")


def test_samples_of_a_trajectory_comparison_are_cached_per_index(
    fake_judge: FakeJudge, tmp_path: Path
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    with judge_for(fake_judge, tmp_path) as judge:
        verdict = judge.compare(CONVERSATION, OLD, NEW, samples=3)
    assert verdict.preference == "B>A" and verdict.consistent and len(verdict.samples) == 3
    assert _passes(fake_judge) == 6
    fake_judge.reset()
    with judge_for(fake_judge, tmp_path) as judge:
        again = judge.compare(CONVERSATION, OLD, NEW, samples=3)
    assert fake_judge.request_count == 0 and again.cached
    assert again.prompt == verdict.prompt and again.response_b == verdict.response_b


def test_a_panel_judges_trajectories_on_one_shared_rubric(three_judges: list[FakeJudge]) -> None:
    with JudgePanel([judge_for(s) for s in three_judges], strategy="majority") as panel:
        verdict = panel.compare(CONVERSATION, OLD, NEW, context=["Paris: 17 C in May."])
    assert verdict.preference == "B>A" and verdict.consistent
    rubric_requests = [
        r for s in three_judges for r in s.requests if r.parsed and r.parsed.task == "rubric"
    ]
    assert len(rubric_requests) == 1  # the rubric judge's, shared
    for server in three_judges:
        sent = server.requests[-1].body["messages"][1]["content"]
        assert "tool result of call c1" in sent and "<<document 1 " in sent


def test_confidence_decides_on_trajectories(fake_judge: FakeJudge, tmp_path: Path) -> None:
    fake_judge.policy = ProbabilisticPolicy(1.0, favoured="GOOD")
    with judge_for(fake_judge, tmp_path) as judge:
        verdict = assert_preferred(NEW, OLD, prompt=CONVERSATION, judge=judge, confidence=0.95)
    assert verdict.sequential is not None and verdict.sequential.outcome == "pass"
    asked = fake_judge.request_count
    fake_judge.reset()
    with judge_for(fake_judge, tmp_path) as judge:
        assert_preferred(NEW, OLD, prompt=CONVERSATION, judge=judge, confidence=0.95)
    assert asked > 0 and fake_judge.request_count == 0  # every sample from the cache


def test_grading_with_context_is_a_faithfulness_check(fake_judge: FakeJudge) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    docs = [{"content": "Paris averages 17 C in May.", "source": "meteo"}]
    with judge_for(fake_judge) as judge:
        grade = assert_meets_rubric(
            "17 C on average. GOOD", prompt="How warm is Paris in May?", context=docs, judge=judge
        )
        assert "(source: meteo)" in fake_judge.requests[-1].body["messages"][1]["content"]
        with pytest.raises(AssertionError, match="does not meet the rubric"):
            assert_meets_rubric(
                "Hot.", prompt="How warm is Paris in May?", context=docs, judge=judge
            )
    assert grade.prompt.startswith("<<message 1 user ")
