"""No exception but `ParseError` leaves the parser, whatever the judge writes.

A `ParseError` earns the judge one repair request and, after a second failure, a judge
error; any other exception would escape as a crash of the test. Huge numbers, overflowing
weights, bad Unicode, odd YAML types and deep nesting are all parse errors, and on any text
at all (property-based, surrogates included) the three entry points return a result or
raise `ParseError`.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rubric_judge import parsing
from pytest_rubric_judge.errors import ParseError
from pytest_rubric_judge.models import CallInfo, Criterion, Rubric
from pytest_rubric_judge.parsing import parse_grade, parse_pass, parse_rubric
from pytest_rubric_judge.scoring import build_verdict, orient, weighted_score

RUBRIC = Rubric.of(
    [
        {"name": "accuracy", "weight": 0.5},
        {"name": "completeness", "weight": 0.3},
        {"name": "cites_source", "weight": 0.2, "type": "binary"},
    ]
)
HUGE = "1" + "0" * 5000


def pass_answer(accuracy_a: str = "4", weight_note: str = "") -> str:
    return (
        "scores:\n"
        f"  - {{name: accuracy, score_A: {accuracy_a}, score_B: 2}}\n"
        "  - {name: completeness, score_A: 3, score_B: 2}\n"
        "  - {name: cites_source, score_A: true, score_B: false}\n"
        f"preference: A>B\n{weight_note}"
    )


def grade_answer(score: str = "4") -> str:
    return (
        f"scores:\n  - {{name: accuracy, score: {score}}}\n  - {{name: completeness, score: 3}}\n"
        "  - {name: cites_source, score: true}\n"
    )


# --------------------------------------------------------------------------- huge numbers


@pytest.mark.parametrize(
    "answer",
    [
        pass_answer(HUGE),
        pass_answer("-" + HUGE),
        pass_answer("0x" + "f" * 5000),
        pass_answer("0b" + "1" * 20_000),
        pass_answer("0o" + "7" * 5000),
        pass_answer(HUGE + ".0"),
        pass_answer('"' + HUGE + '"'),
        pass_answer("1_" + "0" * 5000),
    ],
    ids=["decimal", "negative", "hex", "binary", "octal", "float", "string", "underscores"],
)
def test_a_huge_number_in_yaml_is_a_parse_error(answer: str) -> None:
    with pytest.raises(ParseError):
        parse_pass(answer, RUBRIC)


def test_a_huge_number_in_json_is_a_parse_error() -> None:
    data = {
        "scores": [
            {"name": "accuracy", "score_A": 4, "score_B": 2},
            {"name": "completeness", "score_A": 3, "score_B": 2},
            {"name": "cites_source", "score_A": True, "score_B": False},
        ],
        "preference": "A>B",
    }
    text = json.dumps(data).replace('"score_A": 4', f'"score_A": {HUGE}')
    with pytest.raises(ParseError, match="too long"):
        parse_pass(text, RUBRIC)
    with pytest.raises(ParseError):
        parse_grade(grade_answer(HUGE), RUBRIC)


@pytest.mark.parametrize(
    "weight", [HUGE, "0x" + "f" * 5000, f'"{HUGE}"'], ids=["decimal", "hex", "string"]
)
def test_a_huge_weight_is_a_parse_error(weight: str) -> None:
    with pytest.raises(ParseError):
        parse_rubric(f"criteria:\n  - {{name: a, weight: {weight}}}\n  - {{name: b, weight: 1}}\n")
    text = json.dumps({"criteria": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]})
    with pytest.raises(ParseError):
        parse_rubric(text.replace('"weight": 1}', f'"weight": {HUGE}}}', 1))


# --------------------------------------------------------------------------- weights


def test_weights_of_1e308_are_normalized_without_overflow() -> None:
    text = (
        "criteria:\n  - {name: a, weight: 1e308}\n  - {name: b, weight: 1.0e+308}\n"
        "  - {name: c, weight: 1.7e308}\n"
    )
    rubric = parse_rubric(text)
    assert all(math.isfinite(c.weight) and c.weight > 0 for c in rubric.criteria)
    assert sum(c.weight for c in rubric.criteria) == pytest.approx(1.0)
    grade = parse_grade(
        "scores:\n  - {name: a, score: 5}\n  - {name: b, score: 5}\n  - {name: c, score: 5}\n",
        rubric,
    )
    assert weighted_score(rubric, grade.scores) == pytest.approx(1.0)


def test_a_user_rubric_of_1e308_weights_scores_a_perfect_answer_1() -> None:
    raw = Rubric(criteria=tuple(Criterion(name=n, weight=1e308) for n in ("a", "b", "c")))
    answer = "scores:\n  - {name: a, score: 5}\n  - {name: b, score: 5}\n  - {name: c, score: 5}\n"
    assert weighted_score(raw, parse_grade(answer, raw).scores) == pytest.approx(1.0)
    assert Rubric.of(raw).criteria[0].weight == pytest.approx(1 / 3)


def test_pairwise_with_1e308_weights_does_not_divide_by_zero() -> None:
    raw = Rubric(criteria=tuple(Criterion(name=n, weight=1e308) for n in ("a", "b")))
    text = (
        "scores:\n  - {name: a, score_A: 1, score_B: 5}\n  - {name: b, score_A: 1, score_B: 5}\n"
        "preference: A>B\n"
    )
    slot = parse_pass(text, raw)
    forward = orient(slot, raw, "forward", CallInfo())
    assert (forward.weighted_a, forward.weighted_b) == pytest.approx((0.0, 1.0))
    verdict = build_verdict(raw, forward, orient(slot, raw, "reversed", CallInfo()))
    assert math.isfinite(verdict.margin)


def test_own_criteria_with_a_penalty_whose_weights_sum_to_zero() -> None:
    rubric = Rubric.of(
        [{"name": "helpful", "weight": 1.0}, {"name": "invents_facts", "weight": -1.0}]
    )
    text = (
        "scores:\n  - {name: helpful, score_A: 5, score_B: 3}\n"
        "  - {name: invents_facts, score_A: 1, score_B: 5}\npreference: A>B\n"
    )
    slot = parse_pass(text, rubric)
    assert slot.preference == "A>B"
    forward = orient(slot, rubric, "forward", CallInfo())
    assert forward.weighted_a == pytest.approx(1.0)
    assert forward.weighted_b == pytest.approx(0.0)  # 0.5 - 1.0, clipped


def test_weights_too_far_apart_to_normalize_are_a_parse_error() -> None:
    with pytest.raises(ParseError, match="weight"):
        parse_rubric("criteria:\n  - {name: a, weight: 1e308}\n  - {name: b, weight: 1e-320}\n")


# --------------------------------------------------------------------------- bad Unicode


@pytest.mark.parametrize("where", ["top", "justification", "name", "label"])
def test_a_lone_surrogate_in_the_answer_is_a_parse_error(where: str) -> None:
    text = {
        "top": "\ud800" + pass_answer(),
        "justification": pass_answer().replace("score_B: 2}", "score_B: 2, justification_A: x\udfff}", 1),
        "name": pass_answer().replace("accuracy", "accu\ud83dracy"),
        "label": pass_answer().replace("A>B", "A>B\udc00"),
    }[where]
    with pytest.raises(ParseError, match="surrogate"):
        parse_pass(text, RUBRIC)
    with pytest.raises(ParseError, match="surrogate"):
        parse_pass(f"```yaml\n{text}\n```", RUBRIC)


def test_an_escaped_lone_surrogate_in_json_is_replaced_in_free_text() -> None:
    text = json.dumps(
        {
            "scores": [
                {"name": "accuracy", "score_A": 4, "score_B": 2, "justification_A": "x\ud800y"},
                {"name": "completeness", "score_A": 3, "score_B": 2},
                {"name": "cites_source", "score_A": True, "score_B": False},
            ],
            "overall_justification": "\udfff",
            "preference": "A>B",
        }
    )
    assert "\\ud800" in text  # JSON escapes it: the text itself is valid
    result = parse_pass(text, RUBRIC)
    assert result.scores[0].justification_a == "x\ufffdy"
    assert result.overall_justification == "\ufffd"
    result.scores[0].justification_a.encode("utf-8")  # writable anywhere


def test_an_escaped_surrogate_in_an_error_message_is_escaped() -> None:
    text = json.dumps({"scores": [], "preference": "A\ud800B"})
    with pytest.raises(ParseError) as caught:
        parse_pass(text, RUBRIC)
    str(caught.value).encode("utf-8")


# --------------------------------------------------------------------------- odd YAML


@pytest.mark.parametrize(
    "value",
    [
        "2024-13-45",  # looks like a date, is not one
        "2024-02-30 25:61:61",
        "=",
        "!!int abc",
        "!!bool maybe",
        "!!timestamp nope",
        "!!float x",
        "!!binary ÿ",
        "!!python/name:os.system",
        "!<tag:yaml.org,2002:int> x",
        "!!set {a, b}",
        "!!omap [a]",
    ],
)
def test_odd_yaml_values_are_read_or_refused(value: str) -> None:
    text = pass_answer().replace("score_B: 2}", f"score_B: 2, justification_A: {value}}}", 1)
    try:
        result = parse_pass(text, RUBRIC)
    except ParseError:
        return
    assert result.preference == "A>B"


def test_explicit_tags_are_refused() -> None:
    with pytest.raises(ParseError, match="tags"):
        parse_pass(pass_answer().replace("score_A: 4", "score_A: !!int 4"), RUBRIC)


def test_an_inline_merge_key_is_refused() -> None:
    text = pass_answer().replace(
        "{name: accuracy,", "{<<: {score_A: 1}, name: accuracy,"
    )
    with pytest.raises(ParseError, match="merge"):
        parse_pass(text, RUBRIC)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "{" * 100_000,
        '{"scores": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"a": ' * 50 + "1" + "}" * 50,
        "- " * 60 + "x",
        "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 60)),
    ],
    ids=["flow-lists", "flow-maps", "json-lists", "json-maps", "block-lists", "block-maps"],
)
def test_deep_nesting_is_a_parse_error(text: str) -> None:
    with pytest.raises(ParseError, match="nested"):
        parse_pass(text, RUBRIC)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_json_numbers_are_refused(value: str) -> None:
    text = json.dumps({"scores": [{"name": "accuracy", "score_A": 4, "score_B": 2}]})
    with pytest.raises(ParseError):
        parse_pass(text.replace("4", value, 1), RUBRIC)
    with pytest.raises(ParseError):
        parse_rubric(f'{{"criteria": [{{"name": "a", "weight": {value}}}, {{"name": "b", "weight": 1}}]}}')


def test_a_defect_in_reading_still_surfaces_as_a_parse_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last resort: an exception nobody foresaw becomes a ParseError (a repair request,
    then a judge error), never a crash. The property tests check that it is never needed."""

    def broken(*args: object, **kwargs: object) -> object:
        raise KeyError("unforeseen")

    monkeypatch.setattr(parsing, "_pass_from", broken)
    with pytest.raises(ParseError, match=r"could not be read \(KeyError\)") as caught:
        parse_pass(pass_answer(), RUBRIC)
    assert isinstance(caught.value.__cause__, KeyError)


# --------------------------------------------------------------------------- properties

ROBUSTNESS = settings(
    max_examples=500,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

#: Every code point, lone surrogates included.
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=300)

FRAGMENTS = st.sampled_from(
    [
        "scores:", "preference:", "criteria:", "overall_justification:", " A>B", " [[B>A]]",
        " a=b (BothBad)", "  - name: accuracy", "  - name: a", "    score_A: ", "    score_B: ",
        "    score: ", "    weight: ", "    type: binary", "  accuracy: {score_A: 1, score_B: 5}",
        HUGE, "1e308", "-1e308", ".nan", ".inf", "0x" + "f" * 300, "1_000", "true", "null", "~",
        "```", "```yaml", "~~~~", "    ```", "&a", "*a", "!!int", "<<:", "? ", "|", ">-", "'",
        '"', "{", "}", "[", "]", ",", "\ud800", "\u2028", "\x85", "\x0c", "\r", "\t", "#",
        "---", "...", '{"scores": [', '"preference": "A>B"}', "2024-13-45", "=", "%YAML 1.1",
    ]
)  # fmt: skip
NEAR_ANSWERS = st.lists(
    st.tuples(FRAGMENTS, st.sampled_from(["", " ", "\n", "\n  ", ": "])), max_size=40
).map(lambda parts: "".join(a + b for a, b in parts))

USER_RUBRIC = Rubric.of(
    [
        {"name": "accuracy", "weight": 1e308},
        {"name": "a", "weight": 1.0},
        {"name": "invents", "weight": -1e300},
        {"name": "cites_source", "weight": 1e300, "type": "binary"},
    ]
)


def _result_or_parse_error(text: str) -> None:
    for call in (
        lambda: parse_rubric(text),
        lambda: parse_rubric(text, min_criteria=1, max_criteria=20),
        lambda: parse_pass(text, RUBRIC),
        lambda: parse_pass(text, USER_RUBRIC),
        lambda: parse_grade(text, RUBRIC),
        lambda: parse_grade(text, USER_RUBRIC),
    ):
        try:
            call()
        except ParseError as error:
            str(error).encode("utf-8")  # the message itself is writable
            # a real parse error, not the last-resort conversion of another exception
            assert error.__cause__ is None, repr(error.__cause__)


@ROBUSTNESS
@given(ANY_TEXT)
def test_property_any_text_gives_a_result_or_a_parse_error(text: str) -> None:
    _result_or_parse_error(text)


@ROBUSTNESS
@given(NEAR_ANSWERS)
def test_property_near_answers_give_a_result_or_a_parse_error(text: str) -> None:
    _result_or_parse_error(text)
    _result_or_parse_error(f"```yaml\n{text}\n```")


JSON_KEYS = st.sampled_from(
    ["scores", "preference", "name", "score_A", "score_B", "score", "criteria", "weight", "type"]
)


@ROBUSTNESS
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(JSON_KEYS, inner, max_size=5),
        max_leaves=30,
    )
)
def test_property_any_json_value_gives_a_result_or_a_parse_error(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)
    _result_or_parse_error(text)


def test_only_safe_loaders_read_yaml() -> None:
    """The one place YAML is read refuses any loader that can build Python objects."""
    import yaml

    from pytest_rubric_judge.loading import safe_load

    assert safe_load("a: [1, 2]", yaml.SafeLoader) == {"a": [1, 2]}
    for unsafe in (yaml.Loader, yaml.FullLoader, yaml.UnsafeLoader):
        with pytest.raises(TypeError, match="not a safe YAML loader"):
            safe_load("a: 1", unsafe)
    with pytest.raises(yaml.YAMLError):
        safe_load("!!python/object/apply:os.system ['true']", yaml.SafeLoader)
