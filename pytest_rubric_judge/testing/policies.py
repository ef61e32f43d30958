"""Policies: how the fake judge decides. A policy turns a request into the answer text.

`FixedPolicy` answers in slot terms whatever the responses say, which is how a
position-biased judge looks; `ByResponsePolicy` prefers the response that contains a
marker, in either slot; `ProbabilisticPolicy` prefers it with a known probability, drawn
per request seed (per sample). The heuristic default lives in `heuristic`. Any callable with the
`Policy` signature will do, so a test can write its own in a few lines.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from .answers import ScoreValue, grade_yaml_answer, pass_yaml_answer, rubric_yaml_answer
from .reading import ParsedRequest

__all__ = [
    "DEFAULT_CRITERIA",
    "Answer",
    "ByResponsePolicy",
    "FixedPolicy",
    "Policy",
    "ProbabilisticPolicy",
    "request_criteria",
]

#: Turns a judge request into the judge's raw answer text.
Policy = Callable[[ParsedRequest], str]
#: A scripted answer: the text itself, or a function of the request.
Answer = str | Callable[[ParsedRequest], str]

#: The rubric the fixed policies write: the article's three criteria.
DEFAULT_CRITERIA: tuple[dict[str, object], ...] = (
    {
        "name": "accuracy",
        "description": "Whether the facts stated are correct.",
        "weight": 0.5,
        "type": "scale",
    },
    {
        "name": "completeness",
        "description": "Whether the response covers everything the prompt asks.",
        "weight": 0.3,
        "type": "scale",
    },
    {
        "name": "clarity",
        "description": "Whether the response is clear and well organised.",
        "weight": 0.2,
        "type": "scale",
    },
)


def request_criteria(request: ParsedRequest) -> list[tuple[str, str, float]]:
    """(name, type, weight) of each criterion of the request's rubric; the default rubric's
    when the request carries none. Type is "binary" or "scale"."""
    raw = request.rubric.get("criteria") if request.rubric else None
    items = raw if isinstance(raw, list) and raw else list(DEFAULT_CRITERIA)
    found: list[tuple[str, str, float]] = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        kind = "binary" if item.get("type") == "binary" else "scale"
        weight = item.get("weight", 1.0)
        found.append((name, kind, float(weight) if isinstance(weight, (int, float)) else 1.0))
    return found


def _slot_score(scores: Mapping[str, ScoreValue] | ScoreValue, name: str, kind: str) -> object:
    """The score a fixed policy gives one criterion; None when a mapping leaves it out."""
    if isinstance(scores, Mapping):
        return scores.get(name)
    if kind == "binary":
        return scores if isinstance(scores, bool) else scores >= 3
    if isinstance(scores, bool):
        return 5 if scores else 1
    return scores


class FixedPolicy:
    """Always the same answer, in *slot* terms, whatever the responses say.

    `FixedPolicy("A>B", 5, 2)` prefers whatever sits in slot A: the position-biased judge
    that both-order evaluation exists to catch. Scores are an int (bool for binary
    criteria: true when >= 3) applied to every criterion, or a mapping by criterion name;
    a criterion left out of the mapping is left out of the answer, to test a parser.
    Rubric requests get `rubric`, or `DEFAULT_CRITERIA`.
    """

    def __init__(
        self,
        preference: str,
        scores_a: Mapping[str, ScoreValue] | ScoreValue = 4,
        scores_b: Mapping[str, ScoreValue] | ScoreValue = 2,
        rubric: Sequence[Mapping[str, object]] | None = None,
        *,
        overall: str = "A fixed answer from the fake judge.",
    ) -> None:
        self.preference = preference
        self.scores_a = scores_a
        self.scores_b = scores_b
        self.rubric = list(rubric) if rubric is not None else list(DEFAULT_CRITERIA)
        self.overall = overall

    def __call__(self, request: ParsedRequest) -> str:
        if request.task == "grade":
            return self.grade_answer(request, self.scores_a)
        if request.task != "pass":
            return rubric_yaml_answer(self.rubric)
        return self.answer(request, self.preference, self.scores_a, self.scores_b)

    def grade_answer(
        self, request: ParsedRequest, scores: Mapping[str, ScoreValue] | ScoreValue
    ) -> str:
        """A pointwise answer for the request's rubric with these scores."""
        items: list[dict[str, object]] = []
        for name, kind, _ in request_criteria(request):
            value = _slot_score(scores, name, kind)
            if value is not None:
                items.append({"name": name, "score": value, "justification": f"Fixed {value}."})
        return grade_yaml_answer(items, self.overall)

    def answer(
        self,
        request: ParsedRequest,
        preference: str,
        scores_a: Mapping[str, ScoreValue] | ScoreValue,
        scores_b: Mapping[str, ScoreValue] | ScoreValue,
    ) -> str:
        """A pass answer for the request's rubric with these slot scores and label."""
        items: list[dict[str, object]] = []
        for name, kind, _ in request_criteria(request):
            a, b = _slot_score(scores_a, name, kind), _slot_score(scores_b, name, kind)
            if a is None or b is None:
                continue
            items.append(
                {
                    "name": name,
                    "score_A": a,
                    "score_B": b,
                    "justification_A": f"Fixed score {a}.",
                    "justification_B": f"Fixed score {b}.",
                }
            )
        return pass_yaml_answer(items, preference, self.overall)


class ByResponsePolicy(FixedPolicy):
    """Prefers the response that contains `winner_contains`, in whichever slot it sits.

    Consistent in both orders, so a test decides pass or fail by where it puts the marker.
    When both or neither response contains it, the answer is A=B with equal scores.
    """

    def __init__(
        self,
        winner_contains: str,
        *,
        high: int = 5,
        low: int = 2,
        rubric: Sequence[Mapping[str, object]] | None = None,
    ) -> None:
        super().__init__("A=B", high, low, rubric, overall="The fake judge looked for a marker.")
        self.winner_contains = winner_contains
        self.high = high
        self.low = low

    def __call__(self, request: ParsedRequest) -> str:
        if request.task == "grade":
            found = self.winner_contains in (request.response_a or "")
            return self.grade_answer(request, self.high if found else self.low)
        if request.task != "pass":
            return rubric_yaml_answer(self.rubric)
        in_a = self.winner_contains in (request.response_a or "")
        in_b = self.winner_contains in (request.response_b or "")
        if in_a and not in_b:
            return self.answer(request, "A>B", self.high, self.low)
        if in_b and not in_a:
            return self.answer(request, "B>A", self.low, self.high)
        middle = (self.high + self.low) // 2
        return self.answer(request, "A=B", middle, middle)


class ProbabilisticPolicy(ByResponsePolicy):
    """A judge of known win probability: with probability `p` it prefers the response that
    contains `favoured`, else the other one, in both slot orders alike.

    The draw is made from the request's `seed` and the policy's own `seed`: both orders of
    one sample (same seed) agree, each sample of a sampled judgment (seed base + i) is
    its own draw, and a rerun gets the same answers. A grade request gets the high score
    with probability `p`, else the low one. `wins(request_seed)` says what the policy
    decides for a sample, so a test can compute the outcome it expects.
    """

    def __init__(
        self,
        p: float,
        seed: int = 0,
        *,
        favoured: str = "NEW",
        high: int = 5,
        low: int = 2,
        rubric: Sequence[Mapping[str, object]] | None = None,
    ) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError("p must be within [0, 1]")
        super().__init__(favoured, high=high, low=low, rubric=rubric)
        self.p = p
        self.seed = seed

    def wins(self, request_seed: int | None) -> bool:
        """Whether the favoured response wins the sample sent with `request_seed`."""
        return random.Random(f"{self.seed}:{request_seed}").random() < self.p

    def __call__(self, request: ParsedRequest) -> str:
        won = self.wins(request.seed)
        if request.task == "grade":
            return self.grade_answer(request, self.high if won else self.low)
        if request.task != "pass":
            return rubric_yaml_answer(self.rubric)
        in_a = self.winner_contains in (request.response_a or "")
        if in_a == won:  # the favoured response in slot A and winning, or neither
            return self.answer(request, "A>B", self.high, self.low)
        return self.answer(request, "B>A", self.low, self.high)
