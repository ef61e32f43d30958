"""Whether a stored entry's answer is the one its raw judge text gives.

SQLite checks its pages, and the key check (`CacheEntry.is_consistent`) proves that an
entry sits under the hash of its key fields; neither notices a stored verdict edited in
place. So the raw text is read again, with the parser the judge uses and the inputs the
key fields hold (the kind, the criteria bounds of a rubric call, the canonical rubric of a
pass or a grading), and the result must equal the stored answer, as canonical JSON, and be
a valid answer. An entry that fails is never served.

Nothing here can detect an edit that changes the raw text and the stored answer together
into another valid answer; that needs a secret the cache does not have. What it rules out
is a stored answer that differs from its own raw text, whatever changed it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections import OrderedDict
from typing import Final

from pydantic import BaseModel

from ..errors import ParseError
from ..models import LABELS, Criterion, GradeAnswer, Rubric, SlotScores
from ..parsing import parse_grade, parse_pass, parse_rubric
from .entry import CacheEntry
from .keys import canonical_json

#: The criteria bounds of a rubric call stored without them (the parser's defaults).
DEFAULT_CRITERIA_COUNT: Final = (2, 8)
#: Distinct canonical rubrics kept rebuilt: a replay reads many passes per rubric.
RUBRIC_MEMO_SIZE: Final = 512
#: Raw texts whose reading is remembered (by digest), for answers stored many times.
READING_MEMO_SIZE: Final = 4096
_SHOWN: Final = 60


def entry_problem(entry: CacheEntry) -> str | None:
    """Why `entry` cannot be served, or None when it can: its key must be the hash of its
    fields and its stored answer what its raw text reads as."""
    if not entry.is_consistent():
        return "its key is not the hash of its fields"
    return answer_problem(entry)


def answer_problem(entry: CacheEntry) -> str | None:
    """Why `entry.parsed` is not the answer `entry.raw` gives, or None when it is."""
    try:
        kind, context = _how_to_read(entry.fields)
    except _Unusable as unusable:
        return str(unusable)
    expected, problem = _reading(kind, context, entry.raw)
    if problem is not None:
        return problem
    try:
        stored = canonical_json(entry.parsed)
    except (TypeError, ValueError):  # NaN, infinity: not what the parser gives
        return "its stored answer is not plain JSON data"
    if stored != expected:
        return "its stored answer differs from what its raw text reads as: " + _difference(
            entry.parsed, json.loads(expected)
        )
    return None


class _Unusable(ValueError):
    """The key fields do not say how to read the raw text."""


def _how_to_read(fields: dict[str, object]) -> tuple[str, str]:
    """The kind of answer and what else its reading needs (the criteria bounds of a
    rubric call, the canonical rubric of a pass or a grading), as text."""
    kind = fields.get("kind")
    if kind == "rubric":
        low, high = _criteria_count(fields)
        return kind, f"{low},{high}"
    if kind in ("pass", "grade"):
        try:
            text = canonical_json(fields.get("rubric"))
        except (TypeError, ValueError):
            raise _Unusable("its key fields hold no valid rubric") from None
        _rubric_from(text)  # raises _Unusable for a rubric that is not one
        return str(kind), text
    raise _Unusable(f"its kind {_show(kind)} is none of rubric, pass, grade")


class _Readings:
    """What raw texts read as, recently: the same answer stored twice (a benchmark, a
    suite that asks the same question in many tests) is parsed once per process.

    Keyed by the reading's inputs and the SHA-256 of the raw text, so the texts
    themselves are not kept.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._found: OrderedDict[tuple[str, str, bytes], tuple[str, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, bytes]) -> tuple[str, str | None] | None:
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
            return found

    def put(self, key: tuple[str, str, bytes], value: tuple[str, str | None]) -> None:
        with self._lock:
            self._found[key] = value
            while len(self._found) > self._size:
                self._found.popitem(last=False)


_READINGS = _Readings(READING_MEMO_SIZE)


def _reading(kind: str, context: str, raw: str) -> tuple[str, str | None]:
    """The canonical JSON of what `raw` reads as, or "" and why it gives no valid answer."""
    try:
        digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).digest()
    except UnicodeError:  # pragma: no cover - surrogatepass encodes any str
        digest = b""
    key = (kind, context, digest)
    found = _READINGS.get(key) if digest else None
    if found is None:
        found = _read(kind, context, raw)
        if digest:
            _READINGS.put(key, found)
    return found


def _read(kind: str, context: str, raw: str) -> tuple[str, str | None]:
    try:
        if kind == "rubric":
            low, high = (int(part) for part in context.split(","))
            answer: BaseModel = parse_rubric(raw, min_criteria=low, max_criteria=high)
        elif kind == "pass":
            answer = parse_pass(raw, _rubric_from(context))
        else:
            answer = parse_grade(raw, _rubric_from(context))
    except ParseError as error:
        return "", f"its raw text is not a readable answer ({_first_line(str(error))})"
    except Exception as error:  # any failure to read untrusted text is a refusal
        return "", f"its raw text could not be read ({type(error).__name__})"
    problem = _validity_problem(answer, kind, context)
    if problem is not None:
        return "", problem
    return canonical_json(answer.model_dump(mode="json")), None


def _criteria_count(fields: dict[str, object]) -> tuple[int, int]:
    extra = fields.get("extra")
    bounds = extra.get("criteria_count") if isinstance(extra, dict) else None
    if bounds is None:
        return DEFAULT_CRITERIA_COUNT
    if (
        isinstance(bounds, list)
        and len(bounds) == 2
        and all(type(value) is int for value in bounds)
        and 1 <= bounds[0] <= bounds[1]
    ):
        return bounds[0], bounds[1]
    raise _Unusable(f"its criteria bounds {_show(bounds)} are not two whole numbers, low first")


@functools.lru_cache(maxsize=RUBRIC_MEMO_SIZE)
def _rubric_from(text: str) -> Rubric:
    """The rubric a pass was asked with, rebuilt from its canonical JSON, once per rubric.

    Built as it was keyed (`Rubric.canonical()` of the judge's rubric), with no
    renormalization: the parser must see the very criteria the judge was shown.
    """
    items = json.loads(text)
    try:
        if not isinstance(items, list):
            raise TypeError("not a list")
        criteria = tuple(Criterion.model_validate(item) for item in items)
        return Rubric(criteria=criteria)
    except (TypeError, ValueError):  # pydantic's ValidationError is a ValueError
        raise _Unusable("its key fields hold no valid rubric") from None


def _validity_problem(answer: BaseModel, kind: str, context: str) -> str | None:
    """What makes an answer the parser gave invalid: its rules, checked again here so that
    a parser that let one through still serves no such answer."""
    if isinstance(answer, Rubric):
        low, high = (int(part) for part in context.split(","))
        if not low <= len(answer.criteria) <= high:
            return f"its rubric has {len(answer.criteria)} criteria, not {low} to {high}"
        if any(criterion.weight <= 0 for criterion in answer.criteria):
            return "its rubric has a weight that is not positive"
        return None
    rubric = _rubric_from(context)
    if isinstance(answer, SlotScores):
        if answer.preference not in LABELS:
            return f"its preference {_show(answer.preference)} is not a label"
        names = tuple(score.name for score in answer.scores)
        values = [(s.name, v) for s in answer.scores for v in (s.score_a, s.score_b)]
    elif isinstance(answer, GradeAnswer):
        names = tuple(score.name for score in answer.scores)
        values = [(score.name, score.score) for score in answer.scores]
    else:  # pragma: no cover - the readers above return only these
        return f"its answer is a {type(answer).__name__} for kind {kind}"
    if names != rubric.names:
        return f"it scores {_show(list(names))}, not the rubric's {_show(list(rubric.names))}"
    for name, value in values:
        criterion = rubric.get(name)
        try:
            if criterion is None:
                raise ValueError(f"criterion {name!r} is not in the rubric")
            criterion.check_score(value)
        except ValueError as error:
            return f"its score is invalid ({error})"
    return None


def _difference(stored: object, derived: object, path: str = "") -> str:
    """The first place where `stored` and `derived` differ, for the message."""
    where = path or "the answer"
    if isinstance(stored, dict) and isinstance(derived, dict):
        for name in sorted(set(stored) | set(derived), key=str):
            if name not in stored:
                return f"{_join(path, name)}: missing, raw text says {_show(derived[name])}"
            if name not in derived:
                return f"{_join(path, name)}: stored but not in the raw text"
            if _json_differs(stored[name], derived[name]):
                return _difference(stored[name], derived[name], _join(path, name))
    if isinstance(stored, list) and isinstance(derived, list):
        if len(stored) != len(derived):
            return f"{where}: stored {len(stored)} items, raw text says {len(derived)}"
        for index, (left, right) in enumerate(zip(stored, derived, strict=True)):
            if _json_differs(left, right):
                return _difference(left, right, f"{path}[{index}]")
    return f"{where}: stored {_show(stored)}, raw text says {_show(derived)}"


def _json_differs(left: object, right: object) -> bool:
    try:
        return canonical_json(left) != canonical_json(right)
    except (TypeError, ValueError):
        return True


def _join(path: str, name: object) -> str:
    """`path.name`, the name escaped as ASCII and shortened (it comes from the cache)."""
    shown = json.dumps(str(name), ensure_ascii=True)[1:-1][:_SHOWN]
    return f"{path}.{shown}" if path else shown


def _show(value: object) -> str:
    """`value` as short ASCII JSON: cached text never reaches a terminal unescaped."""
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError):
        text = ascii(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _first_line(text: str) -> str:
    """The first line of a parser message, escaped as ASCII (it may quote the raw text)."""
    line = json.dumps(text.split("\n", 1)[0] or "empty", ensure_ascii=True)[1:-1]
    return line if len(line) <= 200 else line[:197] + "..."
