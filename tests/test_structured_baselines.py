"""Baselines of agent trajectories: stored as readable JSON, read back as messages."""

from __future__ import annotations

import json

import pytest

from pytest_rubric_judge.baselines import baseline_path, read_baseline
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

pytest_plugins = ["pytester"]

SUITE = """
ANSWER = ANSWER_TEXT

def trajectory(answer):
    return [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": "capital"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Paris"},
        {"role": "assistant", "content": answer},
    ]

def test_agent(judge_baseline):
    judge_baseline.assert_not_worse(trajectory(ANSWER), prompt="What is the capital of France?")
"""


def _suite(pytester: pytest.Pytester, answer: str) -> None:
    pytester.makepyfile(test_suite=SUITE.replace("ANSWER_TEXT", repr(answer)))


def _stored(pytester: pytest.Pytester) -> str | None:
    return read_baseline(baseline_path(pytester.path / "test_suite.py", "test_agent"))


def test_a_trajectory_baseline_is_recorded_as_json_and_compared_as_messages(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    _suite(pytester, "Paris.")
    pytester.runpytest(*judge_args, "--judge-update-baselines").assert_outcomes(passed=1)
    stored = _stored(pytester)
    assert stored is not None
    messages = json.loads(stored)
    assert [m["role"] for m in messages] == ["assistant", "tool", "assistant"]
    assert messages[-1]["content"] == "Paris."
    assert fake_judge.request_count == 0  # recording asks nothing

    # A later run compares the candidate trajectory with the stored one, as trajectories.
    _suite(pytester, "Paris. GOOD")
    pytester.runpytest(*judge_args, "--judge-update-baselines").assert_outcomes(passed=1)
    sent = json.dumps(fake_judge.requests[-1].body["messages"])
    assert "tool result of call c1" in sent  # the stored baseline was sent as a trajectory
    assert json.loads(_stored(pytester) or "")[-1]["content"] == "Paris. GOOD"  # it beat it


def test_a_text_baseline_for_a_trajectory_candidate_says_how_to_fix_it(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    path = baseline_path(pytester.path / "test_suite.py", "test_agent")
    path.parent.mkdir(parents=True)
    path.write_text("Paris is the capital.", encoding="utf-8")
    _suite(pytester, "Paris.")
    result = pytester.runpytest(*judge_args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*baseline at * is text, but the candidate is a list of messages*"]
    )
    assert fake_judge.request_count == 0


LOCKED_SUITE = """
from pytest_rubric_judge import assert_preferred

CONVERSATION = [
    {"role": "user", "content": "I am going to Paris."},
    {"role": "assistant", "content": "When?"},
    {"role": "user", "content": "In May. What should I pack?"},
]

def test_chat():
    assert_preferred("Layers and an umbrella. GOOD", "Shorts.", prompt=CONVERSATION)
"""


def test_the_rubric_of_a_conversation_is_locked_and_reused(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    pytester.makepyfile(test_chat=LOCKED_SUITE)
    result = pytester.runpytest(*judge_args, "--judge-lock-rubrics", "--judge-cache=off")
    result.assert_outcomes(passed=1)
    lock = pytester.path / "judge_rubrics" / "test_chat" / "test_chat.yaml"
    text = lock.read_text(encoding="utf-8")
    assert "In May. What should I pack?" in text and "<<message 3 user " in text
    fake_judge.reset()
    pytester.runpytest(*judge_args, "--judge-cache=off").assert_outcomes(passed=1)
    tasks = [r.parsed.task for r in fake_judge.requests if r.parsed is not None]
    assert tasks == ["pass", "pass"]  # the locked rubric, no rubric request
