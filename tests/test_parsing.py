"""Unit tests for pytest_rubric_judge.parsing: judge text -> models."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rubric_judge import loading
from pytest_rubric_judge.errors import ParseError
from pytest_rubric_judge.models import Criterion, Rubric
from pytest_rubric_judge.parsing import (
    MAX_ANSWER_CHARS,
    coerce_score,
    extract_yaml,
    load_judge_yaml,
    parse_label,
    parse_pass,
    parse_rubric,
    render_error_hint,
)

SPEC_RUBRIC = """\
```yaml
criteria:
  - name: accuracy          # snake_case, unique, 1-40 chars
    description: Whether the facts about the student newspapers are correct.
    weight: 0.5             # > 0
    type: scale             # scale (integer 1-5) or binary (true/false)
  - name: completeness
    description: Whether all the student newspapers are named.
    weight: 0.3
    type: scale
  - name: clarity
    description: Whether the answer is easy to follow.
    weight: 0.2
    type: scale
```
"""

SPEC_PASS = """\
Here is my evaluation.
```yaml
scores:
  - name: accuracy
    score_A: 2              # scale: integer 1-5, binary: true/false
    score_B: 4
    justification_A: Gives a number with no context.
    justification_B: Names the publications and says the count varies.
  - name: completeness
    score_A: 1
    score_B: 5
    justification_A: Names none of them.
    justification_B: Names all of them.
  - name: clarity
    score_A: 2
    score_B: 5
    justification_A: Terse.
    justification_B: Well organised.
overall_justification: Response B is more accurate and complete.
preference: B>A             # exactly one of: A>B, B>A, A=B, A=B (bothbad)
```
"""


@pytest.fixture
def rubric() -> Rubric:
    return Rubric.of(
        [
            {"name": "accuracy", "weight": 0.5},
            {"name": "completeness", "weight": 0.3},
            {"name": "clarity", "weight": 0.2},
        ],
        source="judge",
    )


def scale(name: str = "accuracy") -> Criterion:
    return Criterion(name=name, weight=1.0, type="scale")


def binary(name: str = "cites_source") -> Criterion:
    return Criterion(name=name, weight=1.0, type="binary")


def pass_yaml(
    scores: dict[str, tuple[object, object]], preference: str = "B>A", extra: str = ""
) -> str:
    """A pass answer with the given (score_A, score_B) per criterion name."""
    lines = ["scores:"]
    for name, (a, b) in scores.items():
        lines += [f"  - name: {name}", f"    score_A: {a}", f"    score_B: {b}"]
    lines.append(f"preference: {preference}")
    return "```yaml\n" + "\n".join(lines) + "\n" + extra + "```\n"


ROW_0 = {"accuracy": (2, 4), "completeness": (1, 5), "clarity": (2, 5)}


# --------------------------------------------------------------------------- extract_yaml


def test_extract_unfenced_text_is_stripped() -> None:
    assert extract_yaml("\n  preference: A>B  \n\n") == "preference: A>B"


def test_extract_last_block_wins() -> None:
    text = "First draft:\n```yaml\npreference: A>B\n```\nFinal:\n```yaml\npreference: B>A\n```\n"
    assert extract_yaml(text) == "preference: B>A"


def test_extract_several_blocks_of_several_kinds() -> None:
    text = (
        '```\nfirst: 1\n```\nprose\n```yml\nsecond: 2\n```\n```json\n{"third": 3}\n```\nthe end\n'
    )
    assert extract_yaml(text) == '{"third": 3}'


def test_extract_prefers_yaml_block_over_a_later_other_language() -> None:
    text = "```yaml\npreference: A>B\n```\nFor example:\n```python\nprint('hi')\n```\n"
    assert extract_yaml(text) == "preference: A>B"


def test_extract_falls_back_to_any_block_when_none_is_yaml() -> None:
    assert extract_yaml("```text\npreference: A>B\n```") == "preference: A>B"


def test_extract_tolerates_missing_closing_fence_of_last_block() -> None:
    text = "```yaml\na: 1\n```\nagain:\n```yaml\nscores: []\npreference: A=B\n"
    assert extract_yaml(text) == "scores: []\npreference: A=B"


def test_extract_skips_a_trailing_empty_block() -> None:
    assert extract_yaml("```yaml\npreference: A>B\n```\n```\n```\n") == "preference: A>B"


def test_extract_keeps_indentation_inside_block() -> None:
    text = "```yaml\nscores:\n  - name: x\n    score_A: 1\n```"
    assert extract_yaml(text) == "scores:\n  - name: x\n    score_A: 1"


def test_extract_inline_backticks_are_not_a_fence() -> None:
    assert extract_yaml("use ```yaml``` fences\na: 1") == "use ```yaml``` fences\na: 1"


# --------------------------------------------------------------------------- load_judge_yaml


def test_load_json_answer() -> None:
    data = load_judge_yaml('{"preference": "A>B", "scores": [{"name": "x", "score_A": 3}]}')
    assert data == {"preference": "A>B", "scores": [{"name": "x", "score_A": 3}]}


def test_load_json_fence() -> None:
    assert load_judge_yaml('```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}


def test_load_uses_last_fenced_block() -> None:
    assert load_judge_yaml("```yaml\na: 1\n```\n```yaml\nb: 2\n```") == {"b": 2}


def test_load_refuses_oversized_answer_naming_the_size() -> None:
    text = "a: " + "x" * MAX_ANSWER_CHARS
    with pytest.raises(ParseError, match=r"100,003 characters.*100,000"):
        load_judge_yaml(text)


def test_load_size_limit_is_configurable() -> None:
    assert load_judge_yaml("a: 1", max_chars=4) == {"a": 1}
    with pytest.raises(ParseError, match="limit of 3"):
        load_judge_yaml("a: 1", max_chars=3)


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_is_refused_before_anything_expands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(*args: object, **kwargs: object) -> object:
        raise AssertionError("the document reached the YAML composer")

    monkeypatch.setattr(loading.yaml, "safe_load", never)
    monkeypatch.setattr(loading.yaml, "compose", never)
    monkeypatch.setattr(loading.yaml, "load", never)
    start = time.perf_counter()
    with pytest.raises(ParseError, match="anchors and aliases"):
        load_judge_yaml("```yaml\n" + BILLION_LAUGHS + "```")
    assert time.perf_counter() - start < 1.0


def test_billion_laughs_through_parse_pass_is_a_parse_error(rubric: Rubric) -> None:
    with pytest.raises(ParseError, match="not allowed"):
        parse_pass(BILLION_LAUGHS, rubric)


def test_a_lone_anchor_or_alias_is_refused() -> None:
    with pytest.raises(ParseError, match="anchors and aliases"):
        load_judge_yaml("a: &x 1\nb: 2")
    with pytest.raises(ParseError, match="anchors and aliases"):
        load_judge_yaml("a: *x")


def test_merge_keys_are_refused() -> None:
    with pytest.raises(ParseError, match="anchors and aliases"):
        load_judge_yaml("base: &b {x: 1}\nchild:\n  <<: *b\n")


def test_deep_nesting_is_refused_quickly() -> None:
    start = time.perf_counter()
    with pytest.raises(ParseError, match="nested"):
        load_judge_yaml("[" * 50_000)
    assert time.perf_counter() - start < 2.0


def test_python_tags_are_refused() -> None:
    with pytest.raises(ParseError, match="tags"):
        load_judge_yaml("a: !!python/object/apply:os.system ['echo hi']")


def test_syntax_error_names_line_and_problem() -> None:
    with pytest.raises(ParseError) as info:
        load_judge_yaml("```yaml\nscores:\n  - name: x\n    justification_A: a: b\n```")
    message = str(info.value)
    assert "mapping values are not allowed" in message
    assert "line 3" in message
    assert "double quotes" in message


def test_tabs_get_a_hint() -> None:
    with pytest.raises(ParseError, match="spaces, not tabs"):
        load_judge_yaml("a:\n\t- 1")


def test_several_documents_are_a_parse_error() -> None:
    with pytest.raises(ParseError, match="single document"):
        load_judge_yaml("a: 1\n---\nb: 2\n")


def test_empty_answer_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="empty"):
        load_judge_yaml("   \n")


# --------------------------------------------------------------------------- parse_label


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("A>B", "A>B"),
        ("B>A", "B>A"),
        ("A=B", "A=B"),
        ("A=B (bothbad)", "A=B (bothbad)"),
        (" b>a ", "B>A"),
        ("a = b", "A=B"),
        ("a = b (BothBad)", "A=B (bothbad)"),
        ("A=B(BOTHBAD)", "A=B (bothbad)"),
        ("A=B (both bad)", "A=B (bothbad)"),
        ("[[B>A]]", "B>A"),
        ("[[ a > b ]]", "A>B"),
        ("[[A=B (bothbad)]]", "A=B (bothbad)"),
        ("`A>B`", "A>B"),
        (["B>A"], "B>A"),
        ([["B>A"]], "B>A"),  # YAML reads an unquoted [[B>A]] as a nested list
    ],
)
def test_label_grammar(text: object, label: str) -> None:
    assert parse_label(text) == label


@pytest.mark.parametrize(
    "value", ["A>>B", "A", "B is better", "A<B", "[[C>A]]", "", 1, True, ["A>B", "B>A"], {}]
)
def test_bad_labels_list_the_four_labels(value: object) -> None:
    with pytest.raises(ParseError) as info:
        parse_label(value)
    assert "is not one of A>B, B>A, A=B, A=B (bothbad)" in str(info.value)


def test_bad_label_message_quotes_the_value() -> None:
    with pytest.raises(ParseError, match=r"preference 'A>>B' is not one of"):
        parse_label("A>>B")


def test_missing_label() -> None:
    with pytest.raises(ParseError, match="preference is missing"):
        parse_label(None)


# --------------------------------------------------------------------------- coerce_score


@pytest.mark.parametrize(
    ("value", "expected"),
    [(4, 4), ("4", 4), (" 5 ", 5), (4.0, 4), ("4.0", 4), (1, 1), (5, 5)],
)
def test_scale_scores_accepted(value: object, expected: int) -> None:
    result = coerce_score(scale(), value, field="score_A")
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (3.5, "must be an integer 1-5 (scale), got 3.5"),
        ("four", "must be an integer 1-5 (scale), got 'four'"),
        (0, "is 0, outside 1-5"),
        (6, "is 6, outside 1-5"),
        ("6", "is 6, outside 1-5"),
        (True, "must be an integer 1-5 (scale), got true"),
        (False, "got false"),
        (float("nan"), "must be an integer"),
        ([4], "must be an integer"),
        (None, "score_A is missing"),
    ],
)
def test_scale_scores_refused(value: object, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        coerce_score(scale(), value, field="score_A")
    message = str(info.value)
    assert message.startswith("criterion 'accuracy': score_A")
    assert fragment in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("TRUE", True),
        ("no", False),
        ("Yes", True),
        ("false", False),
        (1, True),
        (0, False),
        ("1", True),
        ("0", False),
    ],
)
def test_binary_scores_accepted(value: object, expected: bool) -> None:
    assert coerce_score(binary(), value, field="score_B") is expected


@pytest.mark.parametrize("value", ["maybe", 2, 4, "", 0.5, None])
def test_binary_scores_refused(value: object) -> None:
    with pytest.raises(ParseError, match=r"^criterion 'cites_source': score_B"):
        coerce_score(binary(), value, field="score_B")


# --------------------------------------------------------------------------- parse_rubric


def test_spec_rubric_parses_exactly() -> None:
    result = parse_rubric(SPEC_RUBRIC)
    assert result.names == ("accuracy", "completeness", "clarity")
    assert [c.weight for c in result.criteria] == [0.5, 0.3, 0.2]
    assert {c.type for c in result.criteria} == {"scale"}
    assert result.criteria[0].description == (
        "Whether the facts about the student newspapers are correct."
    )
    assert result.source == "judge"
    assert result.warnings == ()


def test_rubric_as_json() -> None:
    text = (
        '{"criteria": [{"name": "a", "description": "x", "weight": 1, "type": "scale"},'
        ' {"name": "b", "description": "y", "weight": 1, "type": "binary"}]}'
    )
    result = parse_rubric(text)
    assert result.names == ("a", "b")
    criterion = result.get("b")
    assert criterion is not None
    assert criterion.type == "binary"


def test_rubric_criteria_as_mapping() -> None:
    text = """\
criteria:
  accuracy: {description: Facts are right., weight: 0.6, type: scale}
  cites_source:
    description: Names a source.
    weight: 0.4
    type: binary
"""
    result = parse_rubric(text)
    assert result.names == ("accuracy", "cites_source")
    assert result.criteria[1].type == "binary"
    assert result.criteria[1].description == "Names a source."
    assert result.criteria[0].weight == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("written", "expected"),
    [(None, "scale"), ("Scale", "scale"), ("binary", "binary"), ("bool", "binary"),
     ("Boolean", "binary")],
)  # fmt: skip
def test_rubric_types(written: str | None, expected: str) -> None:
    type_line = f"\n    type: {written}" if written is not None else ""
    text = f"criteria:\n  - name: a\n    weight: 0.5{type_line}\n  - name: b\n    weight: 0.5\n"
    assert parse_rubric(text).criteria[0].type == expected


def test_rubric_unknown_type_is_refused() -> None:
    text = "criteria:\n  - {name: a, weight: 1, type: likert}\n  - {name: b, weight: 1}\n"
    with pytest.raises(ParseError, match="criterion 'a': type 'likert' is not scale or binary"):
        parse_rubric(text)


@pytest.mark.parametrize(
    ("weight", "fragment"),
    [
        ("-0.5", "criterion 'a': weight is -0.5; it must be greater than 0"),
        ("0", "criterion 'a': weight is 0; it must be greater than 0"),
        ("heavy", "criterion 'a': weight 'heavy' is not a number"),
        ("true", "criterion 'a': weight true is not a number"),
        (".inf", "criterion 'a': weight inf is not a number"),
        ("null", "criterion 'a': weight is missing"),
    ],
)
def test_rubric_bad_weights(weight: str, fragment: str) -> None:
    text = f"criteria:\n  - {{name: a, weight: {weight}}}\n  - {{name: b, weight: 0.5}}\n"
    with pytest.raises(ParseError) as info:
        parse_rubric(text)
    assert fragment in str(info.value)


def test_rubric_numeric_string_weight_is_accepted() -> None:
    text = "criteria:\n  - {name: a, weight: '0.5'}\n  - {name: b, weight: 0.5}\n"
    assert [c.weight for c in parse_rubric(text).criteria] == [0.5, 0.5]


def test_rubric_weights_summing_to_three_are_renormalized_with_warning() -> None:
    text = (
        "criteria:\n"
        "  - {name: a, weight: 2}\n  - {name: b, weight: 0.5}\n  - {name: c, weight: 0.5}\n"
    )
    result = parse_rubric(text)
    assert [c.weight for c in result.criteria] == pytest.approx([2 / 3, 1 / 6, 1 / 6])
    assert any("summed to 3" in w and "renormalized" in w for w in result.warnings)


def test_rubric_weights_within_tolerance_are_kept() -> None:
    text = "criteria:\n  - {name: a, weight: 0.5}\n  - {name: b, weight: 0.505}\n"
    result = parse_rubric(text)
    assert [c.weight for c in result.criteria] == [0.5, 0.505]
    assert result.warnings == ()


def test_rubric_name_normalization_records_warning() -> None:
    text = (
        "criteria:\n"
        "  - {name: Factual Accuracy, weight: 0.5}\n"
        "  - {name: 'Précision — des faits!', weight: 0.25}\n"
        f"  - {{name: {'Very ' * 12}Long, weight: 0.25}}\n"
    )
    result = parse_rubric(text)
    assert result.names[0] == "factual_accuracy"
    assert result.names[1] == "precision_des_faits"
    assert len(result.names[2]) <= 40
    assert result.names[2].startswith("very_very_")
    assert not result.names[2].endswith("_")
    assert "criterion name 'Factual Accuracy' normalized to 'factual_accuracy'" in result.warnings
    assert len([w for w in result.warnings if "normalized to" in w]) == 3


def test_rubric_snake_case_names_get_no_warning() -> None:
    assert parse_rubric(SPEC_RUBRIC).warnings == ()


def test_rubric_name_must_start_with_a_letter() -> None:
    text = "criteria:\n  - {name: 1st point, weight: 1}\n  - {name: b, weight: 1}\n"
    with pytest.raises(ParseError, match="'1st point' must start with a letter"):
        parse_rubric(text)


def test_rubric_repeated_names_are_kept_renamed_with_a_warning() -> None:
    text = (
        "criteria:\n  - {name: accuracy, weight: 1}\n  - {name: Accuracy, weight: 1}\n"
        "  - {name: accuracy, weight: 1}\n"
    )
    rubric = parse_rubric(text)
    assert rubric.names == ("accuracy", "accuracy_2", "accuracy_3")
    assert "criterion name 'Accuracy' repeats 'accuracy'; renamed 'accuracy_2'" in rubric.warnings


_NAMES = st.sampled_from(["a", "A", "a_2", "x" * 40, "X" * 40, "x" * 38 + "_2"])


@given(st.lists(_NAMES, min_size=2, max_size=8))
def test_rubric_names_are_unique_and_valid_whatever_repeats(names: list[str]) -> None:
    text = "criteria:\n" + "".join(f"  - {{name: {n}, weight: 1}}\n" for n in names)
    rubric = parse_rubric(text)
    assert len(set(rubric.names)) == len(names)
    assert all(1 <= len(n) <= 40 for n in rubric.names)


@pytest.mark.parametrize("count", [1, 9])
def test_rubric_count_outside_limits(count: int) -> None:
    text = "criteria:\n" + "".join(f"  - {{name: c{i}, weight: 1}}\n" for i in range(count))
    with pytest.raises(ParseError, match=f"rubric has {count} criteri.*between 2 and 8"):
        parse_rubric(text)


def test_rubric_count_limits_are_configurable() -> None:
    text = "criteria:\n  - {name: only, weight: 1}\n"
    assert parse_rubric(text, min_criteria=1).names == ("only",)
    two = "criteria:\n  - {name: a, weight: 1}\n  - {name: b, weight: 1}\n"
    with pytest.raises(ParseError, match="rubric has 2 criteria; write between 3 and 4"):
        parse_rubric(two, min_criteria=3, max_criteria=4)


def test_rubric_reports_every_problem_at_once() -> None:
    text = "criteria:\n  - {name: a, weight: 0}\n  - {name: b, weight: 1, type: likert}\n"
    with pytest.raises(ParseError) as info:
        parse_rubric(text)
    message = str(info.value)
    assert "criterion 'a': weight is 0" in message
    assert "criterion 'b': type 'likert'" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- {name: a, weight: 1}\n- {name: b, weight: 1}\n", "it is a list"),
        ("The rubric is accuracy and clarity.", "it is a string"),
        ("42", "it is a number"),
        ("rubric:\n  - {name: a}\n", "no 'criteria' key (found keys: rubric)"),
        ("criteria: accuracy", "criteria is a string"),
        ("criteria:\n", "criteria is empty"),
        ("criteria:\n  - accuracy\n  - clarity\n", "criteria item 1 is a string"),
        ("criteria:\n  - {description: x, weight: 1}\n  - {name: b, weight: 1}\n", "no name"),
        ("criteria:\n  a: 0.5\n  b: 0.5\n", "criterion 'a' is a number"),
    ],
)
def test_rubric_wrong_shapes(text: str, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_rubric(text)
    assert fragment in str(info.value)
    assert "pydantic" not in str(info.value)


def test_rubric_no_yaml_message_lists_expected_key() -> None:
    with pytest.raises(ParseError, match=r"answer has no YAML mapping .*expected keys criteria"):
        parse_rubric("I think accuracy matters most.")


def test_rubric_bad_limits_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="min_criteria"):
        parse_rubric(SPEC_RUBRIC, min_criteria=5, max_criteria=2)


# --------------------------------------------------------------------------- parse_pass


def test_spec_pass_parses_exactly(rubric: Rubric) -> None:
    result = parse_pass(SPEC_PASS, rubric)
    assert result.preference == "B>A"
    assert result.overall_justification == "Response B is more accurate and complete."
    assert [s.name for s in result.scores] == ["accuracy", "completeness", "clarity"]
    assert [(s.score_a, s.score_b) for s in result.scores] == [(2, 4), (1, 5), (2, 5)]
    first = result.scores[0]
    assert first.justification_a == "Gives a number with no context."
    assert first.justification_b == "Names the publications and says the count varies."
    assert result.warnings == ()


def test_pass_as_json(rubric: Rubric) -> None:
    text = (
        '```json\n{"scores": [{"name": "accuracy", "score_A": 2, "score_B": 4},'
        ' {"name": "completeness", "score_A": "1", "score_B": 5.0},'
        ' {"name": "clarity", "score_A": 2, "score_B": 5}], "preference": "[[B>A]]"}\n```'
    )
    result = parse_pass(text, rubric)
    assert result.preference == "B>A"
    assert result.scores[1].score_a == 1 and result.scores[1].score_b == 5
    assert result.overall_justification == ""


def test_pass_scores_as_mapping_in_rubric_order(rubric: Rubric) -> None:
    text = """\
scores:
  clarity: {score_A: 2, score_B: 5}
  accuracy: {score_A: 2, score_B: 4, justification_A: vague, justification_B: precise}
  completeness: {score_A: 1, score_B: 5}
preference: B>A
"""
    result = parse_pass(text, rubric)
    assert [s.name for s in result.scores] == ["accuracy", "completeness", "clarity"]
    assert result.scores[0].justification_a == "vague"
    assert result.scores[0].justification_b == "precise"
    assert result.scores[2].score_b == 5


def test_pass_keys_are_case_insensitive(rubric: Rubric) -> None:
    text = """\
Scores:
  - Name: accuracy
    score_a: 2
    SCORE_B: 4
    Justification_a: vague
  - {name: completeness, score_a: 1, score_b: 5}
  - {name: clarity, score_a: 2, score_b: 5}
Preference: B>A
Overall_Justification: B wins.
"""
    result = parse_pass(text, rubric)
    assert result.scores[0].score_b == 4
    assert result.scores[0].justification_a == "vague"
    assert result.overall_justification == "B wins."


def test_pass_names_matched_after_normalization(rubric: Rubric) -> None:
    text = pass_yaml({"Accuracy": (2, 4), "'Completeness '": (1, 5), "CLARITY": (2, 5)})
    result = parse_pass(text, rubric)
    assert [s.name for s in result.scores] == ["accuracy", "completeness", "clarity"]
    assert result.warnings == ()


def test_pass_missing_criteria_are_named(rubric: Rubric) -> None:
    with pytest.raises(ParseError) as info:
        parse_pass(pass_yaml({"accuracy": (2, 4)}), rubric)
    assert "criteria not scored: 'completeness', 'clarity'" in str(info.value)


def test_pass_empty_scores_name_every_criterion(rubric: Rubric) -> None:
    with pytest.raises(ParseError, match="'accuracy', 'completeness', 'clarity'"):
        parse_pass("scores: []\npreference: A>B\n", rubric)


def test_pass_missing_scores_key(rubric: Rubric) -> None:
    with pytest.raises(ParseError, match="scores is missing"):
        parse_pass("preference: A>B\n", rubric)


def test_pass_duplicate_criterion_is_refused(rubric: Rubric) -> None:
    text = pass_yaml(ROW_0).replace(
        "preference:", "  - name: Accuracy\n    score_A: 5\n    score_B: 5\npreference:"
    )
    with pytest.raises(ParseError, match="criterion 'accuracy' is scored more than once"):
        parse_pass(text, rubric)


def test_pass_unknown_criterion_is_ignored_with_warning(rubric: Rubric) -> None:
    result = parse_pass(pass_yaml({**ROW_0, "style": (5, 1)}), rubric)
    assert [s.name for s in result.scores] == ["accuracy", "completeness", "clarity"]
    assert "ignored score for unknown criterion 'style'" in result.warnings


def test_pass_missing_score_names_criterion_and_field(rubric: Rubric) -> None:
    text = pass_yaml(ROW_0).replace("    score_B: 4\n", "")
    with pytest.raises(ParseError, match="criterion 'accuracy': score_B is missing"):
        parse_pass(text, rubric)


def test_pass_out_of_range_score(rubric: Rubric) -> None:
    with pytest.raises(ParseError, match="criterion 'clarity': score_A is 7, outside 1-5"):
        parse_pass(pass_yaml({**ROW_0, "clarity": (7, 5)}), rubric)


def test_pass_binary_criterion_scores(rubric: Rubric) -> None:
    mixed = Rubric.of(
        [{"name": "accuracy", "weight": 0.5}, {"name": "cites", "weight": 0.5, "type": "binary"}]
    )
    result = parse_pass(pass_yaml({"accuracy": (3, 3), "cites": ("no", '"true"')}), mixed)
    assert (result.scores[1].score_a, result.scores[1].score_b) == (False, True)


def test_pass_missing_preference(rubric: Rubric) -> None:
    text = pass_yaml(ROW_0).replace("preference: B>A\n", "")
    with pytest.raises(ParseError, match="preference is missing"):
        parse_pass(text, rubric)


def test_pass_bad_preference(rubric: Rubric) -> None:
    with pytest.raises(ParseError, match="preference 'B' is not one of A>B, B>A, A=B"):
        parse_pass(pass_yaml(ROW_0, preference="B"), rubric)


def test_pass_unquoted_double_bracket_label(rubric: Rubric) -> None:
    assert parse_pass(pass_yaml(ROW_0, preference="[[B>A]]"), rubric).preference == "B>A"


def test_pass_bothbad_label(rubric: Rubric) -> None:
    text = pass_yaml({"accuracy": (1, 1), "completeness": (1, 1), "clarity": (1, 1)},
                     preference="a=b (BothBad)")  # fmt: skip
    assert parse_pass(text, rubric).preference == "A=B (bothbad)"


def test_pass_reports_every_problem_at_once(rubric: Rubric) -> None:
    text = pass_yaml({"accuracy": ("four", 4), "completeness": (1, 9)}, preference="A>>B")
    with pytest.raises(ParseError) as info:
        parse_pass(text, rubric)
    message = str(info.value)
    assert "preference 'A>>B'" in message
    assert "criterion 'accuracy': score_A must be an integer 1-5" in message
    assert "criterion 'completeness': score_B is 9" in message
    assert "criteria not scored: 'clarity'" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- name: accuracy\n  score_A: 1\n", "answer has no YAML mapping (it is a list)"),
        ("B is clearly better than A.", "answer has no YAML mapping (it is a string)"),
        ("scores: 4\npreference: A>B\n", "scores is a number"),
        ("scores:\n  - 4\npreference: A>B\n", "scores item 1 is a number"),
        ("scores:\n  - {score_A: 1}\npreference: A>B\n", "scores item 1 has no name"),
        ("scores:\n  accuracy: 4\npreference: A>B\n", "scores entry 'accuracy' is a number"),
    ],
)
def test_pass_wrong_shapes(rubric: Rubric, text: str, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_pass(text, rubric)
    assert fragment in str(info.value)


def test_pass_prose_without_yaml_lists_expected_keys(rubric: Rubric) -> None:
    with pytest.raises(
        ParseError,
        match=r"answer has no YAML mapping .*expected keys scores, overall_justification, "
        r"preference",
    ):
        parse_pass("After careful thought, I prefer the second response.", rubric)


def test_pass_label_contradicting_scores_is_kept_with_warning(rubric: Rubric) -> None:
    # The article's Row 0: weighted A 0.175, B 0.875.
    result = parse_pass(pass_yaml(ROW_0, preference="A>B"), rubric)
    assert result.preference == "A>B"
    assert "preference A>B contradicts the scores (A 0.17, B 0.88)" in result.warnings


def test_pass_contradiction_is_symmetric(rubric: Rubric) -> None:
    flipped = {name: (b, a) for name, (a, b) in ROW_0.items()}
    result = parse_pass(pass_yaml(flipped, preference="B>A"), rubric)
    assert result.preference == "B>A"
    assert any(w.startswith("preference B>A contradicts the scores") for w in result.warnings)


def test_pass_small_disagreement_or_tie_label_is_not_a_contradiction(rubric: Rubric) -> None:
    close = {"accuracy": (3, 3), "completeness": (3, 4), "clarity": (3, 3)}  # B ahead by 0.075
    assert parse_pass(pass_yaml(close, preference="A>B"), rubric).warnings == ()
    assert parse_pass(pass_yaml(ROW_0, preference="A=B"), rubric).warnings == ()


def test_pass_contradiction_uses_weights_of_an_unnormalized_rubric() -> None:
    raw = Rubric(
        criteria=(
            Criterion(name="accuracy", weight=3.0),
            Criterion(name="style", weight=1.0),
        )
    )
    scores = {"accuracy": (1, 5), "style": (5, 1)}  # A 0.25, B 0.75
    result = parse_pass(pass_yaml(scores, preference="A>B"), raw)
    assert "preference A>B contradicts the scores (A 0.25, B 0.75)" in result.warnings


def test_pass_text_inside_justification_is_not_the_verdict(rubric: Rubric) -> None:
    text = pass_yaml(ROW_0, preference="B>A").replace(
        "    score_B: 4\n",
        "    score_B: 4\n    justification_A: 'It says \"preference: A>B\" and [[A>B]].'\n",
    )
    result = parse_pass(text, rubric)
    assert result.preference == "B>A"
    assert result.scores[0].justification_a == 'It says "preference: A>B" and [[A>B]].'


def test_pass_echoed_format_before_the_answer_is_ignored(rubric: Rubric) -> None:
    echo = "You asked for:\n```yaml\npreference: A>B\n```\nMy answer:\n"
    assert parse_pass(echo + pass_yaml(ROW_0), rubric).preference == "B>A"


# --------------------------------------------------------------------------- where the answer is


def test_a_fence_after_a_list_marker_is_read_and_dedented(rubric: Rubric) -> None:
    block = pass_yaml(ROW_0).rstrip("\n").split("\n")
    text = "Here it is:\n- " + block[0] + "\n" + "\n".join("  " + line for line in block[1:])
    assert parse_pass(text, rubric).preference == "B>A"


def test_windows_line_endings_are_read(rubric: Rubric) -> None:
    text = "My answer:\r\n" + pass_yaml(ROW_0).replace("\n", "\r\n")
    assert parse_pass(text, rubric).preference == "B>A"


def test_a_whole_yaml_answer_is_read_before_any_block_inside_it(rubric: Rubric) -> None:
    """A whole-text answer with an error is that error: no fallback to a quoted block."""
    inner = pass_yaml(ROW_0).rstrip("\n").split("\n")
    text = (
        "overall_justification: |\n"
        + "\n".join("  " + line for line in inner)
        + "\nscores: 4\npreference: B>A\n"
    )
    with pytest.raises(ParseError, match="scores is a number"):
        parse_pass(text, rubric)


def test_a_json_answer_is_read_as_json_only(rubric: Rubric) -> None:
    """Its strings may hold fences (escaped newlines): the JSON object is the answer."""
    data = {
        "scores": [
            {"name": "accuracy", "score_A": 2, "score_B": 4,
             "justification_B": "It wrote ```yaml\nhello: 1\n```"},
            {"name": "completeness", "score_A": 1, "score_B": 5},
            {"name": "clarity", "score_A": 2, "score_B": 5},
        ],
        "preference": "B>A",
    }  # fmt: skip
    result = parse_pass(json.dumps(data), rubric)
    assert result.preference == "B>A"
    assert result.scores[0].justification_b == "It wrote ```yaml\nhello: 1\n```"


def test_the_last_block_that_is_an_answer_is_read(rubric: Rubric) -> None:
    text = pass_yaml(ROW_0) + "\nFor reference, the format:\n```yaml\nscores: []\n```\n"
    assert parse_pass(text, rubric).preference == "B>A"


def test_when_no_block_is_an_answer_the_last_blocks_problem_is_reported(rubric: Rubric) -> None:
    text = "```yaml\nscores: 1\n```\n```yaml\npreference: A>B\n```\n"
    with pytest.raises(ParseError, match="scores is missing"):
        parse_pass(text, rubric)


# --------------------------------------------------------------------------- render_error_hint


def test_render_error_hint_plain() -> None:
    error = ParseError("criterion 'accuracy': score_B is missing")
    assert render_error_hint(error, "stop") == "criterion 'accuracy': score_B is missing"
    assert render_error_hint(error, None) == "criterion 'accuracy': score_B is missing"


def test_render_error_hint_cut_off() -> None:
    hint = render_error_hint(ParseError("answer is not valid YAML"), "length")
    assert hint.startswith("answer is not valid YAML")
    assert "cut off at max_tokens" in hint
    assert "--judge-max-tokens" in hint
