"""Factual questions in the style of SQuAD, about the University of Notre Dame.

Each question has a short reference answer. The judge sees it when it writes the rubric
and when it scores, so accuracy is measured against the reference, not against what the
judge happens to remember. The stored baselines, one file per test id, are in
judge_baselines/test_notre_dame/.
"""

from __future__ import annotations

import pytest
from assistant import BASILICA, GROTTO, NEWSPAPERS, STATUE, answer

from pytest_rubric_judge import Judge, assert_preferred
from pytest_rubric_judge.fixtures import Baseline

REFERENCES = {
    GROTTO: (
        "A Marian place of prayer and reflection: a replica of the grotto at Lourdes, France, "
        "where the Virgin Mary is said to have appeared to Saint Bernadette Soubirous in 1858."
    ),
    STATUE: "A golden statue of the Virgin Mary, on the gold dome.",
    BASILICA: "The Main Building.",
    NEWSPAPERS: "Three: The Observer, Common Sense and the Irish Rover.",
}

QUESTIONS = {"grotto": GROTTO, "statue": STATUE, "basilica": BASILICA, "newspapers": NEWSPAPERS}


@pytest.mark.parametrize("question", QUESTIONS.values(), ids=QUESTIONS.keys())
def test_answer_not_worse(judge_baseline: Baseline, question: str) -> None:
    # The baseline file is named after the test id, e.g. test_answer_not_worse[grotto].txt.
    judge_baseline.assert_not_worse(
        answer(question), prompt=question, reference=REFERENCES[question]
    )


def test_count_with_context_beats_bare_number(judge: Judge) -> None:
    # A bare "3" is not wrong, but an answer that names the papers is more useful.
    # The rubric for this prompt and reference is shared with test_answer_not_worse[newspapers].
    assert_preferred(
        answer(NEWSPAPERS),
        "3",
        min_margin=0.2,
        prompt=NEWSPAPERS,
        reference=REFERENCES[NEWSPAPERS],
        judge=judge,
    )
