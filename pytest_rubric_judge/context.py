"""Which judge an assertion uses when none is passed, and who hears about its verdicts.

The pytest plugin sets a `JudgeContext` around each test; outside pytest an assertion
needs an explicit `judge=`. A context variable (not a module global) carries it, so
concurrent runs in other threads or tasks never see each other's judge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import JudgeNotConfiguredError

if TYPE_CHECKING:
    from .judge import JudgeLike
    from .models import Grade, Verdict


@dataclass(frozen=True)
class Judgment:
    """One judged assertion, as the report sees it: a pairwise verdict or a pointwise grade."""

    verdict: Verdict | None
    assertion: str  # "assert_preferred", "assert_not_worse" or "assert_meets_rubric"
    passed: bool
    #: The names under which responses A and B appear in messages and reports.
    names: tuple[str, str] = ("baseline", "new")
    note: str = ""
    #: The judge that gave the verdict, so a run can total the work of every judge used.
    judge: JudgeLike | None = None
    grade: Grade | None = None
    #: Across the samples of a sampled assertion: how many held, of how many (for the
    #: flakiness of the test); None with a single sample.
    sample_wins: int | None = None
    sample_count: int | None = None

    @property
    def result(self) -> Verdict | Grade:
        """The verdict, or the grade of a pointwise assertion."""
        result = self.verdict if self.verdict is not None else self.grade
        if result is None:
            raise ValueError("a judgment holds a verdict or a grade")
        return result


@dataclass(frozen=True)
class JudgeContext:
    """A source of the default judge and a listener for judgements."""

    get_judge: Callable[[], JudgeLike]
    on_judgment: Callable[[Judgment], None] | None = None
    #: The run's defaults for sequential judging (`--judge-confidence`,
    #: `--judge-max-samples`): None leaves an assertion to its own arguments.
    confidence: float | None = None
    max_samples: int | None = None


_CURRENT: ContextVar[JudgeContext | None] = ContextVar("rubric_judge_context", default=None)


@contextmanager
def judge_context(context: JudgeContext) -> Iterator[JudgeContext]:
    """Make `context` the default for assertions inside the block."""
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def current_context() -> JudgeContext | None:
    return _CURRENT.get()


def resolve_judge(judge: JudgeLike | None) -> JudgeLike:
    """`judge` itself, else the judge of the surrounding pytest run."""
    if judge is not None:
        return judge
    context = _CURRENT.get()
    if context is None:
        raise JudgeNotConfiguredError(
            "no judge given and no pytest run configured one: pass judge=Judge(base_url, model)"
        )
    return context.get_judge()


def record(judgment: Judgment) -> None:
    """Tell the surrounding run about a judgment (no-op outside one)."""
    context = _CURRENT.get()
    if context is not None and context.on_judgment is not None:
        context.on_judgment(judgment)


#: The earlier spelling, kept so that code written against it still works.
Judgement = Judgment
