"""The pieces of a judge call: what is sent (`Request`), what defines a call (`CallSpec`),
the counters (`JudgeStats`), and the rules for unreadable answers (the repair request's
quote, the final error).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, overload

from pydantic import BaseModel

from . import schemas
from .dialects import Dialect
from .errors import JudgeOutputError, ParseError
from .http_policy import Completion
from .models import Rubric
from .parsing import render_error_hint

ParsedT = TypeVar("ParsedT", bound=BaseModel)
Kind = Literal["rubric", "pass", "grade"]
Message = dict[str, Any]

#: How much of an unreadable answer a JudgeOutputError quotes.
RAW_EXCERPT = 160
#: How much of an unreadable answer is sent back in the repair request: enough for the
#: judge to see what it wrote, never a runaway answer uploaded in full.
REPAIR_QUOTE_CHARS = 6000
#: Rubrics kept in memory per judge (the cache holds every one).
RUBRIC_MEMO_SIZE = 4096


@dataclass(frozen=True)
class Request:
    """One request the driver must send: messages, the sample's seed, an optional schema."""

    messages: list[Message]
    seed: int | None
    response_format: dict[str, object] | None


@dataclass(frozen=True)
class CallSpec(Generic[ParsedT]):
    """Everything that defines one judge call; the expensive parts are built on a miss."""

    kind: Kind
    what: str
    #: The cache key and its fields, given what the key records of the constraint
    #: (`dialects.key_value`).
    keyed: Callable[[bool | str], tuple[str, dict[str, object]]]
    messages: Callable[[], list[Message]]
    parse: Callable[[str], ParsedT]
    model_type: type[ParsedT]
    seed: int | None
    #: The `response_format` for a dialect; None for a call that is never constrained.
    response_format: Callable[[Dialect], dict[str, object]] | None


@dataclass
class JudgeStats:
    """Counters of one judge's work, safe to update from several threads."""

    requests: int = 0
    retries: int = 0
    repairs: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    judge_errors: int = 0
    #: Dialects refused by the server (`auto` moving on to the next, or to none).
    structured_fallbacks: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {
                name: getattr(self, name)
                for name in self.__dataclass_fields__
                if not name.startswith("_")
            }


@overload
def sendable(text: str) -> str: ...


@overload
def sendable(text: None) -> None: ...


def sendable(text: str | None) -> str | None:
    """`text` as it can be sent and hashed: a lone surrogate (text decoded with errors
    kept, e.g. `surrogateescape`) has no UTF-8 form, so it becomes U+FFFD."""
    if text is None or text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def quoted_answer(text: str) -> str:
    """An unreadable answer as the repair request quotes it: cut past `REPAIR_QUOTE_CHARS`."""
    if len(text) <= REPAIR_QUOTE_CHARS:
        return text
    return (
        text[:REPAIR_QUOTE_CHARS]
        + f"\n[... {len(text) - REPAIR_QUOTE_CHARS:,} more characters not repeated here ...]"
    )


def unreadable(what: str, error: ParseError, completion: Completion) -> JudgeOutputError:
    """The error for an answer still unreadable after the repair request, quoting its start."""
    return JudgeOutputError(
        f"the judge's answer for {what} could not be read after one repair request: "
        f"{render_error_hint(error, completion.finish_reason)}; its answer began "
        f"{excerpt(completion.text, RAW_EXCERPT)}",
        raw=completion.text,
    )


def parse_complete(parse: Callable[[str], ParsedT], completion: Completion) -> ParsedT:
    """Parse an answer, refusing one the server cut off at max_tokens even if it parses:
    a rubric cut after a whole criterion would silently lose the rest."""
    if completion.finish_reason == "length":
        raise ParseError("the answer was cut off before it ended")
    return parse(completion.text)


@functools.lru_cache(maxsize=RUBRIC_MEMO_SIZE)
def canonical_rubric(rubric: Rubric) -> list[dict[str, object]]:
    """`rubric.canonical()`, once per rubric: every pass on a prompt keys on the same one.
    Shared between calls, so never changed in place."""
    return rubric.canonical()


def pass_format(rubric: Rubric, dialect: Dialect) -> dict[str, object]:
    """The pass's JSON Schema. It depends on the criterion names and types alone, so it is
    built once per set of them and dialect (one object, whose JSON text a client keeps)."""
    return _format_for("pass", rubric, dialect, schemas.pass_format)


def grade_format(rubric: Rubric, dialect: Dialect) -> dict[str, object]:
    return _format_for("grade", rubric, dialect, schemas.grade_format)


_FORMATS: dict[tuple[str, Dialect, tuple[str, ...], tuple[str, ...]], dict[str, object]] = {}
_FORMATS_LOCK = threading.Lock()


def _format_for(
    kind: str,
    rubric: Rubric,
    dialect: Dialect,
    build: Callable[[Rubric, Dialect], dict[str, object]],
) -> dict[str, object]:
    key = (kind, dialect, rubric.names, tuple(c.type for c in rubric.criteria))
    found = _FORMATS.get(key)
    if found is None:
        found = build(rubric, dialect)
        with _FORMATS_LOCK:
            if len(_FORMATS) >= RUBRIC_MEMO_SIZE:
                _FORMATS.clear()
            found = _FORMATS.setdefault(key, found)
    return found


@functools.lru_cache(maxsize=64)
def rubric_format(min_criteria: int, max_criteria: int, dialect: Dialect) -> dict[str, object]:
    return schemas.rubric_format(min_criteria, max_criteria, dialect)


def excerpt(text: str, limit: int = 60) -> str:
    """`text` on one line, cut to `limit` characters, quoted."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")
