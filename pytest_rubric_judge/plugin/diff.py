"""`--judge-compare-to OLD.json`: this run's report diffed against an earlier one.

At the end of the run (on the controller under pytest-xdist), after the aggregates and
gates and before baselines and reports are written, the run's report (the one
`--judge-report` writes, or would write) is compared with OLD.json (`rundiff`). The diff
is printed in its own terminal summary section, `rubric judge diff`, and one line of the
`rubric judge` summary (and of the reports' notes) says how many regressions it found.
With `--judge-fail-on-regression` a regression fails the run (exit status 1), so it also
holds back baseline updates. An OLD.json that cannot be read is one line in the summary
and makes the run exit with status 3, as a report that cannot be written does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .state import RubricJudgePlugin

if TYPE_CHECKING:
    from ..report.run_json import RunReport

__all__ = ["SECTION", "compare_run", "diff_key", "show_diff"]

SECTION = "rubric judge diff"
#: The diff's terminal lines, kept for the terminal summary.
diff_key = pytest.StashKey[list[str]]()


def _shown(state: RubricJudgePlugin, path: Path) -> str:
    try:
        return str(path.relative_to(state.config.rootpath))
    except ValueError:
        return str(path)


def compare_run(state: RubricJudgePlugin, session: pytest.Session, report: RunReport) -> None:
    """Diff `report` against `--judge-compare-to`; fail the run when asked and regressed."""
    settings = state.settings
    path = settings.judge_compare_to
    if path is None:
        if settings.judge_fail_on_regression:
            state.add_note(
                "judge diff: --judge-fail-on-regression has no effect without --judge-compare-to"
            )
        return
    from ..report.diff import diff_lines, headline
    from ..rundiff import ReportError, diff_reports, read_report

    shown = _shown(state, path)
    try:
        old = read_report(path)
    except ReportError as error:
        state.add_note(state.mask(f"judge diff NOT made: {error}"))
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        return
    diff = diff_reports(old, report, old_name=shown, new_name="this run")
    session.config.stash[diff_key] = diff_lines(diff)
    failing = bool(diff.regressions) and settings.judge_fail_on_regression
    state.add_note(
        f"judge diff against {shown}: {headline(diff)}" + ("; the run fails" if failing else "")
    )
    if failing and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def show_diff(terminalreporter: pytest.TerminalReporter, state: RubricJudgePlugin) -> None:
    """The diff's own section of the terminal summary, when the run made one."""
    lines = terminalreporter.config.stash.get(diff_key, None)
    if not lines:
        return
    terminalreporter.section(SECTION)
    for line in lines:
        terminalreporter.write_line(state.mask(line))
