"""Structured output: JSON Schemas sent as response_format, and the auto fallback."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from pytest_rubric_judge import Judge, JudgeUnavailableError, schemas
from pytest_rubric_judge.models import Rubric
from pytest_rubric_judge.parsing import parse_grade, parse_pass
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
    scores = pass_schema["properties"]["scores"]
    names = ["accuracy", "completeness", "clarity"]
    assert list(scores["properties"]) == scores["required"] == names
    assert scores["additionalProperties"] is False
    assert pass_schema["properties"]["preference"]["enum"] == ["A>B", "B>A", "A=B", "A=B (bothbad)"]
    assert pass_format["json_schema"]["strict"] is True


def test_auto_falls_back_once_when_the_server_rejects_schemas(fake_judge: FakeJudge) -> None:
    # The server refuses every request in the first dialect, as a real one does (it was one
    # refused request: with both passes in flight, which came back first decided, and an
    # answered dialect is kept, so the test was flaky). llama-cpp-python's server takes the
    # second dialect.
    fake_judge.handler.engine = "llama-cpp-python"
    with Judge(fake_judge.url, fake_judge.model, max_retries=0) as judge:
        verdict = judge.compare("q", "a", "b", criteria=CRITERIA)
        judge.compare("q", "a", "c", criteria=CRITERIA)
        assert judge.stats.structured_fallbacks == 1
        # The next dialect (llama-cpp-python's form) was taken, and is kept.
        assert judge.sampling["structured_output"] == "json_object_schema"
        assert judge.structured_dialect == "json_object_schema"
    formats = _formats(fake_judge)
    assert isinstance(formats[0], dict) and formats[0]["type"] == "json_schema"
    # Each pass sent in the first dialect (the other pass of the first comparison may have
    # been sent after the move) was refused and asked again in the next one.
    refused = [f for f in formats if isinstance(f, dict) and f["type"] == "json_schema"]
    assert len(refused) in (1, 2) and len(formats) == 4 + len(refused)
    for later in formats:
        assert isinstance(later, dict)
        if later["type"] != "json_schema":
            assert later["type"] == "json_object"
            assert "criteria" not in later["schema"]["properties"]
    assert verdict.preference in ("A>B", "B>A", "A=B", "A=B (bothbad)")


def test_json_schema_mode_does_not_fall_back(fake_judge: FakeJudge) -> None:
    fake_judge.fail(400, times=2, body=json.dumps({"error": {"message": "no json_schema here"}}))
    with Judge(
        fake_judge.url, fake_judge.model, max_retries=0, structured_output="json_schema"
    ) as judge:
        with pytest.raises(JudgeUnavailableError, match="HTTP 400"):
            judge.compare("q", "a", "b", criteria=CRITERIA)


def test_off_sends_no_schema_and_keys_differ(fake_judge: FakeJudge, tmp_path: object) -> None:
    with Judge(fake_judge.url, fake_judge.model, cache_dir=str(tmp_path)) as judge:
        judge.compare("q", "a", "b", criteria=CRITERIA)
    assert fake_judge.request_count == 2
    with Judge(
        fake_judge.url, fake_judge.model, structured_output="off", cache_dir=str(tmp_path)
    ) as judge:
        judge.compare("q", "a", "b", criteria=CRITERIA)
    assert _formats(fake_judge)[2:] == [None, None]
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


_NAME = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
_CRITERIA = st.lists(
    st.tuples(_NAME, st.sampled_from(["scale", "binary"])),
    min_size=1,
    max_size=4,
    unique_by=lambda c: c[0],
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_CRITERIA, st.data())
def test_every_answer_the_schema_allows_is_read_whole(
    criteria: list[tuple[str, str]], data: st.DataObject
) -> None:
    """Trust boundary: whatever a constrained server writes within the schema is a valid
    answer, every criterion scored with a score of its type."""
    rubric = Rubric.of([{"name": n, "weight": 1, "type": t} for n, t in criteria], source="user")
    for kind, parse in (("pass", parse_pass), ("grade", parse_grade)):
        schema_format = (schemas.pass_format if kind == "pass" else schemas.grade_format)(rubric)
        schema = schema_format["json_schema"]["schema"]  # type: ignore[index]
        answer = data.draw(from_schema(schema), label=kind)
        jsonschema.validate(answer, schema)
        parsed = parse(json.dumps(answer), rubric)  # type: ignore[operator]
        assert {s.name for s in parsed.scores} == set(rubric.names)


@settings(deadline=None)
@given(_CRITERIA)
def test_an_answer_missing_a_criterion_or_scoring_it_twice_is_outside_the_schema(
    criteria: list[tuple[str, str]],
) -> None:
    rubric = Rubric.of([{"name": n, "weight": 1, "type": t} for n, t in criteria], source="user")
    schema = schemas.grade_format(rubric)["json_schema"]["schema"]  # type: ignore[index]
    score = {"justification": "ok", "score": 3}
    whole = {n: {**score, "score": True if t == "binary" else 3} for n, t in criteria}
    jsonschema.validate({"scores": whole, "overall_justification": "x"}, schema)
    missing = dict(list(whole.items())[1:])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"scores": missing, "overall_justification": "x"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"scores": {**whole, "other": score}, "overall_justification": "x"}, schema
        )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"scores": whole, "overall_justification": "x" * 601}, schema)
