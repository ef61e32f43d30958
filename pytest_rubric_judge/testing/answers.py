"""Answer builders: the judge's raw answer text, in the shapes the protocol asks for.

Policies and tests write answers with these rather than by hand. By default an answer is
YAML in a fenced block, as a judge writes it when asked in the prompt; inside
`json_answers()` it is bare JSON, as a server constrained by a JSON Schema writes it. The
fake judge turns that on for a request that carries a schema. Nothing is validated, so
out-of-range scores or bad labels can be written on purpose to test a parser.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import yaml

__all__ = [
    "ScoreValue",
    "grade_yaml_answer",
    "json_answers",
    "pass_yaml_answer",
    "rubric_yaml_answer",
]

#: A criterion's score: an integer on a scale criterion, a bool on a binary one.
ScoreValue = bool | int

_JSON: ContextVar[bool] = ContextVar("fake_judge_json_answers", default=False)
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@contextmanager
def json_answers(enabled: bool = True) -> Iterator[None]:
    """Within the block (in this thread or task), the builders write bare JSON."""
    token = _JSON.set(enabled)
    try:
        yield
    finally:
        _JSON.reset(token)


def _answer_text(data: Mapping[str, object], width: int = 1000) -> str:
    if _JSON.get():
        return json.dumps(data, ensure_ascii=False)
    body = yaml.dump(data, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=width)
    return f"```yaml\n{body}```"


def rubric_yaml_answer(criteria: Sequence[Mapping[str, object]]) -> str:
    """A rubric answer: `criteria` (name, description, weight, type) under `criteria`."""
    return _answer_text({"criteria": [dict(c) for c in criteria]})


def grade_yaml_answer(
    scores: Sequence[Mapping[str, object]],
    overall: str = "Scored the response on every criterion of the rubric.",
) -> str:
    """A pointwise answer: items of name, score and justification, and an overall line."""
    data = {"scores": [dict(item) for item in scores], "overall_justification": overall}
    return _answer_text(data, width=80)


def pass_yaml_answer(
    scores: Sequence[Mapping[str, object]] | Mapping[str, tuple[ScoreValue, ScoreValue]],
    preference: str,
    overall: str = "Scored each response on every criterion of the rubric.",
) -> str:
    """A pairwise answer: the scores of both slots on every criterion, and the label.

    `scores` is either the list of items as the protocol writes them (name, score_A,
    score_B, justification_A, justification_B) or a mapping `{name: (score_A, score_B)}`.
    """
    if isinstance(scores, Mapping):
        items: list[dict[str, object]] = [
            {
                "name": name,
                "score_A": a,
                "score_B": b,
                "justification_A": f"Scored {a}.",
                "justification_B": f"Scored {b}.",
            }
            for name, (a, b) in scores.items()
        ]
    else:
        items = [dict(item) for item in scores]
    return _answer_text(
        {"scores": items, "overall_justification": overall, "preference": preference}
    )
