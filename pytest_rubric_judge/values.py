"""The values inside a judge's answer: the label grammar, scores, weights, names, free text.

Each reader turns one loaded value into what the models hold, or raises `ParseError` with
a message written for the judge (it is sent back as the repair request): it names the
criterion, the field and what is expected.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Mapping

from pydantic import ValidationError

from .answers import normal_key
from .errors import ParseError
from .loading import replace_surrogates
from .models import LABELS, SCALE_MAX, SCALE_MIN, Criterion, CriterionType, Label, ScoreValue

#: Longest criterion name (the models' limit).
MAX_NAME_CHARS = 40
#: At most this many problems are listed in one error message.
MAX_PROBLEMS = 10

_LABEL_BY_KEY: dict[str, Label] = {re.sub(r"\s+", "", label).lower(): label for label in LABELS}
_LABEL_LIST = ", ".join(LABELS)
_TRUE_WORDS = frozenset({"true", "yes", "1"})
_FALSE_WORDS = frozenset({"false", "no", "0"})
_BINARY_TYPES: frozenset[str] = frozenset({"binary", "bool", "boolean"})
#: Characters dropped from the judge's free text: C0 and C1 controls other than tab and
#: newline (terminal escapes, carriage returns, NUL) and the bidirectional embeddings,
#: overrides and isolates that make text display in another order than it reads.
_UNSAFE_TEXT_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def show(value: object) -> str:
    """A value as the judge would recognise it in its own YAML, kept short and printable."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        text = repr(value) if isinstance(value, str) else str(value)
    except ValueError:  # an integer too long to print
        return "a number too long to show"
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= 60 else text[:57] + "..."


def kind_of(value: object) -> str:
    """What a loaded value is, in words, for wrong-shape messages."""
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


def keyed(mapping: Mapping[object, object], where: str) -> dict[str, object]:
    """`mapping` with normalized keys; a key given twice in two spellings is an error."""
    result: dict[str, object] = {}
    for key, value in mapping.items():
        normalized = normal_key(key if isinstance(key, str) else str(key))
        if normalized in result:
            raise ParseError(f"{where}: key {show(normalized)} is given twice")
        result[normalized] = value
    return result


def clean_text(value: object) -> str:
    """A free-text field as a string (YAML may have read it as a number or a date).

    Justifications and descriptions end up in terminals and reports, so control and
    bidi-override characters, which YAML and JSON escapes can produce, are dropped, and
    a lone surrogate (a JSON escape can produce one) becomes U+FFFD.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        if value.isascii() and value.isprintable():
            return value.strip()  # no control character, no surrogate: nothing to drop
        text = value
    else:
        try:
            text = str(value)
        except ValueError:  # an integer too long to print
            text = show(value)
    return _UNSAFE_TEXT_RE.sub("", replace_surrogates(text)).strip()


def problems_error(problems: list[str]) -> ParseError:
    """One ParseError listing every problem found."""
    shown = problems[:MAX_PROBLEMS]
    more = len(problems) - len(shown)
    message = "; ".join(shown) + (f"; and {more} more problems" if more else "")
    return ParseError(message)


def validation_message(error: ValidationError, where: str) -> str:
    """A pydantic error as one readable line, without the traceback or the docs links."""
    parts = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(part) for part in item["loc"])
        parts.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
    return f"{where}: " + "; ".join(parts)


_SNAKE = re.compile(r"[a-z][a-z0-9_]*")


@functools.lru_cache(maxsize=4096)
def snake_name(name: str) -> str | None:
    """`name` as a snake_case criterion name, or None when it cannot be one.

    Lowercase ASCII (accents dropped), runs of other characters become '_', at most 40
    characters, starting with a letter. Rubric and pass names are matched this way, so a
    judge that writes "Factual Accuracy" in its pass still scores `factual_accuracy`.
    """
    if len(name) <= MAX_NAME_CHARS and _SNAKE.fullmatch(name):
        return name  # already a valid name ("a_", "a__b" included): kept as it is
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    snake = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    snake = snake[:MAX_NAME_CHARS].rstrip("_")
    if not snake or not snake[0].isalpha():
        return None
    return snake


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
    raise ParseError(f"preference {show(value)} is not one of {_LABEL_LIST}")


def _integral(value: float) -> int | None:
    return int(value) if math.isfinite(value) and value.is_integer() else None


def _float(text: str) -> float | None:
    try:
        return float(text.strip())
    except (ValueError, OverflowError):
        return None


def coerce_score(criterion: Criterion, value: object, *, field: str) -> ScoreValue:
    """A score for `criterion`: an integer 1-5 for a scale, a bool for a binary criterion.

    Judges write "4", 4.0 or "yes"; these are read as meant. Anything else (3.5, "four",
    6, a bool on a scale) is a ParseError naming the criterion and `field` (e.g. score_A).
    """
    if type(value) is int and SCALE_MIN <= value <= SCALE_MAX and criterion.type == "scale":
        return value  # (the common case, read as below)
    where = f"criterion {criterion.name!r}: {field}"
    if value is None:
        raise ParseError(f"{where} is missing")
    if criterion.type == "binary":
        if isinstance(value, bool):
            return value
        word = (
            value.strip().lower()
            if isinstance(value, str)
            else show(value)
            if isinstance(value, int)
            else None
        )
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise ParseError(f"{where} must be true or false (binary), got {show(value)}")
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = _integral(value)
    elif isinstance(value, str):
        parsed = _float(value)
        number = _integral(parsed) if parsed is not None else None
    if number is None:
        raise ParseError(
            f"{where} must be an integer {SCALE_MIN}-{SCALE_MAX} (scale), got {show(value)}"
        )
    if not SCALE_MIN <= number <= SCALE_MAX:
        raise ParseError(f"{where} is {show(number)}, outside {SCALE_MIN}-{SCALE_MAX}")
    return number


def parse_weight(name: str, raw: object) -> float:
    """A rubric weight as a finite float greater than 0."""
    if raw is None:
        raise ParseError(f"criterion {name!r}: weight is missing (a number greater than 0)")
    number: float | None = None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        try:
            number = float(raw)
        except OverflowError:
            number = None
    elif isinstance(raw, str):
        number = _float(raw)
    if number is None or not math.isfinite(number):
        raise ParseError(f"criterion {name!r}: weight {show(raw)} is not a number")
    if number <= 0:
        raise ParseError(f"criterion {name!r}: weight is {show(raw)}; it must be greater than 0")
    return number


def parse_criterion_type(name: str, raw: object) -> CriterionType:
    """The criterion type: scale by default, binary also when written bool or boolean."""
    if raw is None:
        return "scale"
    kind = clean_text(raw).lower()
    if kind == "scale":
        return "scale"
    if kind in _BINARY_TYPES:
        return "binary"
    raise ParseError(f"criterion {name!r}: type {show(raw)} is not scale or binary")
