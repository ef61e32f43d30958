"""JSON Schemas of the judge's answers, for servers that constrain their output.

OpenAI, vLLM and SGLang accept `response_format={"type": "json_schema", ...}`: with it a
capable server can only emit an answer of the protocol's shape. The schemas are built
from pydantic models of the answers, narrowed to the request at hand: a pass may only
name the rubric's criteria, and the label must be one of the four.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from .models import LABELS, NAME_PATTERN, SCALE_MAX, SCALE_MIN, Rubric


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CriterionAnswer(_Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=40)
    description: str
    weight: float = Field(gt=0)
    type: Literal["scale", "binary"]


#: The four labels as a type, held as Any: pydantic builds the enum from it at run time.
_LABEL_TYPE: Any = Literal[LABELS]


def _score_type() -> Any:
    # A scale score is an integer 1-5, a binary one a boolean; the rubric says which.
    return Annotated[int, Field(ge=SCALE_MIN, le=SCALE_MAX)] | bool


def response_format(name: str, model: type[BaseModel]) -> dict[str, object]:
    """The `response_format` request field for `model`'s JSON Schema."""
    return _wrap(name, model.model_json_schema())


@functools.lru_cache(maxsize=64)
def rubric_format(min_criteria: int, max_criteria: int) -> dict[str, object]:
    """Phase 1: `criteria`, a list of min..max criteria."""
    answer = create_model(
        "RubricAnswer",
        __base__=_Strict,
        criteria=(list[CriterionAnswer], Field(min_length=min_criteria, max_length=max_criteria)),
    )
    return response_format("rubric", answer)


@functools.cache
def _template(kind: Literal["pass", "grade"]) -> dict[str, object]:
    """The schema of an answer whose criterion names may be any string, built once.

    Narrowing it to a rubric (`_narrow`) adds the rubric's names and count: building
    pydantic models per rubric costs milliseconds, this costs microseconds, and the two
    give the same schema (tests/test_schemas.py checks it).
    """
    item_fields: dict[str, Any] = {"name": (str, ...)}
    if kind == "pass":
        item_fields.update(
            score_A=(_score_type(), ...),
            score_B=(_score_type(), ...),
            justification_A=(str, ...),
            justification_B=(str, ...),
        )
    else:
        item_fields.update(score=(_score_type(), ...), justification=(str, ...))
    item = create_model(
        "CriterionScores" if kind == "pass" else "CriterionScore", __base__=_Strict, **item_fields
    )
    answer_fields: dict[str, Any] = {
        "scores": (list[item], Field(min_length=1)),  # type: ignore[valid-type]
        "overall_justification": (str, ...),
    }
    if kind == "pass":
        answer_fields["preference"] = (_LABEL_TYPE, ...)
    answer = create_model(
        "PassAnswer" if kind == "pass" else "GradeAnswer", __base__=_Strict, **answer_fields
    )
    return answer.model_json_schema()


def _narrow(kind: Literal["pass", "grade"], rubric: Rubric) -> dict[str, Any]:
    """The template with the rubric's criterion names and count; shared parts not copied."""
    template: dict[str, Any] = _template(kind)
    ((item_name, item),) = template["$defs"].items()
    properties = dict(item["properties"])
    properties["name"] = {"enum": list(rubric.names), **properties["name"]}
    scores = {**template["properties"]["scores"], "minItems": len(rubric.criteria)}
    return {
        **template,
        "$defs": {item_name: {**item, "properties": properties}},
        "properties": {**template["properties"], "scores": scores},
    }


def _wrap(name: str, schema: dict[str, Any]) -> dict[str, object]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


@functools.lru_cache(maxsize=1024)
def pass_format(rubric: Rubric) -> dict[str, object]:
    """Phase 2: one score pair per rubric criterion, the overall justification, the label."""
    return _wrap("pairwise_pass", _narrow("pass", rubric))


@functools.lru_cache(maxsize=1024)
def grade_format(rubric: Rubric) -> dict[str, object]:
    """Pointwise: one score per rubric criterion and the overall justification."""
    return _wrap("pointwise_grade", _narrow("grade", rubric))
