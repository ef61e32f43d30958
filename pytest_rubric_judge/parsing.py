"""Judge text -> models: fenced blocks, safe YAML, the label grammar, score coercion.

Every failure raises `ParseError` with a message written for the judge model: it is sent
back as the one repair request, so it names the criterion, the field and what is expected.
Several problems in one answer are reported together, so one repair can fix them all.

The judge's answer is untrusted text. It is size-limited, refused if it uses YAML anchors
or aliases (checked on the token stream, before anything could expand them), and loaded
with `yaml.safe_load` only.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections.abc import Mapping

import yaml
from pydantic import ValidationError

from .errors import ParseError
from .models import (
    LABELS,
    SCALE_MAX,
    SCALE_MIN,
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

#: Longest judge answer accepted, in characters.
MAX_ANSWER_CHARS = 100_000
#: libyaml's safe loader when PyYAML was built with it (several times faster), else the
#: pure-Python SafeLoader. Both build plain data only.
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Deepest nesting of YAML collections accepted; a judge answer needs about four levels.
MAX_DEPTH = 32
#: Longest criterion name (the models' limit).
MAX_NAME_CHARS = 40
#: A label contradicts the scores when the other side's weighted score is higher by more.
CONTRADICTION_MARGIN = 0.1
#: At most this many problems are listed in one error message.
_MAX_PROBLEMS = 10

_FENCE_RE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)[^`]*$")
_YAML_INFOS = frozenset({"", "yaml", "yml", "json"})
_LABEL_BY_KEY: dict[str, Label] = {re.sub(r"\s+", "", label).lower(): label for label in LABELS}
_LABEL_LIST = ", ".join(LABELS)
_TRUE_WORDS = frozenset({"true", "yes", "1"})
_FALSE_WORDS = frozenset({"false", "no", "0"})
_BINARY_TYPES: frozenset[str] = frozenset({"binary", "bool", "boolean"})
_OPENING_TOKENS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSING_TOKENS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


# --------------------------------------------------------------------------- text -> YAML


def extract_yaml(text: str) -> str:
    """The YAML the judge meant: the last fenced block if there are fences, else all text.

    Judges often write prose around the block or echo the format first, so the last
    block wins. Blocks marked yaml, yml, json or nothing are preferred over other
    languages; an empty block is skipped; a last block without its closing fence runs
    to the end of the text (answers cut off at max_tokens look like that).
    """
    blocks = _fenced_blocks(text)
    if not blocks:
        return text.strip()
    candidates = _candidates(blocks)
    return candidates[-1].strip() if candidates else ""


def yaml_blocks(text: str) -> list[str]:
    """Every fenced block of `text` that `extract_yaml` could have chosen, in order."""
    return [block.strip() for block in _candidates(_fenced_blocks(text))]


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block, in order."""
    blocks: list[tuple[str, str]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE_RE.match(lines[index])
        index += 1
        if opening is None:
            continue
        fence = opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        while index < len(lines) and not closing.match(lines[index]):
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence, if any
        blocks.append((opening["info"].lower(), "\n".join(body)))
    return blocks


def _candidates(blocks: list[tuple[str, str]]) -> list[str]:
    """The non-empty blocks that may hold the answer: yaml ones if any, else all."""
    candidates = [body for info, body in blocks if info in _YAML_INFOS and body.strip()]
    return candidates or [body for _, body in blocks if body.strip()]


def _yaml_error_message(error: yaml.YAMLError, document: str = "") -> str:
    """A one-line description of a YAML error, with its position and a hint when one helps."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return f"answer is not valid YAML: {error}"
    problem = ", ".join(part for part in (error.context, error.problem) if part) or "syntax error"
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    hint = ""
    if "mapping values are not allowed" in problem:
        hint = "; put text that contains ': ' in double quotes"
    elif "'\\t'" in problem or (
        # libyaml does not name the character; look at the line it points to
        mark is not None and "\t" in (document.splitlines()[mark.line : mark.line + 1] or [""])[0]
    ):
        hint = "; indent with spaces, not tabs"
    return f"answer is not valid YAML: {problem}{where} of the YAML block{hint}"


def _check_tokens(text: str) -> None:
    """Refuse anchors, aliases and deep nesting by scanning tokens, before composing.

    Composing is where aliases expand ("billion laughs"), so the check must come first.
    """
    depth = 0
    try:
        for token in yaml.scan(text, Loader=_SAFE_LOADER):
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                line = token.start_mark.line + 1
                raise ParseError(
                    f"YAML anchors and aliases (& and *) are not allowed (line {line} of the "
                    "YAML block); write every value out in full"
                )
            if isinstance(token, _OPENING_TOKENS):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ParseError(
                        f"YAML is nested more than {MAX_DEPTH} levels deep; "
                        "answer in the flat shape the instructions give"
                    )
            elif isinstance(token, _CLOSING_TOKENS):
                depth -= 1
    except yaml.YAMLError as error:
        if "nesting depth" in str(error):  # libyaml's own depth limit, in newer releases
            raise ParseError(
                "YAML is nested too deeply; answer in the flat shape the instructions give"
            ) from None
        raise ParseError(_yaml_error_message(error, text)) from None


def load_judge_yaml(text: str, *, max_chars: int = MAX_ANSWER_CHARS) -> object:
    """Load the YAML (or JSON) of a judge answer safely, as plain Python data.

    `text` is the whole answer; its fenced block is taken with `extract_yaml`. Answers
    longer than `max_chars` are refused, and so are anchors and aliases, so a hostile or
    runaway answer cannot make parsing slow or large. Only `yaml.safe_load` builds data.
    """
    if len(text) > max_chars:
        raise ParseError(
            f"answer is {len(text):,} characters long, more than the limit of {max_chars:,}; "
            "answer with the YAML only"
        )
    document = extract_yaml(text)
    if not document:
        raise ParseError("answer is empty: expected YAML in one ```yaml fenced block")
    return _load_document(document)


def _load_document(document: str) -> object:
    """One extracted YAML document as plain data: tokens checked first, then a safe load.

    A JSON object (what a server constrained by a JSON Schema writes) is read with the
    json module: JSON has no anchors or aliases, and it is much faster.
    """
    stripped = document.lstrip()
    if stripped.startswith("{"):
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):
            pass  # not strict JSON: YAML's flow style may still read it
    _check_tokens(document)
    try:
        return yaml.load(document, Loader=_SAFE_LOADER)  # a SafeLoader: plain data only
    except yaml.YAMLError as error:
        raise ParseError(_yaml_error_message(error, document)) from None
    except RecursionError:
        raise ParseError(
            "YAML is nested too deeply; answer in the shape the instructions give"
        ) from None


# --------------------------------------------------------------------------- small helpers


def _show(value: object) -> str:
    """A value as the judge would recognise it in its own YAML, kept short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    """What a YAML value is, in words, for wrong-shape messages."""
    if value is None:
        return "empty"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def _key(key: object) -> str:
    """A mapping key compared case-insensitively, with spaces or hyphens read as '_'."""
    return _normal_key(key if isinstance(key, str) else str(key))


@functools.lru_cache(maxsize=1024)
def _normal_key(key: str) -> str:  # the same few keys come in every answer
    return _KEY_SEPARATORS_RE.sub("_", key.strip().lower())


_KEY_SEPARATORS_RE = re.compile(r"[\s\-]+")


def _keyed(mapping: Mapping[object, object], where: str) -> dict[str, object]:
    """`mapping` with normalized keys; a key given twice in two spellings is an error."""
    result: dict[str, object] = {}
    for key, value in mapping.items():
        normalized = _key(key)
        if normalized in result:
            raise ParseError(f"{where}: key {normalized!r} is given twice")
        result[normalized] = value
    return result


#: Characters dropped from the judge's free text: C0 and C1 controls other than tab and
#: newline (terminal escapes, carriage returns, NUL) and the bidirectional embeddings,
#: overrides and isolates that make text display in another order than it reads.
_UNSAFE_TEXT_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _text(value: object) -> str:
    """A free-text field as a string (YAML may have read it as a number or a date).

    Justifications and descriptions end up in terminals and reports, so control and
    bidi-override characters, which YAML and JSON escapes can produce, are dropped.
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE_TEXT_RE.sub("", text).strip()


def _problems_error(problems: list[str]) -> ParseError:
    """One ParseError listing every problem found."""
    shown = problems[:_MAX_PROBLEMS]
    more = len(problems) - len(shown)
    message = "; ".join(shown) + (f"; and {more} more problems" if more else "")
    return ParseError(message)


def _validation_message(error: ValidationError, where: str) -> str:
    """A pydantic error as one readable line, without the traceback or the docs links."""
    parts = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(part) for part in item["loc"])
        parts.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
    return f"{where}: " + "; ".join(parts)


@functools.lru_cache(maxsize=4096)
def snake_name(name: str) -> str | None:
    """`name` as a snake_case criterion name, or None when it cannot be one.

    Lowercase ASCII (accents dropped), runs of other characters become '_', at most 40
    characters, starting with a letter. Rubric and pass names are matched this way, so a
    judge that writes "Factual Accuracy" in its pass still scores `factual_accuracy`.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    snake = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    snake = snake[:MAX_NAME_CHARS].rstrip("_")
    if not snake or not snake[0].isalpha():
        return None
    return snake


# --------------------------------------------------------------------------- labels, scores


def parse_label(value: object) -> Label:
    """The preference label, accepting `[[B>A]]`, any spacing and any case.

    YAML reads an unquoted `[[B>A]]` as a nested list, so one-element lists are unwrapped.
    """
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None:
        raise ParseError(f"preference is missing: give exactly one of {_LABEL_LIST}")
    if isinstance(value, str):
        key = re.sub(r"[\s`'\"]+", "", value).lower()
        if key.startswith("[[") and key.endswith("]]"):
            key = key[2:-2]
        label = _LABEL_BY_KEY.get(key)
        if label is not None:
            return label
    raise ParseError(f"preference {_show(value)} is not one of {_LABEL_LIST}")


def _integral(value: float) -> int | None:
    return int(value) if math.isfinite(value) and value.is_integer() else None


def coerce_score(criterion: Criterion, value: object, *, field: str) -> ScoreValue:
    """A score for `criterion`: an integer 1-5 for a scale, a bool for a binary criterion.

    Judges write "4", 4.0 or "yes"; these are read as meant. Anything else (3.5, "four",
    6, a bool on a scale) is a ParseError naming the criterion and `field` (e.g. score_A).
    """
    where = f"criterion {criterion.name!r}: {field}"
    if value is None:
        raise ParseError(f"{where} is missing")
    if criterion.type == "binary":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise ParseError(f"{where} must be true or false (binary), got {_show(value)}")
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = _integral(value)
    elif isinstance(value, str):
        try:
            number = _integral(float(value.strip()))
        except ValueError:
            number = None
    if number is None:
        raise ParseError(
            f"{where} must be an integer {SCALE_MIN}-{SCALE_MAX} (scale), got {_show(value)}"
        )
    if not SCALE_MIN <= number <= SCALE_MAX:
        raise ParseError(f"{where} is {number}, outside {SCALE_MIN}-{SCALE_MAX}")
    return number


# --------------------------------------------------------------------------- rubric


def _top_mapping(data: object, expected: str) -> dict[str, object]:
    """The answer's top-level mapping with normalized keys; any other shape is an error."""
    if not isinstance(data, Mapping):
        raise ParseError(
            f"answer has no YAML mapping (it is {_kind(data)}): expected keys {expected}"
        )
    return _keyed(data, "answer")


def _criterion_items(raw: object) -> list[tuple[object, object]]:
    """(name, fields) pairs from `criteria` given as a list of mappings or as a mapping."""
    if isinstance(raw, Mapping):
        return list(raw.items())
    if isinstance(raw, list):
        items: list[tuple[object, object]] = []
        for position, item in enumerate(raw, start=1):
            if not isinstance(item, Mapping):
                raise ParseError(
                    f"criteria item {position} is {_kind(item)}: expected a mapping with "
                    "name, description, weight, type"
                )
            fields = _keyed(item, f"criteria item {position}")
            name = fields.pop("name", None)
            if name is None or _text(name) == "":
                raise ParseError(f"criteria item {position} has no name")
            items.append((name, fields))
        return items
    raise ParseError(
        f"criteria is {_kind(raw)}: expected a list of mappings with name, description, "
        "weight, type"
    )


def _weight(name: str, raw: object) -> float:
    """The weight as a float greater than 0."""
    if raw is None:
        raise ParseError(f"criterion {name!r}: weight is missing (a number greater than 0)")
    number: float | None = None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        number = float(raw)
    elif isinstance(raw, str):
        try:
            number = float(raw.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ParseError(f"criterion {name!r}: weight {_show(raw)} is not a number")
    if number <= 0:
        raise ParseError(f"criterion {name!r}: weight is {_show(raw)}; it must be greater than 0")
    return number


def _criterion_type(name: str, raw: object) -> CriterionType:
    """The criterion type: scale by default, binary also when written bool or boolean."""
    if raw is None:
        return "scale"
    kind = _text(raw).lower()
    if kind == "scale":
        return "scale"
    if kind in _BINARY_TYPES:
        return "binary"
    raise ParseError(f"criterion {name!r}: type {_show(raw)} is not scale or binary")


def _criterion(name: str, raw_fields: object) -> Criterion:
    """One criterion from its fields; every problem with them is reported at once."""
    if not isinstance(raw_fields, Mapping):
        raise ParseError(
            f"criterion {name!r} is {_kind(raw_fields)}: expected a mapping with "
            "description, weight, type"
        )
    fields = _keyed(raw_fields, f"criterion {name!r}")
    problems: list[str] = []
    weight: float | None = None
    kind: CriterionType | None = None
    try:
        weight = _weight(name, fields.get("weight"))
    except ParseError as error:
        problems.append(str(error))
    try:
        kind = _criterion_type(name, fields.get("type"))
    except ParseError as error:
        problems.append(str(error))
    if problems or weight is None or kind is None:
        raise _problems_error(problems)
    description = _text(fields.get("description"))
    try:
        return Criterion(name=name, description=description, weight=weight, type=kind)
    except ValidationError as error:
        raise ParseError(_validation_message(error, f"criterion {name!r}")) from None


def parse_rubric(text: str, *, min_criteria: int = 2, max_criteria: int = 8) -> Rubric:
    """Phase 1: the judge's rubric answer as a normalized `Rubric`.

    Names that are not snake_case are normalized with a warning; weights that do not sum
    to 1 are renormalized with a warning (by `Rubric.normalized`).
    """
    if not 1 <= min_criteria <= max_criteria:
        raise ValueError(
            f"need 1 <= min_criteria <= max_criteria, got {min_criteria} and {max_criteria}"
        )
    top = _top_mapping(load_judge_yaml(text), "criteria")
    if "criteria" not in top:
        found = ", ".join(top) or "none"
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
        given = _text(raw_name)
        name = snake_name(given)
        if name is None:
            problems.append(f"criterion name {given!r} must start with a letter (snake_case)")
            continue
        if name in given_as:
            problems.append(
                f"criterion name {name!r} appears more than once "
                f"(as {given_as[name]!r} and {given!r}); names must be unique"
            )
            continue
        given_as[name] = given
        if name != given:
            warnings.append(f"criterion name {given!r} normalized to {name!r}")
        try:
            criteria.append(_criterion(name, raw_fields))
        except ParseError as error:
            problems.append(str(error))
    if problems:
        raise _problems_error(problems)
    try:
        rubric = Rubric(criteria=tuple(criteria), source="judge", warnings=tuple(warnings))
    except ValidationError as error:
        raise ParseError(_validation_message(error, "rubric")) from None
    return rubric.normalized()


# --------------------------------------------------------------------------- pairwise pass


def _score_items(raw: object) -> list[tuple[str, Mapping[object, object]]]:
    """(name, fields) pairs from `scores` given as a list of mappings or as a mapping."""
    items: list[tuple[str, Mapping[object, object]]] = []
    if isinstance(raw, Mapping):
        for name, fields in raw.items():
            if not isinstance(fields, Mapping):
                raise ParseError(
                    f"scores entry {_text(name)!r} is {_kind(fields)}: expected a mapping with "
                    "score_A, score_B, justification_A, justification_B"
                )
            items.append((_text(name), fields))
        return items
    if isinstance(raw, list):
        for position, item in enumerate(raw, start=1):
            if not isinstance(item, Mapping):
                raise ParseError(
                    f"scores item {position} is {_kind(item)}: expected a mapping with name, "
                    "score_A, score_B, justification_A, justification_B"
                )
            name = _keyed(item, f"scores item {position}").get("name")
            if name is None or _text(name) == "":
                raise ParseError(f"scores item {position} has no name")
            items.append((_text(name), item))
        return items
    raise ParseError(
        f"scores is {_kind(raw)}: expected a list of mappings with name, score_A, score_B, "
        "justification_A, justification_B"
    )


def _weighted(rubric: Rubric, scores: tuple[CriterionScore, ...]) -> tuple[float, float]:
    """Weighted A and B in [0, 1], for the contradiction check only.

    `scoring.weighted_scores` is the source of truth for verdicts; this copy rescales the
    weights itself, so a rubric that was never normalized still gives scores in [0, 1].
    """
    total = sum(c.weight for c in rubric.criteria)
    weighted_a = weighted_b = 0.0
    for score in scores:
        criterion = rubric.get(score.name)
        if criterion is None:
            continue
        weighted_a += criterion.weight / total * criterion.normalize(score.score_a)
        weighted_b += criterion.weight / total * criterion.normalize(score.score_b)
    return weighted_a, weighted_b


def parse_pass(text: str, rubric: Rubric) -> SlotScores:
    """Phase 2: one pairwise answer, in slot terms, scored on every rubric criterion.

    The label is kept as the judge gave it; a warning is added when the weighted scores
    favour the other response by more than 0.1, since that judge may be unreliable.

    The last fenced block is the answer. When another block is a complete answer with a
    different preference, the answer is ambiguous and refused: a judge that quotes a
    response containing a forged verdict block must not turn that block into the verdict.
    """
    result = _parse_pass_data(load_judge_yaml(text), rubric)
    blocks = yaml_blocks(text) if len(text) <= MAX_ANSWER_CHARS else []
    for other in blocks[:-1]:
        try:
            rival = _parse_pass_data(_load_document(other), rubric)
        except ParseError:
            continue  # an echo of the format or prose in a fence: not a competing answer
        if rival.preference != result.preference:
            raise ParseError(
                f"answer has several YAML blocks with different preferences ({rival.preference} "
                f"in one, {result.preference} in the last); answer with one block only, and "
                "do not quote the responses in fenced blocks"
            )
    return result


def _parse_pass_data(data: object, rubric: Rubric) -> SlotScores:
    """A pairwise answer from its loaded YAML data."""
    top = _top_mapping(data, "scores, overall_justification, preference")
    problems: list[str] = []
    raw_scores = top.get("scores")
    if raw_scores is None:
        problems.append("scores is missing: score every rubric criterion")
    label: Label | None = None
    try:
        label = parse_label(top.get("preference"))
    except ParseError as error:
        problems.append(str(error))
    items = _score_items(raw_scores) if raw_scores is not None else []
    warnings: list[str] = []
    seen: set[str] = set()
    twice: set[str] = set()
    by_name: dict[str, CriterionScore] = {}
    for given, raw_fields in items:
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
        fields = _keyed(raw_fields, f"criterion {name!r}")
        values: dict[str, ScoreValue] = {}
        for slot in ("A", "B"):
            field = f"score_{slot}"
            try:
                values[slot] = coerce_score(criterion, fields.get(field.lower()), field=field)
            except ParseError as error:
                problems.append(str(error))
        if len(values) == 2:
            by_name[name] = CriterionScore(
                name=name,
                score_a=values["A"],
                score_b=values["B"],
                justification_a=_text(fields.get("justification_a")),
                justification_b=_text(fields.get("justification_b")),
            )
    missing = [name for name in rubric.names if name not in seen]
    if raw_scores is not None and missing:
        listed = ", ".join(repr(name) for name in missing)
        problems.append(f"criteria not scored: {listed}; score every rubric criterion")
    if problems or label is None:
        raise _problems_error(problems)
    scores = tuple(by_name[name] for name in rubric.names)
    weighted_a, weighted_b = _weighted(rubric, scores)
    if (label == "A>B" and weighted_b - weighted_a > CONTRADICTION_MARGIN) or (
        label == "B>A" and weighted_a - weighted_b > CONTRADICTION_MARGIN
    ):
        warnings.append(
            f"preference {label} contradicts the scores (A {weighted_a:.2f}, B {weighted_b:.2f})"
        )
    try:
        return SlotScores(
            scores=scores,
            preference=label,
            overall_justification=_text(top.get("overall_justification")),
            warnings=tuple(warnings),
        )
    except ValidationError as error:
        raise ParseError(_validation_message(error, "answer")) from None


def render_error_hint(error: ParseError, finish_reason: str | None) -> str:
    """The repair message for `error`, noting a cut-off answer when the server said so."""
    message = str(error)
    if finish_reason == "length":
        message += " (the answer was cut off at max_tokens; raise --judge-max-tokens)"
    return message


def parse_grade(text: str, rubric: Rubric) -> GradeAnswer:
    """A pointwise answer: one score and justification per rubric criterion."""
    top = _top_mapping(load_judge_yaml(text), "scores, overall_justification")
    problems: list[str] = []
    raw_scores = top.get("scores")
    if raw_scores is None:
        problems.append("scores is missing: score every rubric criterion")
    items = _score_items(raw_scores) if raw_scores is not None else []
    warnings: list[str] = []
    by_name: dict[str, GradeScore] = {}
    for given, raw_fields in items:
        name = snake_name(given)
        criterion = rubric.get(name) if name is not None else None
        if name is None or criterion is None:
            warnings.append(f"ignored score for unknown criterion {given!r}")
            continue
        if name in by_name:
            problems.append(f"criterion {name!r} is scored more than once; score it once")
            continue
        fields = _keyed(raw_fields, f"criterion {name!r}")
        try:
            value = coerce_score(criterion, fields.get("score"), field="score")
        except ParseError as error:
            problems.append(str(error))
            continue
        by_name[name] = GradeScore(
            name=name, score=value, justification=_text(fields.get("justification"))
        )
    missing = [name for name in rubric.names if name not in by_name]
    if raw_scores is not None and missing and not problems:
        listed = ", ".join(repr(name) for name in missing)
        problems.append(f"criteria not scored: {listed}; score every rubric criterion")
    if problems:
        raise _problems_error(problems)
    try:
        return GradeAnswer(
            scores=tuple(by_name[name] for name in rubric.names),
            overall_justification=_text(top.get("overall_justification")),
            warnings=tuple(warnings),
        )
    except ValidationError as error:
        raise ParseError(_validation_message(error, "answer")) from None
