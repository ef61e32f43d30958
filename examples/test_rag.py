"""A retrieval-augmented answer, judged against the documents it was given.

`context=[...]` passes the retrieved documents (strings, or mappings with `content` and a
`source`) to the judge beside the prompt, and its rubric gets a `groundedness` criterion:
every claim of the answer must be supported by the documents. The first test prefers the
grounded answer to one that invents a policy; the second checks the grounded answer alone,
pointwise, on criteria of faithfulness with a floor on groundedness (`assert_meets_rubric`).
"""

from __future__ import annotations

from pytest_rubric_judge import Judge, assert_meets_rubric, assert_preferred

QUESTION = "Can I return a laptop I bought three weeks ago?"
DOCUMENTS = [
    {
        "content": "You can return a laptop or a tablet within 30 days of delivery, in its "
        "original packaging.",
        "source": "returns-policy.md",
    },
    {
        "content": "Refunds are paid to the original payment method within 5 business days "
        "of the return arriving.",
        "source": "refunds.md",
    },
]

# In your suite: what your retrieval pipeline answered from DOCUMENTS.
GROUNDED = (
    "Yes. You can return a laptop within 30 days of delivery, in its original packaging, and "
    "three weeks is within that. Refunds are paid to the original payment method within 5 "
    "business days."
)
# Plausible, but nothing in the documents says so.
INVENTED = "Sure, you have 90 days, and we send a free shipping label for any return."

FAITHFULNESS = [
    {
        "name": "groundedness",
        "description": "Every claim of the answer is supported by the retrieved documents.",
        "weight": 0.7,
        "type": "scale",
    },
    {
        "name": "answers_question",
        "description": "It says whether the laptop can be returned.",
        "weight": 0.3,
        "type": "scale",
    },
]


def test_grounded_answer_is_preferred(judge: Judge) -> None:
    assert_preferred(GROUNDED, INVENTED, prompt=QUESTION, context=DOCUMENTS, judge=judge)


def test_answer_is_faithful_to_the_documents(judge: Judge) -> None:
    assert_meets_rubric(
        GROUNDED,
        prompt=QUESTION,
        context=DOCUMENTS,
        criteria=FAITHFULNESS,
        min_criteria={"groundedness": 4},
        judge=judge,
    )
