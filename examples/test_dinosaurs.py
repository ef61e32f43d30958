"""The example prompt of the AWS post on the Amazon Nova rubric-based judge, judged three ways.

1. Two responses side by side: the assistant's detailed answer must beat a short one.
2. The same pair on criteria the test writes itself, then rescored offline.
3. The assistant's answer against the stored baseline in judge_baselines/test_dinosaurs/.
"""

from __future__ import annotations

from assistant import DINOSAURS, answer

from pytest_rubric_judge import Judge, assert_preferred
from pytest_rubric_judge.fixtures import Baseline

# What a smaller model answered: true as far as it goes, but thin, and silent about birds.
SHORT_ANSWER = (
    "Dinosaurs existed a long time ago, but they all died out when a meteor hit the Earth. "
    "We only know about them from the fossils in museums."
)

CRITERIA = [
    {
        "name": "accuracy",
        "description": "Whether the facts about dinosaurs, their age and extinction are correct.",
        "weight": 0.5,
        "type": "scale",
    },
    {
        "name": "completeness",
        "description": "Whether it covers the evidence, the extinction and the survivors.",
        "weight": 0.3,
        "type": "scale",
    },
    {
        "name": "mentions_birds",
        "description": "Whether it says that birds are living dinosaurs.",
        "weight": 0.2,
        "type": "binary",
    },
]


def test_detailed_answer_is_preferred(judge: Judge) -> None:
    # The judge writes a rubric for the prompt, then scores both responses in both orders.
    assert_preferred(answer(DINOSAURS), SHORT_ANSWER, prompt=DINOSAURS, judge=judge)


def test_own_criteria_and_offline_rescoring(judge: Judge) -> None:
    # With criteria given, the judge skips writing a rubric and scores these ones.
    verdict = assert_preferred(
        answer(DINOSAURS), SHORT_ANSWER, prompt=DINOSAURS, criteria=CRITERIA, judge=judge
    )
    # The baseline is response A and the candidate response B: B>A means the candidate won.
    assert verdict.preference == "B>A" and verdict.consistent
    # Does it win only by saying more? Drop completeness and decide from the margin again,
    # without asking the judge.
    focused = verdict.rescored(drop=["completeness"])
    assert focused.preference == "B>A", focused.margin


def test_answer_not_worse_than_baseline(judge_baseline: Baseline) -> None:
    # Fails only if the judge prefers the stored baseline in both orders.
    judge_baseline.assert_not_worse(answer(DINOSAURS), prompt=DINOSAURS)
