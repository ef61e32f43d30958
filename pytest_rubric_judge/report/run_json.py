"""A run as data: every judged assertion, every judge error, the aggregates and the gates.

`RunReport` is what `--judge-report PATH.json` writes and what the Markdown summary is
rendered from. Its parts are plain pydantic models, so they also carry a run's results
from pytest-xdist workers to the controller (`model_dump(mode="json")` gives data that
`execnet` can send, `model_validate` reads it back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..files import replacing_text
from ..gates import Gate, GateResult, evaluate
from ..models import Grade, Verdict
from ..stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, Aggregates, Aggregator

REPORT_FORMAT = "pytest-rubric-judge/run"
REPORT_VERSION = 1


class JudgmentRecord(BaseModel):
    """One judged assertion of a test, with its full verdict (or grade, when pointwise)."""

    model_config = ConfigDict(frozen=True)

    nodeid: str
    assertion: str
    passed: bool
    #: The names under which responses A and B appear: ("baseline", "new").
    names: tuple[str, str] = ("baseline", "new")
    note: str = ""
    #: Recorded in a `judge_suite` test: a failure counts toward the gates, not the test.
    suite: bool = False
    #: A failure the test caught (`pytest.raises`): expected, so it counts toward no gate.
    caught: bool = False
    verdict: Verdict | None = None
    grade: Grade | None = None
    #: The test's position in the run's collection order (None outside a pytest run):
    #: aggregates follow it, not the order in which tests finished.
    index: int | None = None
    #: Across the samples of a sampled assertion (`samples=N`, or a confidence): how many
    #: held, of how many, and so whether the test is "stable_pass", "stable_fail" or
    #: "flaky" (both outcomes among its samples); None with a single sample.
    sample_wins: int | None = None
    sample_count: int | None = None
    flakiness: Literal["stable_pass", "stable_fail", "flaky"] | None = None


class ErrorRecord(BaseModel):
    """A test that ended in a judge error (no verdict)."""

    model_config = ConfigDict(frozen=True)

    nodeid: str
    message: str
    kind: str = "judge_error"


class RunInfo(BaseModel):
    """What the run was: the judge model, what was run, when, and whether it ran whole."""

    model_config = ConfigDict(frozen=True)

    #: The run's judge model(s); None when no judge was built (cache only, or none).
    judge_model: str | None = None
    #: The test paths and options pytest was given (credentials masked).
    data: str = ""
    #: ISO 8601 times, UTC, to the second.
    started: str = ""
    finished: str = ""
    #: False when the run was interrupted or stopped early (Ctrl-C, -x, --maxfail).
    complete: bool = True


class RunReport(BaseModel):
    """Everything a CI system needs to decide on, and to show, a judged run."""

    model_config = ConfigDict(frozen=True)

    format: Literal["pytest-rubric-judge/run"] = "pytest-rubric-judge/run"
    version: int = REPORT_VERSION
    passed: bool
    #: The report format's key (kept as first published, whatever the Python spelling).
    judgements: tuple[JudgmentRecord, ...]
    errors: tuple[ErrorRecord, ...]
    #: Judge work over the whole run: requests, retries, cache hits, tokens, ...
    totals: dict[str, int]
    aggregates: Aggregates
    gates: tuple[GateResult, ...] = ()
    notes: tuple[str, ...] = ()
    run: RunInfo = RunInfo()

    @property
    def failing(self) -> tuple[JudgmentRecord, ...]:
        """The judged assertions that did not hold (suite ones included, caught ones not)."""
        return tuple(r for r in self.judgements if not r.passed and not r.caught)

    @property
    def gates_passed(self) -> bool:
        return all(result.passed for result in self.gates)


def aggregate_run(
    judgements: Iterable[JudgmentRecord],
    error_count: int,
    *,
    level: float = DEFAULT_LEVEL,
    resamples: int | None = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Aggregates:
    """The protocol's aggregates over the run: A is the baseline, B the candidate (`new`).

    Each judgment is aggregated at its test's collection `index`, so the means and the
    seeded bootstrap are the same whatever order the tests finished in (pytest-xdist);
    judgments of one test keep the order they are given in. A failure the test caught
    (`caught`) is what the test expected and is left out.
    """
    aggregator = Aggregator(level=level, resamples=resamples, seed=seed)
    for record in judgements:
        if record.verdict is not None and not record.caught:
            aggregator.add(record.verdict, record.index)
    for _ in range(error_count):
        aggregator.add_error()
    return aggregator.result()


def build_report(
    judgements: Sequence[JudgmentRecord],
    errors: Sequence[ErrorRecord],
    totals: Mapping[str, int],
    gates: Iterable[Gate] = (),
    *,
    tests_passed: bool = True,
    notes: Iterable[str] = (),
) -> RunReport:
    """The report of a run; `passed` is false when a test failed or a gate was not met."""
    aggregates = aggregate_run(judgements, len(errors))
    results = tuple(evaluate(gates, aggregates))
    return RunReport(
        passed=tests_passed and all(result.passed for result in results),
        judgements=tuple(judgements),
        errors=tuple(errors),
        totals=dict(totals),
        aggregates=aggregates,
        gates=results,
        notes=tuple(notes),
    )


def report_json(report: RunReport) -> str:
    """The report as indented JSON text (what `--judge-report` writes)."""
    return report.model_dump_json(indent=2) + "\n"


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: never half a report.

    A report that already exists keeps its mode.
    """
    with replacing_text(path) as handle:
        handle.write(text)


#: The earlier spelling, kept so that code written against it still works.
JudgementRecord = JudgmentRecord

__all__ = [
    "ErrorRecord",
    "JudgementRecord",
    "JudgmentRecord",
    "RunInfo",
    "RunReport",
    "aggregate_run",
    "build_report",
    "report_json",
    "write_text_atomic",
]
