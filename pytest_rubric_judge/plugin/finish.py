"""The end of a run: aggregates and gates, baseline writes, reports, the closing summary.

Nothing here raises: a baseline or report that cannot be written (a full disk, text that
is not valid UTF-8) is one line in the summary, the other writes still happen, and the
run's exit status says that something asked for was not done.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .diff import compare_run, show_diff
from .state import RubricJudgePlugin, plugin_key

if TYPE_CHECKING:
    from ..report.run_json import ErrorRecord, JudgmentRecord, RunInfo, RunReport
    from ..stats import Aggregates

#: The key of this plugin's data in an xdist worker's `workeroutput`.
WORKER_OUTPUT_KEY = "rubric_judge"
SECTION = "rubric judge"


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(plugin_key, None)
    if state is None:
        return
    if state.is_worker:
        workeroutput: dict[str, Any] = getattr(session.config, "workeroutput")  # noqa: B009
        workeroutput[WORKER_OUTPUT_KEY] = state.worker_output()
        return
    for note in state.cache_notes():
        state.add_note(note)
    for note in state.controls.summary_lines(state.totals()):  # budget, dry run, locks
        state.add_note(note)
    if state.controls.failed() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR  # a lock file was not written
    records, errors = state.sorted_records(), state.sorted_errors()
    settings = state.settings
    wanted = bool(records or errors or settings.judge_fail_under)
    wanted = wanted or bool(settings.judge_report or settings.judge_report_md)
    wanted = wanted or settings.judge_compare_to is not None
    report = _finish_run(state, session, records, errors) if wanted else None
    if report is not None:
        compare_run(state, session, report)  # before baselines: a regression may fail the run
    _write_baselines(state, session)
    if report is not None:
        report = report.model_copy(
            update={"passed": session.exitstatus == 0, "notes": tuple(state.notes)}
        )
        _write_reports(state, session, report)
    state.report = report


def counted(records: list[JudgmentRecord]) -> list[JudgmentRecord]:
    """The records that count toward aggregates and gates: all but those a test caught."""
    return [record for record in records if not record.caught]


def _finish_run(
    state: RubricJudgePlugin,
    session: pytest.Session,
    records: list[JudgmentRecord],
    errors: list[ErrorRecord],
) -> RunReport:
    """Aggregates and gates over the run; a gate not met fails the run."""
    from ..gates import evaluate, failed
    from ..report.run_json import RunReport, aggregate_run

    aggregates = aggregate_run(counted(records), len(errors))
    gates = evaluate(state.settings.judge_fail_under, aggregates)
    if counted(records):
        state.add_note(_rates_line(aggregates))
    suite_failures = sum(1 for r in counted(records) if r.suite and not r.passed)
    if suite_failures:
        state.add_note(
            f"judge_suite: {suite_failures} judged assertion(s) did not hold; they count "
            "toward the gates instead of failing their tests"
            + ("" if gates else " (no --judge-fail-under gate is set)")
        )
    caught = len(records) - len(counted(records))
    if caught:
        state.add_note(
            f"{caught} judged assertion(s) failed as their tests expected (caught by "
            "pytest.raises or except); they count toward no gate"
        )
    for result in gates:
        state.add_note(result.line())
    if failed(gates):
        state.add_note(f"judge gates: {len(failed(gates))} of {len(gates)} not met; the run fails")
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    return RunReport(
        run=_run_info(state, session),
        passed=session.exitstatus == pytest.ExitCode.OK,
        judgements=tuple(records),
        errors=tuple(errors),
        totals=state.totals(),
        aggregates=aggregates,
        gates=tuple(gates),
    )


def _run_info(state: RubricJudgePlugin, session: pytest.Session) -> RunInfo:
    """The judge model, the run's arguments, its times, and whether it ran whole."""
    from ..report.run_json import RunInfo

    judges = list(state.judges.values())
    model = ", ".join(dict.fromkeys(j.model for j in judges)) if judges else None
    stopped = bool(session.shouldstop) or bool(session.shouldfail)
    interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED
    return RunInfo(
        judge_model=model or None,
        data=state.mask(" ".join(session.config.invocation_params.args) or "."),
        started=state.started,
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        complete=not (stopped or interrupted),
    )


def _not_done(state: RubricJudgePlugin, session: pytest.Session, line: str) -> None:
    """Something the run was asked to write was not written: say so, fail the run."""
    state.add_note(" ".join(state.mask(line).split()))
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


def _problem(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _write_baselines(state: RubricJudgePlugin, session: pytest.Session) -> None:
    from ..baselines import write_baseline

    pending = state.approved_baselines()
    if not pending:
        return
    if session.exitstatus != pytest.ExitCode.OK:
        state.add_note(
            f"baselines: {len(pending)} update(s) held back because the run did not pass"
        )
        return
    kept: dict[Path, list[str]] = {}
    for write in pending:
        shown = _relative(write.path, state.config)
        try:
            write_baseline(write.path, write.text)
        except Exception as error:  # never raise from the end of a run
            _not_done(state, session, f"baselines: NOT written to {shown}: {_problem(error)}")
            continue
        state.add_note(f"baselines: {write.reason}: {shown}")
        if write.legacy is None:
            continue
        if write.remove_legacy:
            try:
                write.legacy.unlink(missing_ok=True)
            except OSError as error:
                state.add_note(
                    f"baselines: could not remove {write.legacy.name}: {_problem(error)}"
                )
        else:
            kept.setdefault(write.legacy, []).append(write.path.stem)
    for legacy, owners in kept.items():
        state.add_note(
            f"baselines: kept {legacy.name} in {_relative(legacy.parent, state.config)}: more "
            f"than one test of the module has that name ({', '.join(owners)} now have their "
            "own files); delete it once none reads it"
        )


def _write_reports(state: RubricJudgePlugin, session: pytest.Session, report: RunReport) -> None:
    from ..report.markdown import markdown_summary
    from ..report.run_json import report_json, write_text_atomic

    outputs = (
        (state.settings.judge_report, report_json),
        (state.settings.judge_report_md, markdown_summary),
    )
    for path, render in outputs:
        if path is None:
            continue
        try:
            write_text_atomic(path, render(report))
        except Exception as error:  # never raise from the end of a run
            _not_done(state, session, f"judge report NOT written to {path}: {_problem(error)}")
        else:
            state.add_note(f"judge report: {_relative(path, state.config)}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    state = terminalreporter.config.stash.get(plugin_key, None)
    if state is None or state.is_worker:
        return
    records, errors = state.sorted_records(), state.sorted_errors()
    if not (records or errors or state.notes):
        return
    from ..report.text import summary_lines

    terminalreporter.section(SECTION)
    pairs = [(error.nodeid, error.message) for error in errors]
    for line in summary_lines(records, state.totals(), errors=pairs, notes=state.notes):
        terminalreporter.write_line(state.mask(line))
    show_diff(terminalreporter, state)


def _rates_line(aggregates: Aggregates) -> str:
    rec = aggregates.reconciled
    judged = aggregates.comparisons - rec.errors
    winrate = aggregates.winrate
    rate = (
        f"{winrate:.3f} {aggregates.wilson.describe()}"
        if winrate is not None
        else "n/a (no decisive comparisons)"
    )
    consistency = (
        f"{aggregates.consistency_rate:.3f} ({round(aggregates.consistency_rate * judged)} of "
        f"{judged})"
        if aggregates.consistency_rate is not None
        else "n/a"
    )
    return (
        f"win rate of new over baseline: {rate}; new {rec.b_wins}, baseline {rec.a_wins}, "
        f"ties {rec.ties + rec.bothbad}; consistent in both orders {consistency}"
    )


def _relative(path: Path, config: pytest.Config) -> str:
    try:
        return str(path.relative_to(config.rootpath))
    except ValueError:
        return str(path)
