"""Per-test hooks: the judge context around each test, and what each report says.

- Around each test call a `JudgeContext` gives assertions the run's judge and tells the
  run about every judged assertion. In a `judge_suite` test a failed judged assertion
  (pairwise or pointwise) is recorded for the gates instead of failing the test.
- A judged assertion that failed but whose exception did not leave the test (caught by
  `pytest.raises`, a test of the judge itself) is recorded as `caught`: it is what the
  test expected, and it counts toward no gate.
- A judge error is an error everywhere: the report's phase is set to `setup` for one
  raised in the test body, because pytest's JUnit writer writes `<error>` only for a
  setup or teardown report (a call report is a `<failure>`). Its long report is the
  one-line message, never a traceback (whose frames may hold credentials).
- With no judge configured, each test's error says so in one line and the run's summary
  says once how to configure one. A judge server started by `--judge-serve` that exited
  during the run is named, with the tail of its log, in place of the connection error.
- A mistake in how a test uses the judge (its own `criteria=`, or the run's judge in a
  test not marked `judge` while `-m` selects by that marker) is a one-line ERROR that is
  not a judge error (`usage`).
- Only judged assertions that belong to the run (see `state.RubricJudgePlugin.belongs`)
  are recorded for the summary, aggregates, gates and reports; every judged assertion
  of a test is in its own report section.
- Every report is searched for the run's credentials (key, URL passwords) and masked.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..context import JudgeContext, judge_context
from ..errors import JudgeError, JudgeNotConfiguredError, JudgeUnavailableError
from .redaction import mask_report
from .state import (
    RubricJudgePlugin,
    get_plugin,
    judgments_key,
    outside_key,
    plugin_key,
    qualified_name,
)
from .usage import JudgeUsageError, criteria_mistake, unmarked_use

if TYPE_CHECKING:
    from ..context import Judgment
    from ..judge import JudgeLike
    from ..report.run_json import JudgmentRecord

SECTION = "rubric judge"
SUITE_NOTE = (
    "judge_suite: recorded for the suite-level gates (--judge-fail-under); "
    "a judged assertion that does not hold does not fail this test"
)
CAUGHT_NOTE = (
    "caught by the test (pytest.raises or except): what the test expected, so it counts "
    "toward no gate"
)
JUDGE_ERROR = ("judge_outcome", "judge_error")

#: The results (verdicts or grades) whose failure a `judge_suite` test swallowed.
swallowed_key = pytest.StashKey[list[object]]()


def _judged_failures() -> tuple[type[BaseException], ...]:
    """`JudgmentFailed` and `GradeFailed`, once the assertions are in use (else nothing)."""
    module = sys.modules.get("pytest_rubric_judge.assertions")
    if module is None:  # no judged assertion has run, so none can have failed
        return ()
    return (module.JudgmentFailed, module.GradeFailed)


def _undecided() -> type[BaseException] | None:
    """`JudgeUndecided`, once the assertions are in use (else None)."""
    module = sys.modules.get("pytest_rubric_judge.assertions")
    return None if module is None else module.JudgeUndecided


def _undecided_skips(item: pytest.Item) -> tuple[type[BaseException], ...]:
    """`JudgeUndecided` when `--judge-undecided=skip` makes a skip of it (else none)."""
    undecided = _undecided()
    state = item.config.stash.get(plugin_key, None)
    skip = state is not None and state.settings.judge_undecided == "skip"
    return (undecided,) if skip and undecided is not None else ()


def _undecided_error(state: RubricJudgePlugin, error: BaseException | None) -> bool:
    """Whether `error` is an undecided assertion that `--judge-undecided=error` makes an
    ERROR of (a judge error: it counts toward the `errors` gate)."""
    undecided = _undecided()
    return (
        state.settings.judge_undecided == "error"
        and undecided is not None
        and isinstance(error, undecided)
    )


def is_suite(item: pytest.Item) -> bool:
    return item.get_closest_marker("judge_suite") is not None


def _suite_failures(item: pytest.Item) -> tuple[type[BaseException], ...]:
    """The judged failures a `judge_suite` test records instead of raising (else none):
    an undecided assertion too, unless `--judge-undecided` makes an error or a skip of it."""
    if not is_suite(item):
        return ()
    state = item.config.stash.get(plugin_key, None)
    undecided = _undecided()
    if undecided is None or (state is not None and state.settings.judge_undecided != "fail"):
        return _judged_failures()
    return (*_judged_failures(), undecided)


def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash.get(plugin_key, None)
    if state is not None:
        state.index = {item.nodeid: index for index, item in enumerate(session.items)}


def _run_judge(item: pytest.Item, state: RubricJudgePlugin) -> JudgeLike:
    """The run's judge for an assertion of `item` given no `judge=`."""
    __tracebackhide__ = True
    refused = unmarked_use(item)
    if refused is not None:
        raise refused
    return state.get_judge()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    state = get_plugin(item.config)
    context = JudgeContext(
        get_judge=partial(_run_judge, item, state),
        on_judgment=partial(state.on_judgment, item),
        confidence=state.settings.judge_confidence,
        max_samples=state.settings.judge_max_samples,
    )
    # `running`: the test's rubric lock file, and a dry run's skip (plugin/controls.py).
    with judge_context(context), state.controls.running(item, qualified_name(item)):
        try:
            return (yield)
        except _suite_failures(item) as failure:
            # Recorded (passed=False) before it was raised: it counts toward the gates; the
            # test itself holds. Judge errors are not caught: they stay errors.
            swallowed = item.stash.setdefault(swallowed_key, [])
            swallowed.extend(_results_of(failure))
            return None
        except _undecided_skips(item) as undecided:  # --judge-undecided=skip
            message = str(undecided).splitlines()[0]
            raise pytest.skip.Exception(message, _use_item_location=True) from undecided
        except (TypeError, ValueError) as error:
            mistake = criteria_mistake(error, Path(item.path))
            if mistake is None:
                raise
            raise mistake from None


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    """`error` and every exception it was raised from or during."""
    seen: set[int] = set()
    pending = [error] if error is not None else []
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _results_of(error: BaseException) -> list[object]:
    """The verdict or grade a judged failure carries (`JudgmentFailed`, `GradeFailed`)."""
    found = (getattr(error, "verdict", None), getattr(error, "grade", None))
    return [result for result in found if result is not None]


def _escaped(item: pytest.Item, call: pytest.CallInfo[None]) -> set[int]:
    """Ids of the verdicts and grades whose failure left the test (or a suite swallowed)."""
    found = {id(result) for result in item.stash.get(swallowed_key, [])}
    for error in _chain(call.excinfo.value if call.excinfo is not None else None):
        found.update(id(result) for result in _results_of(error))
    return found


def _records(
    item: pytest.Item, call: pytest.CallInfo[None], judgements: list[Judgment]
) -> list[JudgmentRecord]:
    from ..models import Verdict
    from ..report.run_json import JudgmentRecord
    from ..sequential import flakiness

    suite = is_suite(item)
    escaped = _escaped(item, call)
    state = item.config.stash.get(plugin_key, None)
    index = state.index.get(item.nodeid) if state is not None else None
    records = []
    for judgment in judgements:
        caught = not judgment.passed and id(judgment.result) not in escaped
        note = judgment.note
        extra = CAUGHT_NOTE if caught else SUITE_NOTE if suite and not judgment.passed else ""
        if extra:
            note = f"{note}\n{extra}" if note else extra
        verdict = judgment.verdict if isinstance(judgment.verdict, Verdict) else None
        records.append(
            JudgmentRecord(
                nodeid=item.nodeid,
                assertion=judgment.assertion,
                passed=judgment.passed,
                names=judgment.names,
                note=note,
                suite=suite,
                caught=caught,
                verdict=verdict,
                grade=judgment.grade,
                index=index,
                sample_wins=judgment.sample_wins,
                sample_count=judgment.sample_count,
                flakiness=flakiness(judgment.sample_wins, judgment.sample_count),
            )
        )
    return records


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    state = item.config.stash.get(plugin_key, None)
    if state is None:
        return (yield)
    judgements: list[Judgment] = item.stash.get(judgments_key, []) if call.when == "call" else []
    records = _records(item, call, judgements) if judgements else []
    judge_error = call.excinfo is not None and (
        isinstance(call.excinfo.value, JudgeError) or _undecided_error(state, call.excinfo.value)
    )
    if records:
        from ..report.text import judgment_lines, junit_properties

        text = "\n\n".join("\n".join(judgment_lines(record)) for record in records)
        item.add_report_section("call", SECTION, text)
        for record in records:
            item.user_properties.extend(junit_properties(record))
            item.user_properties.append(("judge_passed", record.passed))
            if record.caught:
                item.user_properties.append(("judge_caught", True))
        if any(record.suite for record in records):
            item.user_properties.append(("judge_suite", True))
    if judge_error and call.when != "teardown":
        item.user_properties.append(JUDGE_ERROR)
    report = yield
    outside = item.stash.get(outside_key, set())
    for judgment, record in zip(judgements, records, strict=True):
        if id(judgment) not in outside:
            state.records.append((state.order(item.nodeid), record))
    if judge_error and call.when != "teardown" and report.failed:
        from ..report.run_json import ErrorRecord

        assert call.excinfo is not None
        error = call.excinfo.value
        message = state.mask(_error_line(state, error))
        report.longrepr = message
        # pytest's JUnit writer makes `<error>` of a failed setup report only.
        report.when = "setup"
        if not isinstance(error, JudgeUsageError):  # a test's mistake, not a judge error
            kind = str(getattr(error, "kind", "judge_error"))
            failure = ErrorRecord(nodeid=item.nodeid, message=message, kind=kind)
            state.errors.append((state.order(item.nodeid), failure))
    if call.when == "call":
        from .state import baseline_key

        writes = item.stash.get(baseline_key, [])
        if report.passed:
            state.baselines.extend((state.order(item.nodeid), write) for write in writes)
    mask_report(report, state.secret_forms)
    return report


#: What replaces the hint on configuring a judge in each test's error line.
SHORT_HINT = "(how to configure a judge: see the rubric judge summary)"


def _error_line(state: RubricJudgePlugin, error: BaseException) -> str:
    """The one line a judge error is reported as. The hint on configuring a judge is
    given once, in the summary; a connection refused by a `--judge-serve` server that has
    exited is reported as that exit, with the tail of its log."""
    from ..config import NOT_CONFIGURED_HINT

    if not isinstance(error, JudgeError):  # undecided (--judge-undecided=error): one line
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    line = f"{type(error).__name__}: {error}"
    if isinstance(error, JudgeNotConfiguredError) and NOT_CONFIGURED_HINT in line:
        state.add_note(f"no judge configured: {NOT_CONFIGURED_HINT}")
        return line.replace(f": {NOT_CONFIGURED_HINT}", f" {SHORT_HINT}")
    if isinstance(error, JudgeUnavailableError):
        exited = state.server_exit()
        if exited is not None:
            return f"JudgeServerError: {exited}"
    return line


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    state = collector.config.stash.get(plugin_key, None)
    if state is not None:
        mask_report(report, state.secret_forms)
    return report


def pytest_report_teststatus(
    report: pytest.TestReport | pytest.CollectReport,
) -> tuple[str, str, str] | None:
    # Collection reports come here too, and they carry no user properties.
    if report.failed and JUDGE_ERROR in getattr(report, "user_properties", ()):
        return "error", "E", "ERROR"
    return None
