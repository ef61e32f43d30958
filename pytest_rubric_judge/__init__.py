"""pytest-rubric-judge: regression assertions for LLM applications.

A judge model writes a rubric for each prompt, scores two responses on every criterion in
both slot orders, and says which is better; verdicts that flip with the order are refused.

Importing this package has no side effects and costs next to nothing: the public names
below are imported from their modules on first use (PEP 562). Every submodule import
runs this file first, the pytest entry point `pytest_rubric_judge.plugin` included, so a
pytest run that never uses the judge does not pay for pydantic, httpx or numpy here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .assertions import (
        GradeFailed,
        JudgeUndecided,
        JudgmentFailed,
        RubricAssertionError,
        assert_meets_rubric,
        assert_not_worse,
        assert_preferred,
    )
    from .converters import from_langchain, from_responses_items, split_conversation
    from .errors import (
        CacheMissError,
        ImagesRefusedError,
        InputTooLargeError,
        JudgeError,
        JudgeNotConfiguredError,
        JudgeOutputError,
        JudgeUnavailableError,
    )
    from .fixtures import Baseline
    from .judge import Judge, JudgeStats
    from .models import (
        LABELS,
        CallInfo,
        Criterion,
        CriterionScore,
        Grade,
        GradeScore,
        Label,
        PassResult,
        Rubric,
        Usage,
        Verdict,
    )
    from .panel import JudgePanel

__version__ = "0.1.0"

#: Where each public name is defined, relative to this package. Keep it in step with the
#: imports above, which are what type checkers read.
_LAZY: dict[str, str] = {
    "GradeFailed": "assertions",
    "JudgeUndecided": "assertions",
    "RubricAssertionError": "assertions",
    "JudgmentFailed": "assertions",
    "assert_meets_rubric": "assertions",
    "assert_not_worse": "assertions",
    "assert_preferred": "assertions",
    "from_langchain": "converters",
    "from_responses_items": "converters",
    "split_conversation": "converters",
    "CacheMissError": "errors",
    "ImagesRefusedError": "errors",
    "InputTooLargeError": "errors",
    "JudgeError": "errors",
    "JudgeNotConfiguredError": "errors",
    "JudgeOutputError": "errors",
    "JudgeUnavailableError": "errors",
    "Baseline": "fixtures",  # the judge_baseline fixture's type; needs pytest
    "Judge": "judge",
    "JudgeStats": "judge",
    "LABELS": "models",
    "CallInfo": "models",
    "Criterion": "models",
    "CriterionScore": "models",
    "Grade": "models",
    "GradeScore": "models",
    "Label": "models",
    "PassResult": "models",
    "Rubric": "models",
    "Usage": "models",
    "Verdict": "models",
    "JudgePanel": "panel",
}


def __getattr__(name: str) -> object:
    """Import a public name from its module on first use, then keep it here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "LABELS",
    "Baseline",
    "CacheMissError",
    "CallInfo",
    "Criterion",
    "CriterionScore",
    "Grade",
    "GradeFailed",
    "GradeScore",
    "ImagesRefusedError",
    "InputTooLargeError",
    "Judge",
    "JudgeError",
    "JudgeNotConfiguredError",
    "JudgeOutputError",
    "JudgePanel",
    "JudgeStats",
    "JudgeUnavailableError",
    "JudgeUndecided",
    "JudgmentFailed",
    "Label",
    "PassResult",
    "Rubric",
    "RubricAssertionError",
    "Usage",
    "Verdict",
    "__version__",
    "assert_meets_rubric",
    "assert_not_worse",
    "assert_preferred",
    "from_langchain",
    "from_responses_items",
    "split_conversation",
]
