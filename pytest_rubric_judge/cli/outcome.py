"""Whether a batch run judged what it was given, and the one line that says why not.

A run in which no row was judged, or whose share of judge errors is above
`--max-error-rate`, fails (exit status 1) and names its most common cause on stderr. Its
outputs are written all the same: they are what a user reads to find the cause.

Failures are grouped by cause: a judge error by its type (`JudgeUnavailableError`, ...),
an invalid input row by what is wrong with it (`not JSON`, `missing field 'response_B'`,
...). Each group keeps the message of its lowest row index, so what is printed does not
depend on the order in which rows finished.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_MAX_ERROR_RATE",
    "EXIT_FAILED",
    "Failures",
    "error_share",
    "failure_line",
    "invalid_rows_line",
]

#: The judge-error share of comparisons above which a run fails. Each error could have
#: gone either way, so the win rate can be off by up to this share: 5 points is about the
#: half-width of a 95% interval on a few hundred comparisons, past which the interval no
#: longer covers what is missing.
DEFAULT_MAX_ERROR_RATE = 0.05
#: The exit status of a run that judged too little (as a judge error is in `main`).
EXIT_FAILED = 1

_LINE_PREFIX = re.compile(r"^line \d+:?\s*")
_SPACES = re.compile(r"\s+")


def error_share(text: str) -> float:
    """A share between 0 and 1 (`0.05`), for argparse `type=`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share such as 0.05, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (0.05 is 5%), got {value}")
    return value


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


@dataclass
class _Cause:
    key: str
    count: int
    first_index: int
    example: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.key,
            "count": self.count,
            "first_index": self.first_index,
            "example": self.example,
        }


def _invalid_kind(message: str) -> str:
    """What is wrong with an invalid row, without its line number or parser detail."""
    return _LINE_PREFIX.sub("", _one_line(message)).split(":", 1)[0].strip() or "invalid row"


class Failures:
    """The judge errors and invalid input rows of a run, grouped by cause."""

    def __init__(self) -> None:
        self._judge: dict[str, _Cause] = {}
        self._invalid: dict[str, _Cause] = {}

    @staticmethod
    def _add(groups: dict[str, _Cause], key: str, index: int, message: str) -> None:
        cause = groups.get(key)
        if cause is None:
            groups[key] = _Cause(key, 1, index, message)
            return
        cause.count += 1
        if index < cause.first_index:
            cause.first_index, cause.example = index, message

    def add_judge_error(self, index: int, error_type: str | None, message: str | None) -> None:
        self._add(self._judge, error_type or "JudgeError", index, _one_line(message or ""))

    def add_invalid(self, index: int, message: str | None) -> None:
        text = _one_line(message or "")
        self._add(self._invalid, _invalid_kind(text), index, text)

    @staticmethod
    def _sorted(groups: dict[str, _Cause]) -> list[dict[str, Any]]:
        ordered = sorted(groups.values(), key=lambda c: (-c.count, c.first_index, c.key))
        return [cause.as_dict() for cause in ordered]

    def judge_error_causes(self) -> list[dict[str, Any]]:
        return self._sorted(self._judge)

    def invalid_row_causes(self) -> list[dict[str, Any]]:
        return self._sorted(self._invalid)


def _judge_cause(cause: Mapping[str, Any]) -> str:
    return f"{cause['type']}, e.g. row {cause['first_index']}: {cause['example']}"


def _most_common(cause: Mapping[str, Any], text: str) -> str:
    count = int(cause["count"])
    return f"most common, in {count} row{'' if count == 1 else 's'}: {text}"


def failure_line(metrics: Mapping[str, Any]) -> str | None:
    """The one line (without the `rubric-judge: ` prefix) that says why a run failed, or
    None when its status is not a failure."""
    status = metrics.get("status")
    judge_causes = metrics.get("judge_error_causes") or []
    invalid_causes = metrics.get("invalid_row_causes") or []
    rows = int(metrics.get("rows", metrics.get("comparisons", 0)))
    if status == "nothing_judged":
        if rows == 0:
            return "no row was judged: the input has no rows"
        top_judge = judge_causes[0] if judge_causes else None
        top_invalid = invalid_causes[0] if invalid_causes else None
        if top_invalid is not None and (
            top_judge is None or top_invalid["count"] > top_judge["count"]
        ):
            invalid = int(metrics.get("invalid_rows", 0))
            return (
                f"no row was judged: {invalid} of {rows} rows are invalid input; "
                + _most_common(top_invalid, str(top_invalid["example"]))
            )
        if top_judge is not None:
            return (
                f"no row was judged: {top_judge['count']} of {rows} rows failed with "
                f"{_judge_cause(top_judge)}"
            )
        return "no row was judged"
    if status == "too_many_errors":
        errors, comparisons = int(metrics["inference_error"]), int(metrics["comparisons"])
        limit = float(metrics.get("max_error_rate") or 0.0)
        line = (
            f"judge errors in {errors / comparisons:.1%} of comparisons ({errors} of "
            f"{comparisons}), above --max-error-rate {limit:g} ({limit:.1%})"
        )
        if judge_causes:
            top = judge_causes[0]
            line += "; " + _most_common(top, _judge_cause(top))
        return line
    return None


def invalid_rows_line(metrics: Mapping[str, Any]) -> str | None:
    """A warning line for a run that judged rows but skipped some invalid ones."""
    invalid = int(metrics.get("invalid_rows") or 0)
    causes = metrics.get("invalid_row_causes") or []
    if not invalid or metrics.get("status") == "nothing_judged" or not causes:
        return None
    word = "row" if invalid == 1 else "rows"
    return f"{invalid} invalid input {word} skipped (not judge errors); " + _most_common(
        causes[0], str(causes[0]["example"])
    )
