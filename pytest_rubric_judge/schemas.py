"""JSON Schemas of the judge's answers, for servers that constrain their output.

With a schema a capable server can only emit an answer of the protocol's shape. The
rubric's schema is built from a pydantic model of the answer; a pass's or a grading's is
written for the rubric at hand: every criterion once, with a score of its type, and the
label one of the four. Every free-text field has a `maxLength` (`dialects.TEXT_BOUNDS`).
How the schema is sent depends on the server (`dialects.shape`); each function here
memoizes the shaped request field.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from .dialects import TEXT_BOUNDS, Dialect, shape
from .models import LABELS, NAME_PATTERN, SCALE_MAX, SCALE_MIN, Rubric


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CriterionAnswer(_Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=40)
    description: str = Field(max_length=TEXT_BOUNDS["description"])
    weight: float = Field(gt=0)
    type: Literal["scale", "binary"]


def response_format(
    name: str, model: type[BaseModel], dialect: Dialect = "json_schema"
) -> dict[str, object]:
    """The `response_format` request field for `model`'s JSON Schema."""
    return shape(dialect, name, model.model_json_schema())


@functools.lru_cache(maxsize=64)
def rubric_format(
    min_criteria: int, max_criteria: int, dialect: Dialect = "json_schema"
) -> dict[str, object]:
    """Phase 1: `criteria`, a list of min..max criteria."""
    answer = create_model(
        "RubricAnswer",
        __base__=_Strict,
        criteria=(list[CriterionAnswer], Field(min_length=min_criteria, max_length=max_criteria)),
    )
    return response_format("rubric", answer, dialect)


def _score(kind: str) -> dict[str, object]:
    if kind == "binary":
        return {"type": "boolean"}
    # An enum rather than minimum/maximum: every grammar engine constrains an enum, some
    # (llama-cpp-python's) ignore integer bounds and let a small model write 0.
    return {"type": "integer", "enum": list(range(SCALE_MIN, SCALE_MAX + 1))}


def _text(field: str) -> dict[str, object]:
    return {"type": "string", "maxLength": TEXT_BOUNDS[field]}


def _object(properties: dict[str, object]) -> dict[str, object]:
    """An object with exactly these properties, in this order, all required."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _scores_answer(kind: Literal["pass", "grade"], rubric: Rubric) -> dict[str, object]:
    """A pass or grade answer for this rubric, `scores` as a mapping (which the protocol
    accepts): each criterion is a property of its own, so a constrained judge scores every
    criterion exactly once, in the rubric's order, with a score of its type. Each
    justification comes before its score, so the judge writes its reason first."""
    items: dict[str, object] = {}
    for criterion in rubric.criteria:
        score = _score(criterion.type)
        if kind == "pass":
            items[criterion.name] = _object(
                {
                    "justification_A": _text("justification"),
                    "justification_B": _text("justification"),
                    "score_A": score,
                    "score_B": score,
                }
            )
        else:
            items[criterion.name] = _object(
                {"justification": _text("justification"), "score": score}
            )
    answer: dict[str, object] = {
        "scores": _object(items),
        "overall_justification": _text("overall_justification"),
    }
    if kind == "pass":
        answer["preference"] = {"type": "string", "enum": list(LABELS)}
    return _object(answer)


@functools.lru_cache(maxsize=1024)
def pass_format(rubric: Rubric, dialect: Dialect = "json_schema") -> dict[str, object]:
    """Phase 2: both scores of every rubric criterion, the overall justification, the label."""
    return shape(dialect, "pairwise_pass", _scores_answer("pass", rubric))


@functools.lru_cache(maxsize=1024)
def grade_format(rubric: Rubric, dialect: Dialect = "json_schema") -> dict[str, object]:
    """Pointwise: the score of every rubric criterion and the overall justification."""
    return shape(dialect, "pointwise_grade", _scores_answer("grade", rubric))
