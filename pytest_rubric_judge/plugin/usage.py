"""Mistakes in how a test uses the judge, reported as one-line ERRORs.

- A test's own `criteria=` that cannot be a rubric (a weight that is not a number, a name
  given twice, a type other than `scale` or `binary`, something that is not a list of
  criteria) would otherwise end in a pydantic traceback reported as FAILED; it becomes a
  `JudgeUsageError` naming the mistake and the test's line.
- When `-m` names the `judge` marker, the run selects tests by it, so a test that uses
  the run's judge without carrying it would be judged although the user asked for no
  judged tests (`-m "not judge"`). Such a test ends in a `JudgeUsageError` before the
  judge is asked. The marker is added for the user to tests that request the `judge` or
  `judge_baseline` fixture and to `judge_suite` tests; any other test that calls an
  assertion without `judge=` needs `@pytest.mark.judge` (or to request `judge`).

Neither is a judge error: they are not counted in the rubric judge summary or the gates.
"""

from __future__ import annotations

import re
import sys
import traceback
from pathlib import Path

import pytest

from ..errors import JudgeError

__all__ = [
    "JudgeUsageError",
    "criteria_mistake",
    "names_judge_marker",
    "unmarked_use",
]

#: A name in a `-m` expression (the characters pytest's expression grammar allows).
_NAME = re.compile(r"[\w:+\-.\[\]\\/]+")
_MODELS = ("Criterion", "Rubric")


class JudgeUsageError(JudgeError):
    """A test used the judge wrongly: a bad `criteria=`, or the run's judge in a test not
    marked `judge` while `-m` selects by that marker."""

    kind = "usage"


def names_judge_marker(expression: str | None) -> bool:
    """Whether a `-m` expression names the `judge` marker (`not judge`, `judge or slow`)."""
    return "judge" in _NAME.findall(expression or "")


def unmarked_use(item: pytest.Item) -> JudgeUsageError | None:
    """The error for `item` using the run's judge, when `-m` selects by the `judge` marker
    and the test does not carry it; None when the use is fine."""
    if item.get_closest_marker("judge") is not None:
        return None
    expression = item.config.getoption("markexpr", None)
    if not names_judge_marker(expression):
        return None
    return JudgeUsageError(
        f"{item.name} uses the run's judge but is not marked `judge`, so -m {expression!r} "
        "could not select it by that marker; request the `judge` fixture or mark the test "
        "with @pytest.mark.judge"
    )


def _where(error: BaseException, path: Path) -> str:
    """` (test_x.py:12)`: the test's line that passed the criteria, when it is known."""
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(error.__traceback__)
        if Path(frame.filename) == path
    ]
    return f" ({path.name}:{lines[-1]})" if lines else ""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _validation_details(error: BaseException) -> str | None:
    """The mistakes a pydantic validation of a criterion or rubric found, on one line."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(error, pydantic.ValidationError):
        return None
    if error.title not in _MODELS:
        return None
    parts = []
    for found in error.errors():
        where = ".".join(str(part) for part in found.get("loc", ()))
        message = str(found.get("msg", "")).removeprefix("Value error, ")
        given = f" (got {_shown(found['input'])})" if where and "input" in found else ""
        parts.append(f"{where}: {message}{given}" if where and where != "criteria" else message)
    return "; ".join(parts)


def _raised_in_models(error: BaseException) -> bool:
    frames = traceback.extract_tb(error.__traceback__)
    return (
        bool(frames)
        and Path(frames[-1].filename).parent.name == "pytest_rubric_judge"
        and (Path(frames[-1].filename).name == "models.py")
    )


def criteria_mistake(error: BaseException, path: Path) -> JudgeUsageError | None:
    """The usage error for criteria the judge could not make a rubric of (`path` is the
    test's file, to say where); None when `error` is something else."""
    details = _validation_details(error)
    if details is None and isinstance(error, (TypeError, ValueError)) and _raised_in_models(error):
        reason = " ".join(str(error).split())
        details = (
            f"it is not a list of dicts or Criterion objects ({type(error).__name__}: {reason})"
        )
    if details is None:
        return None
    return JudgeUsageError(
        f"criteria= is not valid{_where(error, path)}: {details}; give a list of criteria, "
        "each with a name, a description, a numeric weight and a type 'scale' or 'binary'"
    )
