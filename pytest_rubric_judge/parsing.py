"""Judge text -> models: the rubric, a pairwise pass, a pointwise grade.

Where the answer sits in the text, and the refusal of a text that holds a second answer
disagreeing with it, are `answers`; loading YAML and JSON safely is `loading`; fences are
`fences`; single values (labels, scores, weights, names) are `values`. This module reads
the three kinds of answer from their loaded data.

Every failure raises `ParseError` with a message written for the judge model: it is sent
back as the one repair request, so it names the criterion, the field and what is expected.
Several problems in one answer are reported together, so one repair can fix them all. No
other exception leaves `parse_rubric`, `parse_pass` or `parse_grade` for any text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TypeVar

from pydantic import ValidationError

from .answers import AnswerKind, read_answer
from .errors import ParseError
from .fences import ANSWER_INFOS, fenced_blocks
from .loading import MAX_ANSWER_CHARS, MAX_DEPTH, load_document, load_json_object, load_yaml
from .models import (
    Criterion,
    CriterionScore,
    CriterionType,
    GradeAnswer,
    GradeScore,
    Label,
    Rubric,
    ScoreValue,
    SlotScores,
)
from .scoring import CONTRADICTION_MARGIN, weighted_scores
from .values import (
    clean_text,
    coerce_score,
    keyed,
    kind_of,
    parse_criterion_type,
    parse_label,
    parse_weight,
    problems_error,
    show,
    snake_name,
    validation_message,
)

__all__ = [
    "CONTRADICTION_MARGIN",
    "MAX_ANSWER_CHARS",
    "MAX_DEPTH",
    "coerce_score",
    "extract_yaml",
    "load_judge_yaml",
    "parse_grade",
    "parse_label",
    "parse_pass",
    "parse_rubric",
    "render_error_hint",
    "snake_name",
    "yaml_blocks",
]

T = TypeVar("T")


# --------------------------------------------------------------------------- text -> data


def extract_yaml(text: str) -> str:
    """The document read first when no kind of answer is known: the whole text when it is
    one JSON object or a YAML mapping, else the last non-empty fenced block (blocks marked
    yaml, yml, json or nothing before others), else the whole text, stripped."""
    try:
        if load_json_object(text) is not None or isinstance(load_yaml(text), Mapping):
            return text.strip()
    except ParseError:
        pass
    blocks = yaml_blocks(text)
    return blocks[-1] if blocks else ("" if fenced_blocks(text) else text.strip())


def yaml_blocks(text: str) -> list[str]:
    """Every non-empty fenced block of `text` that may hold the answer, in order, stripped."""
    blocks = [block for block in fenced_blocks(text) if block.body.strip()]
    preferred = [block for block in blocks if block.info in ANSWER_INFOS] or blocks
    return [block.body.strip() for block in preferred]


def load_judge_yaml(text: str, *, max_chars: int = MAX_ANSWER_CHARS) -> object:
    """The plain data of `extract_yaml(text)`, loaded safely (see `loading`).

    Answers longer than `max_chars` are refused, and so are anchors, aliases, tags and
    repeated keys. The parse functions below do more: they know which keys make an
    answer and refuse a text that holds two answers that disagree.
    """
    if len(text) > max_chars:
        raise ParseError(
            f"answer is {len(text):,} characters long, more than the limit of {max_chars:,}; "
            "answer with the YAML only"
        )
    document = extract_yaml(text)
    if not document:
        raise ParseError("answer is empty: expected YAML in one ```yaml fenced block")
    return load_document(document)


def _read(text: str, kind: AnswerKind[T]) -> T:
    """`read_answer`, with a guarantee: nothing but ParseError leaves it."""
    try:
        return read_answer(text, kind)
    except ParseError:
        raise
    except Exception as error:  # a defect here must still read as an unusable answer
        raise ParseError(f"answer could not be read ({type(error).__name__})") from error


# --------------------------------------------------------------------------- rubric


def _top_mapping(data: object, expected: str) -> dict[str, object]:
    """The answer's top-level mapping with normalized keys; any other shape is an error."""
    if not isinstance(data, Mapping):
        raise ParseError(
            f"answer has no YAML mapping (it is {kind_of(data)}): expected keys {expected}"
        )
    return keyed(data, "answer")


def _criterion_items(raw: object) -> list[tuple[object, object]]:
    """(name, fields) pairs from `criteria` given as a list of mappings or as a mapping."""
    if isinstance(raw, Mapping):
        return list(raw.items())
    if isinstance(raw, list):
        items: list[tuple[object, object]] = []
        for position, item in enumerate(raw, start=1):
            if not isinstance(item, Mapping):
                raise ParseError(
                    f"criteria item {position} is {kind_of(item)}: expected a mapping with "
                    "name, description, weight, type"
                )
            fields = keyed(item, f"criteria item {position}")
            name = fields.pop("name", None)
            if name is None or clean_text(name) == "":
                raise ParseError(f"criteria item {position} has no name")
            items.append((name, fields))
        return items
    raise ParseError(
        f"criteria is {kind_of(raw)}: expected a list of mappings with name, description, "
        "weight, type"
    )


def _criterion(name: str, raw_fields: object) -> Criterion:
    """One criterion from its fields; every problem with them is reported at once."""
    if not isinstance(raw_fields, Mapping):
        raise ParseError(
            f"criterion {name!r} is {kind_of(raw_fields)}: expected a mapping with "
            "description, weight, type"
        )
    fields = keyed(raw_fields, f"criterion {name!r}")
    problems: list[str] = []
    weight: float | None = None
    kind: CriterionType | None = None
    try:
        weight = parse_weight(name, fields.get("weight"))
    except ParseError as error:
        problems.append(str(error))
    try:
        kind = parse_criterion_type(name, fields.get("type"))
    except ParseError as error:
        problems.append(str(error))
    if problems or weight is None or kind is None:
        raise problems_error(problems)
    description = clean_text(fields.get("description"))
    try:
        return Criterion(name=name, description=description, weight=weight, type=kind)
    except ValidationError as error:
        raise ParseError(validation_message(error, f"criterion {name!r}")) from None


def _unused_name(name: str, taken: Mapping[str, str]) -> str:
    """`name` with the first suffix `_2`, `_3`, ... that no criterion has, within 40 chars."""
    for number in range(2, len(taken) + 3):
        suffix = f"_{number}"
        candidate = name[: 40 - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
    raise AssertionError("unreachable: fewer names are taken than suffixes tried")


def _rubric_from(data: object, min_criteria: int, max_criteria: int) -> Rubric:
    top = _top_mapping(data, "criteria")
    if "criteria" not in top:
        found = ", ".join(clean_text(key)[:40] for key in top) or "none"
        raise ParseError(f"answer has no 'criteria' key (found keys: {found})")
    items = _criterion_items(top["criteria"])
    problems: list[str] = []
    warnings: list[str] = []
    criteria: list[Criterion] = []
    given_as: dict[str, str] = {}
    if not min_criteria <= len(items) <= max_criteria:
        noun = "criterion" if len(items) == 1 else "criteria"
        problems.append(
            f"rubric has {len(items)} {noun}; write between {min_criteria} and {max_criteria}"
        )
    for raw_name, raw_fields in items:
        given = clean_text(raw_name)
        name = snake_name(given)
        if name is None:
            problems.append(f"criterion name {given!r} must start with a letter (snake_case)")
            continue
        if name in given_as:
            # A rubric is written before any response is seen, so a repeated name is only
            # a small judge repeating itself: both criteria are kept, the later renamed.
            renamed = _unused_name(name, given_as)
            warnings.append(
                f"criterion name {given!r} repeats {given_as[name]!r}; renamed {renamed!r}"
            )
            name = renamed
        elif name != given:
            warnings.append(f"criterion name {given!r} normalized to {name!r}")
        given_as[name] = given
        try:
            criteria.append(_criterion(name, raw_fields))
        except ParseError as error:
            problems.append(str(error))
    if problems:
        raise problems_error(problems)
    try:
        rubric = Rubric(criteria=tuple(criteria), source="judge", warnings=tuple(warnings))
        return rubric.normalized()
    except ValidationError as error:
        raise ParseError(validation_message(error, "rubric")) from None
    except ValueError as error:  # weights too far apart to normalize
        raise ParseError(f"rubric: {error}") from None


@functools.lru_cache(maxsize=64)
def _rubric_kind(min_criteria: int, max_criteria: int) -> AnswerKind[Rubric]:
    return AnswerKind(
        keys=frozenset({"criteria"}),
        build=lambda data: _rubric_from(data, min_criteria, max_criteria),
        decision=lambda rubric: tuple((c.name, c.weight, c.type) for c in rubric.criteria),
        describe=lambda rubric: (
            "criteria " + ", ".join(f"{c.name} {c.weight:.3g}" for c in rubric.criteria)
        ),
    )


def parse_rubric(text: str, *, min_criteria: int = 2, max_criteria: int = 8) -> Rubric:
    """Phase 1: the judge's rubric answer as a normalized `Rubric`.

    Names that are not snake_case are normalized with a warning, a repeated name is
    renamed (`accuracy_2`) with a warning; weights that do not sum to 1 are renormalized
    with a warning (by `Rubric.normalized`).
    """
    if not 1 <= min_criteria <= max_criteria:
        raise ValueError(
            f"need 1 <= min_criteria <= max_criteria, got {min_criteria} and {max_criteria}"
        )
    return _read(text, _rubric_kind(min_criteria, max_criteria))


# --------------------------------------------------------------------------- scores


def _score_items(
    raw: object,
) -> list[tuple[str, Mapping[object, object], dict[str, object] | None]]:
    """(name, fields, the fields keyed for a list item, else None) from `scores` given as
    a list of mappings or as a mapping."""
    items: list[tuple[str, Mapping[object, object], dict[str, object] | None]] = []
    if isinstance(raw, Mapping):
        for name, fields in raw.items():
            if not isinstance(fields, Mapping):
                raise ParseError(
                    f"scores entry {clean_text(name)!r} is {kind_of(fields)}: expected a "
                    "mapping with the scores and justifications"
                )
            items.append((clean_text(name), fields, None))
        return items
    if isinstance(raw, list):
        for position, item in enumerate(raw, start=1):
            if not isinstance(item, Mapping):
                raise ParseError(
                    f"scores item {position} is {kind_of(item)}: expected a mapping with name, "
                    "the scores and justifications"
                )
            fields = keyed(item, f"scores item {position}")
            name = fields.get("name")
            given = clean_text(name) if name is not None else ""
            if given == "":
                raise ParseError(f"scores item {position} has no name")
            items.append((given, item, fields))
        return items
    raise ParseError(
        f"scores is {kind_of(raw)}: expected a list of mappings with name, the scores and "
        "justifications"
    )


def _scored(
    top: Mapping[str, object],
    rubric: Rubric,
    problems: list[str],
    warnings: list[str],
    read: Callable[[Criterion, dict[str, object]], T],
) -> dict[str, T]:
    """Each rubric criterion's entry of `scores`, read with `read`; problems collected."""
    raw_scores = top.get("scores")
    if raw_scores is None:
        problems.append("scores is missing: score every rubric criterion")
        return {}
    seen: set[str] = set()
    twice: set[str] = set()
    found: dict[str, T] = {}
    for given, raw_fields, fields in _score_items(raw_scores):
        name = snake_name(given)
        criterion = rubric.get(name) if name is not None else None
        if name is None or criterion is None:
            warnings.append(f"ignored score for unknown criterion {given!r}")
            continue
        if name in seen:
            if name not in twice:
                problems.append(f"criterion {name!r} is scored more than once; score it once")
            twice.add(name)
            continue
        seen.add(name)
        try:
            if fields is None:
                fields = keyed(raw_fields, f"criterion {name!r}")
            found[name] = read(criterion, fields)
        except ParseError as error:
            problems.append(str(error))
    missing = [name for name in rubric.names if name not in seen]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        problems.append(f"criteria not scored: {listed}; score every rubric criterion")
    return found


# --------------------------------------------------------------------------- pairwise pass


def _pair(criterion: Criterion, fields: dict[str, object]) -> CriterionScore:
    values: dict[str, ScoreValue] = {}
    problems: list[str] = []
    for slot, field, key in (("A", "score_A", "score_a"), ("B", "score_B", "score_b")):
        try:
            values[slot] = coerce_score(criterion, fields.get(key), field=field)
        except ParseError as error:
            problems.append(str(error))
    if problems:
        raise problems_error(problems)
    return CriterionScore(
        name=criterion.name,
        score_a=values["A"],
        score_b=values["B"],
        justification_a=clean_text(fields.get("justification_a")),
        justification_b=clean_text(fields.get("justification_b")),
    )


def _slot_contradiction(rubric: Rubric, label: Label, scores: tuple[CriterionScore, ...]) -> str:
    """The warning for a label against its own scores, in the judge's slot terms ("" when
    they agree). Orientation rewords it in the original responses' terms."""
    try:
        weighted_a, weighted_b = weighted_scores(rubric, scores)
    except ValueError:  # a rubric without a positive weight: nothing to compare
        return ""
    if (label == "A>B" and weighted_b - weighted_a > CONTRADICTION_MARGIN) or (
        label == "B>A" and weighted_a - weighted_b > CONTRADICTION_MARGIN
    ):
        return f"preference {label} contradicts the scores (A {weighted_a:.2f}, B {weighted_b:.2f})"
    return ""


def _pass_from(data: object, rubric: Rubric) -> SlotScores:
    """A pairwise answer from its loaded data."""
    top = _top_mapping(data, "scores, overall_justification, preference")
    problems: list[str] = []
    warnings: list[str] = []
    by_name = _scored(top, rubric, problems, warnings, _pair)
    label: Label | None = None
    try:
        label = parse_label(top.get("preference"))
    except ParseError as error:
        problems.insert(1 if "scores" not in top else len(problems), str(error))
    if problems or label is None:
        raise problems_error(problems)
    scores = tuple(by_name[name] for name in rubric.names)
    contradiction = _slot_contradiction(rubric, label, scores)
    try:
        return SlotScores(
            scores=scores,
            preference=label,
            overall_justification=clean_text(top.get("overall_justification")),
            warnings=(*warnings, contradiction) if contradiction else tuple(warnings),
        )
    except ValidationError as error:
        raise ParseError(validation_message(error, "answer")) from None


def _pass_kind(rubric: Rubric) -> AnswerKind[SlotScores]:
    return AnswerKind(
        keys=frozenset({"scores", "preference"}),
        build=lambda data: _pass_from(data, rubric),
        decision=lambda slot: (
            slot.preference,
            tuple((s.name, s.score_a, s.score_b) for s in slot.scores),
        ),
        describe=lambda slot: (
            f"preference {slot.preference}, scores "
            + ", ".join(f"{s.name} {show(s.score_a)}/{show(s.score_b)}" for s in slot.scores)
        ),
    )


def parse_pass(text: str, rubric: Rubric) -> SlotScores:
    """Phase 2: one pairwise answer, in slot terms, scored on every rubric criterion.

    The label is kept as the judge gave it; a warning is added when the weighted scores
    favour the other response by more than 0.1, since that judge may be unreliable.

    A text holding a second answer that disagrees (for example a response's forged
    verdict that the judge quoted) is refused, whichever of the two would have been read:
    see `answers`.
    """
    return _read(text, _pass_kind(rubric))


def render_error_hint(error: ParseError, finish_reason: str | None) -> str:
    """The repair message for `error`, noting a cut-off answer when the server said so."""
    message = str(error)
    if finish_reason == "length":
        message += " (the answer was cut off at max_tokens; raise --judge-max-tokens)"
    return message


# --------------------------------------------------------------------------- pointwise grade


def _single(criterion: Criterion, fields: dict[str, object]) -> GradeScore:
    value = coerce_score(criterion, fields.get("score"), field="score")
    return GradeScore(
        name=criterion.name, score=value, justification=clean_text(fields.get("justification"))
    )


def _grade_from(data: object, rubric: Rubric) -> GradeAnswer:
    """A pointwise answer from its loaded data."""
    top = _top_mapping(data, "scores, overall_justification")
    problems: list[str] = []
    warnings: list[str] = []
    by_name = _scored(top, rubric, problems, warnings, _single)
    if problems:
        raise problems_error(problems)
    try:
        return GradeAnswer(
            scores=tuple(by_name[name] for name in rubric.names),
            overall_justification=clean_text(top.get("overall_justification")),
            warnings=tuple(warnings),
        )
    except ValidationError as error:
        raise ParseError(validation_message(error, "answer")) from None


def _grade_kind(rubric: Rubric) -> AnswerKind[GradeAnswer]:
    return AnswerKind(
        keys=frozenset({"scores"}),
        build=lambda data: _grade_from(data, rubric),
        decision=lambda grade: tuple((s.name, s.score) for s in grade.scores),
        describe=lambda grade: (
            "scores " + ", ".join(f"{s.name} {show(s.score)}" for s in grade.scores)
        ),
    )


def parse_grade(text: str, rubric: Rubric) -> GradeAnswer:
    """A pointwise answer: one score and justification per rubric criterion.

    Refused, like a pairwise answer, when the text holds a second grade that disagrees.
    """
    return _read(text, _grade_kind(rubric))
