"""A run's JSON report (`--judge-report`) read back as untrusted input.

A report file is a trust boundary: it may come from another machine, an old version, a
hand edit or a truncated upload. `read_report` turns every way it can be unreadable
(missing, too big, not UTF-8, not JSON, a repeated key, a huge or non-finite number,
nesting too deep, not a run report, a newer version, a field of the wrong shape) into
one `ReportError` whose message is one line naming the file, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from pydantic import ValidationError

from .escape import escape_control
from .run_json import REPORT_FORMAT, REPORT_VERSION, RunReport

__all__ = ["MAX_REPORT_BYTES", "ReportError", "one_line", "parse_report", "read_report"]

#: The largest report read, in bytes.
MAX_REPORT_BYTES = 1 << 30
#: The deepest nesting of lists and objects read (a report needs about a dozen levels).
MAX_DEPTH = 64
#: The longest number read, in characters.
MAX_NUMBER_CHARS = 64


class ReportError(ValueError):
    """A report that cannot be read; the message is one line naming the file."""


class _Refused(ValueError):
    """A JSON value refused while parsing (the message says why)."""


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number of {len(text)} digits is too long")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text) if len(text) <= MAX_NUMBER_CHARS else math.inf
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:20]} is out of range")
    return value


def _parse_constant(text: str) -> float:
    raise _Refused(f"{text} is not a JSON number")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise _Refused(f"the key {json.dumps(key)[:60]} is given twice in one object")
        mapping[key] = value
    return mapping


def _too_deep(data: object) -> bool:
    pending: list[tuple[object, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        children = (
            list(value.values())
            if isinstance(value, dict)
            else value
            if isinstance(value, list)
            else None
        )
        if children is None:
            continue
        if depth > MAX_DEPTH:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(escape_control(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _validation_problem(error: ValidationError) -> str:
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0] if problems else {"loc": (), "msg": str(error)}
    where = ".".join(str(part) for part in first.get("loc", ())) or "the report"
    others = len(problems) - 1
    more = f" (and {others} more problem{'s' if others > 1 else ''})" if others > 0 else ""
    return f"not a valid run report: {where}: {first.get('msg', '')}{more}"


def _problem(data: bytes) -> tuple[RunReport | None, str]:
    """The report in `data`, or None and what is wrong with it."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return None, f"not UTF-8 text (byte {error.start})"
    try:
        loaded = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except json.JSONDecodeError as error:
        return None, f"not JSON: {error.msg} (line {error.lineno}, column {error.colno})"
    except _Refused as error:
        return None, f"not a JSON report this command reads: {error}"
    except RecursionError:
        return None, "not a JSON report this command reads: nested too deeply"
    if not isinstance(loaded, dict):
        return None, f"not a run report: the JSON is {type(loaded).__name__}, not an object"
    if loaded.get("format") != REPORT_FORMAT:
        found = loaded.get("format")
        said = f"its format is {json.dumps(found)[:60]}" if found is not None else "no format"
        return None, (
            f"not a pytest-rubric-judge run report ({said}; a --judge-report file has "
            f'"format": "{REPORT_FORMAT}")'
        )
    version = loaded.get("version")
    if type(version) is not int or version < 1:
        return None, f"not a valid run report: version is {json.dumps(version)[:30]}"
    if version > REPORT_VERSION:
        return None, (
            f"report version {version} is newer than this rubric-judge reads (up to "
            f"{REPORT_VERSION}); upgrade pytest-rubric-judge"
        )
    if _too_deep(loaded):
        return None, f"not a valid run report: nested more than {MAX_DEPTH} levels deep"
    try:
        return RunReport.model_validate(loaded), ""
    except ValidationError as error:
        return None, _validation_problem(error)
    except RecursionError:
        return None, "not a valid run report: nested too deeply"


def parse_report(data: bytes, name: str) -> RunReport:
    """The run report that `data` holds; a `ReportError` naming `name` when it holds none."""
    report, problem = _problem(data)
    if report is None:
        raise ReportError(f"{one_line(name)}: {one_line(problem)}")
    return report


def read_report(path: str | os.PathLike[str]) -> RunReport:
    """The run report at `path` (a `--judge-report` file); a `ReportError` when unreadable."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_REPORT_BYTES + 1)
    except OSError as error:
        raise ReportError(
            f"{one_line(name)}: cannot be read: {one_line(error.strerror or str(error))}"
        ) from None
    if len(data) > MAX_REPORT_BYTES:
        raise ReportError(f"{one_line(name)}: larger than {MAX_REPORT_BYTES >> 20} MiB")
    return parse_report(data, name)
