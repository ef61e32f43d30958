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


def _names(rubric: Rubric) -> Any:
    return Literal[tuple(rubric.names)]


def _score_type() -> Any:
    # A scale score is an integer 1-5, a binary one a boolean; the rubric says which.
    return Annotated[int, Field(ge=SCALE_MIN, le=SCALE_MAX)] | bool


def response_format(name: str, model: type[BaseModel]) -> dict[str, object]:
    """The `response_format` request field for `model`'s JSON Schema."""
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": model.model_json_schema(), "strict": True},
    }


@functools.lru_cache(maxsize=64)
def rubric_format(min_criteria: int, max_criteria: int) -> dict[str, object]:
    """Phase 1: `criteria`, a list of min..max criteria."""
    answer = create_model(
        "RubricAnswer",
        __base__=_Strict,
        criteria=(list[CriterionAnswer], Field(min_length=min_criteria, max_length=max_criteria)),
    )
    return response_format("rubric", answer)


@functools.lru_cache(maxsize=256)
def pass_format(rubric: Rubric) -> dict[str, object]:
    """Phase 2: one score pair per rubric criterion, the overall justification, the label."""
    score = create_model(
        "CriterionScores",
        __base__=_Strict,
        name=(_names(rubric), ...),
        score_A=(_score_type(), ...),
        score_B=(_score_type(), ...),
        justification_A=(str, ...),
        justification_B=(str, ...),
    )
    answer = create_model(
        "PassAnswer",
        __base__=_Strict,
        scores=(list[score], Field(min_length=len(rubric.criteria))),  # type: ignore[valid-type]
        overall_justification=(str, ...),
        preference=(_LABEL_TYPE, ...),
    )
    return response_format("pairwise_pass", answer)


@functools.lru_cache(maxsize=256)
def grade_format(rubric: Rubric) -> dict[str, object]:
    """Pointwise: one score per rubric criterion and the overall justification."""
    score = create_model(
        "CriterionScore",
        __base__=_Strict,
        name=(_names(rubric), ...),
        score=(_score_type(), ...),
        justification=(str, ...),
    )
    answer = create_model(
        "GradeAnswer",
        __base__=_Strict,
        scores=(list[score], Field(min_length=len(rubric.criteria))),  # type: ignore[valid-type]
        overall_justification=(str, ...),
    )
    return response_format("pointwise_grade", answer)
