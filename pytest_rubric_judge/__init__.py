"""pytest-rubric-judge: regression assertions for LLM applications.

A judge model writes a rubric for each prompt, scores two responses on every criterion in
both slot orders, and says which is better; verdicts that flip with the order are refused.

Importing this package has no side effects; the pytest plugin lives in
`pytest_rubric_judge.plugin` and is registered through the `pytest11` entry point.
"""

from .assertions import (
    GradeFailed,
    JudgmentFailed,
    assert_meets_rubric,
    assert_not_worse,
    assert_preferred,
)
from .errors import (
    CacheMissError,
    InputTooLargeError,
    JudgeError,
    JudgeNotConfiguredError,
    JudgeOutputError,
    JudgeUnavailableError,
)
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


def __getattr__(name: str) -> object:
    # `Baseline` (the judge_baseline fixture's type) needs pytest; import it only on request
    # so that the core stays importable without touching pytest.
    if name == "Baseline":
        from .fixtures import Baseline

        return Baseline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "InputTooLargeError",
    "Judge",
    "JudgeError",
    "JudgeNotConfiguredError",
    "JudgeOutputError",
    "JudgePanel",
    "JudgeStats",
    "JudgeUnavailableError",
    "JudgmentFailed",
    "Label",
    "PassResult",
    "Rubric",
    "Usage",
    "Verdict",
    "__version__",
    "assert_meets_rubric",
    "assert_not_worse",
    "assert_preferred",
]
