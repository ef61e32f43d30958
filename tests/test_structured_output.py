"""Structured output: JSON Schemas sent as response_format, and the auto fallback."""

from __future__ import annotations

import json

import pytest

from pytest_rubric_judge import Judge, JudgeUnavailableError
from pytest_rubric_judge.testing import FakeJudge, FixedPolicy

CRITERIA = [
    {"name": "accuracy", "weight": 0.7},
    {"name": "cites_source", "weight": 0.3, "type": "binary"},
]


def _formats(server: FakeJudge) -> list[object]:
    return [r.body.get("response_format") for r in server.requests if r.parsed]


def test_auto_sends_schemas_narrowed_to_the_rubric(fake_judge: FakeJudge) -> None:
    with Judge(fake_judge.url, fake_judge.model, max_retries=0) as judge:
        judge.compare("q", "a", "b")
    rubric_format, pass_format, _ = _formats(fake_judge)
    assert isinstance(rubric_format, dict) and rubric_format["type"] == "json_schema"
    schema = rubric_format["json_schema"]["schema"]
    criteria = schema["properties"]["criteria"]
    assert (criteria["minItems"], criteria["maxItems"]) == (2, 8)
    assert isinstance(pass_format, dict)
    pass_schema = pass_format["json_schema"]["schema"]
    names = next(iter(pass_schema["$defs"].values()))["properties"]["name"]["enum"]
    assert names == ["accuracy", "completeness", "clarity"]
    assert pass_schema["properties"]["preference"]["enum"] == ["A>B", "B>A", "A=B", "A=B (bothbad)"]
    assert pass_format["json_schema"]["strict"] is True


def test_auto_falls_back_once_when_the_server_rejects_schemas(fake_judge: FakeJudge) -> None:
    fake_judge.fail(
        400, body=json.dumps({"error": {"message": "response_format is not supported"}})
    )
    with Judge(fake_judge.url, fake_judge.model, max_retries=0) as judge:
        verdict = judge.compare("q", "a", "b", criteria=CRITERIA)
        judge.compare("q", "a", "c", criteria=CRITERIA)
        assert judge.stats.structured_fallbacks == 1
        assert judge.sampling["structured_output"] is False
    formats = _formats(fake_judge)
    assert formats[0] is not None  # the rejected request carried a schema
    # The other pass of the first comparison was already in flight; everything sent after
    # the rejection is plain prompting.
    assert formats[-2:] == [None, None]
    assert len(formats) in (4, 5)
    assert verdict.preference in ("A>B", "B>A", "A=B", "A=B (bothbad)")


def test_json_schema_mode_does_not_fall_back(fake_judge: FakeJudge) -> None:
    fake_judge.fail(400, times=2, body=json.dumps({"error": {"message": "no json_schema here"}}))
    with Judge(
        fake_judge.url, fake_judge.model, max_retries=0, structured_output="json_schema"
    ) as judge:
        with pytest.raises(JudgeUnavailableError, match="HTTP 400"):
            judge.compare("q", "a", "b", criteria=CRITERIA)


def test_off_sends_no_schema_and_keys_differ(fake_judge: FakeJudge, tmp_path: object) -> None:
    with Judge(
        fake_judge.url, fake_judge.model, structured_output="off", cache_dir=str(tmp_path)
    ) as judge:
        judge.compare("q", "a", "b", criteria=CRITERIA)
    assert _formats(fake_judge) == [None, None]
    with Judge(fake_judge.url, fake_judge.model, cache_dir=str(tmp_path)) as judge:
        judge.compare("q", "a", "b", criteria=CRITERIA)
    assert fake_judge.request_count == 4  # structured on/off is part of the cache key


def test_json_answers_as_a_constrained_server_writes_them(fake_judge: FakeJudge) -> None:
    answer = {
        "scores": [
            {
                "name": "accuracy",
                "score_A": 2,
                "score_B": 5,
                "justification_A": "x",
                "justification_B": "y",
            },
            {
                "name": "cites_source",
                "score_A": False,
                "score_B": True,
                "justification_A": "x",
                "justification_B": "y",
            },
        ],
        "overall_justification": "B is right.",
        "preference": "B>A",
    }
    flipped = {
        **answer,
        "scores": [
            {**s, "score_A": s["score_B"], "score_B": s["score_A"]} for s in answer["scores"]
        ],
        "preference": "A>B",
    }
    fake_judge.script(
        lambda r: json.dumps(answer if r.response_a == "a" else flipped),
        lambda r: json.dumps(answer if r.response_a == "a" else flipped),
    )
    fake_judge.policy = FixedPolicy("A=B")
    with Judge(fake_judge.url, fake_judge.model) as judge:
        verdict = judge.compare("q", "a", "b", criteria=CRITERIA)
    assert verdict.preference == "B>A" and verdict.consistent
    assert verdict.weighted_b == pytest.approx(1.0)


def _pydantic_schema(kind: str, names: list[str]) -> dict[str, object]:
    """The pass or grade schema built the slow way: pydantic models narrowed to `names`."""
    from typing import Any, Literal

    from pydantic import Field, create_model

    from pytest_rubric_judge.schemas import _LABEL_TYPE, _score_type, _Strict

    item_fields: dict[str, Any] = {"name": (Literal[tuple(names)], ...)}
    answer_fields: dict[str, Any] = {}
    if kind == "pass":
        item_fields.update(
            score_A=(_score_type(), ...),
            score_B=(_score_type(), ...),
            justification_A=(str, ...),
            justification_B=(str, ...),
        )
        answer_fields["preference"] = (_LABEL_TYPE, ...)
    else:
        item_fields.update(score=(_score_type(), ...), justification=(str, ...))
    item = create_model(
        "CriterionScores" if kind == "pass" else "CriterionScore", __base__=_Strict, **item_fields
    )
    answer = create_model(
        "PassAnswer" if kind == "pass" else "GradeAnswer",
        __base__=_Strict,
        scores=(list[item], Field(min_length=len(names))),  # type: ignore[valid-type]
        overall_justification=(str, ...),
        **answer_fields,
    )
    return answer.model_json_schema()


@pytest.mark.parametrize("names", [["accuracy", "clarity"], ["accuracy", "completeness", "cites"]])
def test_narrowed_schemas_equal_the_pydantic_models_of_the_rubric(names: list[str]) -> None:
    from pytest_rubric_judge import schemas
    from pytest_rubric_judge.models import Rubric

    rubric = Rubric.of([{"name": n, "weight": 1} for n in names], source="user")
    passed = schemas.pass_format(rubric)["json_schema"]
    graded = schemas.grade_format(rubric)["json_schema"]
    assert isinstance(passed, dict) and isinstance(graded, dict)
    # Same content and the same bytes on the wire.
    assert json.dumps(passed["schema"]) == json.dumps(_pydantic_schema("pass", names))
    assert json.dumps(graded["schema"]) == json.dumps(_pydantic_schema("grade", names))
    # Narrowing one rubric leaves the shared template, and other rubrics' schemas, alone.
    other = schemas.pass_format(Rubric.of([{"name": "zzz", "weight": 1}], source="user"))
    assert json.dumps(passed["schema"]) == json.dumps(_pydantic_schema("pass", names))
    other_schema = other["json_schema"]["schema"]  # type: ignore[index]
    assert other_schema["properties"]["scores"]["minItems"] == 1
    # One criterion: an enum of one name (pydantic would write a const; both mean the same).
    assert other_schema["$defs"]["CriterionScores"]["properties"]["name"]["enum"] == ["zzz"]
