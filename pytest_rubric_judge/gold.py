"""Reading labelled preference pairs (gold files) for `rubric-judge calibrate`.

Three input formats are read (one JSON object a line):

- ``project``: ``prompt``, ``response_A``, ``response_B``, ``label`` (``A>B``, ``B>A``, ``A=B``);
- ``judgebench``: ``question``, ``response_A``, ``response_B``, ``label`` (``pair_id`` is the id);
- ``rewardbench``: ``prompt``, ``chosen``, ``rejected``; the chosen response goes to slot A
  for about half the rows and to slot B for the rest, decided by a hash of the row's id (its
  index when it has none), so the placement is the same on every run.

In any format a row may name the model(s) that wrote its responses (`GENERATOR_FIELDS`:
``generator``, ``model``, ``model_a``, ``model_b``, JudgeBench's ``response_model``,
RewardBench's ``chosen_model`` and ``rejected_model``); they are kept in `GoldRow.generators`
for the self-preference warning and are otherwise ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "FORMATS",
    "GENERATOR_FIELDS",
    "GOLD_LABELS",
    "REQUIRED",
    "GoldFormat",
    "GoldFormatError",
    "GoldRow",
    "detect_format",
    "gold_row",
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


class GoldFormatError(ValueError):
    """A gold file that cannot be read: names the line and the fields expected."""


@dataclass(frozen=True)
class GoldRow:
    """One labelled pair. `label` is +1 (A is better), -1 (B is better) or 0 (a tie)."""

    index: int
    id: str
    prompt: str
    response_a: str
    response_b: str
    label: int
    chosen_in: Literal["A", "B"] | None = None  # RewardBench only: where `chosen` went
    #: The models the row says wrote its responses (see `GENERATOR_FIELDS`), in field order.
    generators: tuple[str, ...] = ()


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
    row_id = str(index) if raw_id is None else str(raw_id)
    generators = _generators(row)
    if fmt == "rewardbench":
        prompt = _text(row, "prompt", where, fmt)
        chosen = _text(row, "chosen", where, fmt)
        rejected = _text(row, "rejected", where, fmt)
        if _slot_a_for_chosen(row_id):
            return GoldRow(index, row_id, prompt, chosen, rejected, 1, "A", generators)
        return GoldRow(index, row_id, prompt, rejected, chosen, -1, "B", generators)
    prompt = _text(row, "prompt" if fmt == "project" else "question", where, fmt)
    response_a = _text(row, "response_A", where, fmt)
    response_b = _text(row, "response_B", where, fmt)
    label = _text(row, "label", where, fmt).strip()
    if label not in GOLD_LABELS:
        raise GoldFormatError(
            f"{where}: label {label!r} is not one of {', '.join(GOLD_LABELS)}; the {fmt} "
            f"format expects {', '.join(REQUIRED[fmt])}"
        )
    return GoldRow(
        index, row_id, prompt, response_a, response_b, GOLD_LABELS[label], None, generators
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
