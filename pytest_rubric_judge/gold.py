"""Reading labelled preference pairs (gold files) for `rubric-judge calibrate`.

Three input formats are read (one JSON object a line):

- ``project``: ``prompt``, ``response_A``, ``response_B``, ``label`` (``A>B``, ``B>A``, ``A=B``);
- ``judgebench``: ``question``, ``response_A``, ``response_B``, ``label`` (``pair_id`` is the id);
- ``rewardbench``: ``prompt``, ``chosen``, ``rejected``; the chosen response goes to slot A
  for about half the rows and to slot B for the rest, decided by a hash of the row's id (its
  index when it has none), so the placement is the same on every run.

In every format the prompt (``prompt``, ``question``) may be a list of chat messages and
each response (``response_A``, ``response_B``, ``chosen``, ``rejected``) a list of assistant
and tool messages (an agent trajectory), and a row may have ``context``, a list of retrieved
documents. `checked_input` reads these fields, here and in `rubric-judge compare`'s rows
(`batch.Comparison`), exactly as `Judge.compare` reads them.

In any format a row may name the model(s) that wrote its responses (`GENERATOR_FIELDS`:
``generator``, ``model``, ``model_a``, ``model_b``, JudgeBench's ``response_model``,
RewardBench's ``chosen_model`` and ``rejected_model``); they are kept in `GoldRow.generators`
for the self-preference warning and are otherwise ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from .callspec import sendable
from .inputs import ContextInput, Message, PromptInput, ResponseInput, prepare

__all__ = [
    "EXPECTED",
    "FORMATS",
    "GENERATOR_FIELDS",
    "GOLD_LABELS",
    "REQUIRED",
    "GoldFormat",
    "GoldFormatError",
    "GoldRow",
    "InputKind",
    "checked_input",
    "detect_format",
    "gold_row",
    "json_type",
    "parse_gold",
    "read_gold",
]

GoldFormat = Literal["project", "judgebench", "rewardbench"]
FORMATS: tuple[GoldFormat, ...] = ("project", "judgebench", "rewardbench")
#: Fields each format requires, in the order the error message lists them.
REQUIRED: dict[GoldFormat, tuple[str, ...]] = {
    "project": ("prompt", "response_A", "response_B", "label"),
    "judgebench": ("question", "response_A", "response_B", "label"),
    "rewardbench": ("prompt", "chosen", "rejected"),
}
GOLD_LABELS: dict[str, int] = {"A>B": 1, "B>A": -1, "A=B": 0, "A=B (bothbad)": 0}
#: Optional fields naming the model that wrote a row's responses (any format; strings only).
GENERATOR_FIELDS: tuple[str, ...] = (
    "generator",
    "model",
    "model_a",
    "model_b",
    "response_model",
    "chosen_model",
    "rejected_model",
)


# -- a row's prompt, responses and context -----------------------------------------


#: What a row's field may be, by kind: said in the message of a row that is not.
EXPECTED: Final = {
    "prompt": "a string or a list of chat messages (objects with role and content, OpenAI format)",
    "response": (
        "a string or a list of assistant and tool messages (objects with role, content, "
        "tool_calls, tool_call_id; OpenAI format)"
    ),
    "context": (
        "a list of retrieved documents (strings, or objects with content and an optional source)"
    ),
}
InputKind = Literal["prompt", "response", "context"]
#: The limit a row's inputs are rendered under when they are only checked: nothing is cut.
_UNCUT: Final = 1 << 60


def json_type(value: object) -> str:
    """A value's type as a row's author knows it: JSON's names."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


def checked_input(value: Any, field: str, kind: InputKind) -> Any:
    """`value`, the row's `field`, when the judge can read it as a `kind`; else ValueError
    naming the field and saying what it must be.

    A prompt is a string or a list of chat messages, a response a string or a list of
    assistant and tool messages, a context None or a list of documents; lists are read
    here exactly as `Judge.compare` reads them (`inputs.prepare`), so a row that passes
    never fails on its inputs at the judge.
    """
    if kind == "context":
        if value is None:
            return None
        shaped = isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)
    else:
        if isinstance(value, str):
            return value
        shaped = isinstance(value, Sequence) and not isinstance(value, bytes | bytearray)
    if not shaped:
        raise ValueError(f"field {field!r} must be {EXPECTED[kind]}, not {json_type(value)}")
    try:
        if kind == "prompt":
            prepare(value, (), max_chars=_UNCUT)
        elif kind == "response":
            prepare("", (value,), max_chars=_UNCUT, names=(field,))
        else:
            prepare("", (), context=value, max_chars=_UNCUT)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(_field_error(field, kind, exc)) from None
    return value


def _field_error(field: str, kind: InputKind, exc: BaseException) -> str:
    """`inputs.prepare`'s error as a row's: it names the field, and what is expected."""
    what = field if kind == "response" else kind
    text = " ".join(str(exc).split())
    if text.startswith(f"{what}, "):
        return f"field {field!r}: {text[len(what) + 2 :]}"
    if text.startswith(what):
        return f"field {field!r}: {text}"
    detail = text or type(exc).__name__
    return f"field {field!r} must be {EXPECTED[kind]} ({detail})"


# -- gold rows ---------------------------------------------------------------------------


class GoldFormatError(ValueError):
    """A gold file that cannot be read: names the line and the fields expected."""


@dataclass(frozen=True)
class GoldRow:
    """One labelled pair. `label` is +1 (A is better), -1 (B is better) or 0 (a tie).

    `prompt` is a string or a list of chat messages. A response given as text is in
    `response_a` / `response_b`; one given as a list of messages (a trajectory) is in
    `messages_a` / `messages_b`, its text then empty (so that text-only uses of a row, such
    as the format probe, pass it by). `responses` gives what is judged either way.
    """

    index: int
    id: str
    prompt: PromptInput
    response_a: str
    response_b: str
    label: int
    chosen_in: Literal["A", "B"] | None = None  # RewardBench only: where `chosen` went
    #: The models the row says wrote its responses (see `GENERATOR_FIELDS`), in field order.
    generators: tuple[str, ...] = ()
    #: Retrieved documents the prompt comes with (the row's `context`), or None.
    context: ContextInput = None
    #: Response A (B) when given as a list of assistant and tool messages, else None.
    messages_a: Sequence[Message] | None = None
    messages_b: Sequence[Message] | None = None

    @property
    def responses(self) -> tuple[ResponseInput, ResponseInput]:
        """Responses A and B as they are judged: text, or a list of messages."""
        return (
            self.response_a if self.messages_a is None else self.messages_a,
            self.response_b if self.messages_b is None else self.messages_b,
        )


def detect_format(row: Mapping[str, object]) -> GoldFormat:
    """The format a row's fields say it is in; GoldFormatError when none fits."""
    keys = set(row)
    if {"chosen", "rejected"} <= keys:
        return "rewardbench"
    if "question" in keys and "prompt" not in keys:
        return "judgebench"
    if "prompt" in keys and ("response_A" in keys or "label" in keys):
        return "project"
    expected = "; ".join(f"{name}: {', '.join(fields)}" for name, fields in REQUIRED.items())
    raise GoldFormatError(
        f"cannot tell the format from the fields {sorted(keys)}; expected one of {expected}"
    )


def _slot_a_for_chosen(key: str) -> bool:
    """True when RewardBench's chosen response goes to slot A (about half the rows)."""
    return hashlib.sha256(key.encode("utf-8")).digest()[0] % 2 == 0


def _text(row: Mapping[str, object], name: str, where: str, fmt: GoldFormat) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        what = "missing" if value is None else f"a {type(value).__name__}, not a string"
        raise GoldFormatError(
            f"{where}: field {name!r} is {what}; the {fmt} format expects "
            f"{', '.join(REQUIRED[fmt])}"
        )
    return value


def _expects(fmt: GoldFormat) -> str:
    return f"the {fmt} format expects {', '.join(REQUIRED[fmt])} (optional context)"


def _input(
    row: Mapping[str, object], name: str, where: str, fmt: GoldFormat, kind: InputKind
) -> Any:
    """A prompt, response or context field, checked as `compare` checks it."""
    value = row.get(name)
    if value is None and kind != "context":
        raise GoldFormatError(f"{where}: field {name!r} is missing; {_expects(fmt)}")
    try:
        return checked_input(value, name, kind)
    except ValueError as error:
        raise GoldFormatError(f"{where}: {error}; {_expects(fmt)}") from None


def _response(value: ResponseInput) -> tuple[str, Sequence[Message] | None]:
    """(text, messages) of a response: its text, or "" and its list of messages."""
    return (value, None) if isinstance(value, str) else ("", value)


def _generators(row: Mapping[str, object]) -> tuple[str, ...]:
    """The distinct non-empty generator names of a row, in `GENERATOR_FIELDS` order."""
    found: list[str] = []
    for name in GENERATOR_FIELDS:
        value = row.get(name)
        if isinstance(value, str) and value.strip() and value.strip() not in found:
            found.append(value.strip())
    return tuple(found)


def gold_row(index: int, row: object, fmt: GoldFormat, where: str | None = None) -> GoldRow:
    """Read one JSON object in format `fmt`; GoldFormatError names the row and fields."""
    where = where or f"row {index + 1}"
    if not isinstance(row, Mapping):
        raise GoldFormatError(f"{where}: expected a JSON object, got {type(row).__name__}")
    raw_id = row.get("pair_id", row.get("id")) if fmt == "judgebench" else row.get("id")
    # An id UTF-8 cannot carry (a lone surrogate) is hashed and written with U+FFFD.
    row_id = str(index) if raw_id is None else sendable(str(raw_id))
    generators = _generators(row)
    context = _input(row, "context", where, fmt, "context")
    if fmt == "rewardbench":
        prompt = _input(row, "prompt", where, fmt, "prompt")
        chosen = _input(row, "chosen", where, fmt, "response")
        rejected = _input(row, "rejected", where, fmt, "response")
        if _slot_a_for_chosen(row_id):
            return _pair(index, row_id, prompt, chosen, rejected, 1, "A", generators, context)
        return _pair(index, row_id, prompt, rejected, chosen, -1, "B", generators, context)
    prompt = _input(row, "prompt" if fmt == "project" else "question", where, fmt, "prompt")
    response_a = _input(row, "response_A", where, fmt, "response")
    response_b = _input(row, "response_B", where, fmt, "response")
    label = _text(row, "label", where, fmt).strip()
    if label not in GOLD_LABELS:
        raise GoldFormatError(
            f"{where}: label {label!r} is not one of {', '.join(GOLD_LABELS)}; the {fmt} "
            f"format expects {', '.join(REQUIRED[fmt])}"
        )
    return _pair(
        index, row_id, prompt, response_a, response_b, GOLD_LABELS[label], None, generators, context
    )


def _pair(
    index: int,
    row_id: str,
    prompt: PromptInput,
    response_a: ResponseInput,
    response_b: ResponseInput,
    label: int,
    chosen_in: Literal["A", "B"] | None,
    generators: tuple[str, ...],
    context: ContextInput,
) -> GoldRow:
    text_a, messages_a = _response(response_a)
    text_b, messages_b = _response(response_b)
    return GoldRow(
        index,
        row_id,
        prompt,
        text_a,
        text_b,
        label,
        chosen_in,
        generators,
        context,
        messages_a,
        messages_b,
    )


def parse_gold(lines: Iterable[str], fmt: GoldFormat | Literal["auto"] = "auto") -> list[GoldRow]:
    """Read JSON lines; with "auto" the first row's fields choose the format for all."""
    rows: list[GoldRow] = []
    chosen: GoldFormat | None = None if fmt == "auto" else fmt
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise GoldFormatError(f"{where}: not valid JSON ({error.msg})") from None
        except RecursionError:
            raise GoldFormatError(f"{where}: JSON nested too deeply to read") from None
        if chosen is None:
            if not isinstance(data, Mapping):
                raise GoldFormatError(f"{where}: expected a JSON object")
            try:
                chosen = detect_format(data)
            except GoldFormatError as error:
                raise GoldFormatError(f"{where}: {error}") from None
        rows.append(gold_row(len(rows), data, chosen, where))
    if not rows:
        raise GoldFormatError("the gold file has no rows")
    return rows


def read_gold(path: str | Path, fmt: GoldFormat | Literal["auto"] = "auto") -> list[GoldRow]:
    with Path(path).open(encoding="utf-8") as handle:
        return parse_gold(handle, fmt)
