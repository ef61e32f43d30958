"""The pytest plugin: options, hooks and the run's judge. A thin layer over the core.

State lives in one `RubricJudgePlugin` object per run, kept in `config.stash`. Judged
assertions report to it through a context variable set around each test call, so the
assertion functions need no pytest import.

Under pytest-xdist each worker collects its own judgements, judge errors, judge totals and
approved baseline writes, and hands them to the controller as plain JSON data in
`config.workeroutput`; the controller merges them in `pytest_testnodedown` (a hook of a
small class registered only when xdist is installed). Summary, reports, gates and baseline
writes then happen once, on the controller, over the whole run.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import pytest

from . import hookspecs
from .assertions import JudgmentFailed
from .baselines import write_baseline
from .context import JudgeContext, Judgement, judge_context
from .errors import JudgeError
from .fixtures import judge, judge_baseline
from .gates import evaluate, failed
from .judge import Judge
from .models import Verdict
from .panel import JudgePanel
from .report.markdown import markdown_summary
from .report.run_json import (
    ErrorRecord,
    JudgementRecord,
    RunReport,
    aggregate_run,
    report_json,
    write_text_atomic,
)
from .report.text import judgement_lines, junit_properties, summary_lines
from .serve import JudgeServer
from .settings import Settings, add_options, read_settings
from .stats import Aggregates

__all__ = ["judge", "judge_baseline"]

JUDGE_FIXTURES = frozenset({"judge", "judge_baseline"})
SECTION = "rubric judge"
#: The key of this plugin's data in an xdist worker's `workeroutput`.
WORKER_OUTPUT_KEY = "rubric_judge"
SUITE_NOTE = (
    "judge_suite: recorded for the suite-level gates (--judge-fail-under); "
    "a comparison that does not hold does not fail this test"
)

#: Where a record sits in the run: (the test's collection index, arrival order).
Order = tuple[int, int]


@dataclass(frozen=True)
class BaselineWrite:
    """A baseline to write at the end of a run that passed."""

    path: Path
    text: str
    reason: str

    def to_data(self) -> dict[str, str]:
        return {"path": str(self.path), "text": self.text, "reason": self.reason}

    @classmethod
    def from_data(cls, data: dict[str, str]) -> BaselineWrite:
        return cls(Path(data["path"]), data["text"], data["reason"])


judgements_key = pytest.StashKey[list[Judgement]]()
baseline_key = pytest.StashKey[list[BaselineWrite]]()


class RubricJudgePlugin:
    """The run's judge, its judgements, and the hooks that report them."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        self._judge: Judge | JudgePanel | None = None
        self._lock = threading.Lock()
        #: Every judge that gave a verdict in this process, for the totals.
        self._judges: dict[int, Judge | JudgePanel] = {}
        #: Judge totals reported by xdist workers.
        self._worker_totals: list[dict[str, int]] = []
        self._index: dict[str, int] = {}
        self._arrivals = 0
        self._records: list[tuple[Order, JudgementRecord]] = []
        self._errors: list[tuple[Order, ErrorRecord]] = []
        self._baselines: list[tuple[Order, BaselineWrite]] = []
        self.notes: list[str] = []
        #: The run's report, made at session finish (on the controller only).
        self.report: RunReport | None = None
        self._server: JudgeServer | None = None
        self._server_error: JudgeError | None = None

    # -- the judge -------------------------------------------------------------------

    def get_judge(self) -> Judge | JudgePanel:
        """The run's judge, made on first use by the `pytest_rubric_judge_make_judge` hook."""
        with self._lock:
            if self._judge is None:
                made = self.config.hook.pytest_rubric_judge_make_judge(config=self.config)
                if not isinstance(made, (Judge, JudgePanel)):
                    raise pytest.UsageError(
                        "pytest_rubric_judge_make_judge must return a Judge or a JudgePanel, "
                        f"got {type(made).__name__}"
                    )
                self._judge = made
            return self._judge

    def judge_url(self) -> str | None:
        """The configured URL, or that of the server `--judge-serve` starts (once per run).

        A server that fails to start fails every test that needs the judge with the same
        error, naming the cause and the last lines of its log, without starting it again.
        """
        settings = self.settings
        if settings.judge_serve is None:
            return settings.judge_url
        if self._server_error is not None:
            raise self._server_error
        if self._server is None:
            assert settings.judge_serve_log is not None
            server = JudgeServer(
                settings.judge_serve,
                log_path=settings.judge_serve_log,
                startup_timeout=settings.judge_serve_timeout,
                progress=self._progress,
            )
            self._progress(f"rubric judge: starting {settings.judge_serve!r}")
            try:
                server.start()
            except JudgeError as error:
                self._server_error = error
                raise
            self._server = server
            self._progress(f"rubric judge: judge server ready at {server.url}")
        return self._server.url

    def _progress(self, line: str) -> None:
        """A line on the terminal, even while a test's output is captured."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)
        else:
            reporter.write_line(line)

    def close(self) -> None:
        try:
            if self._judge is not None:
                self._judge.close()
        finally:
            if self._server is not None:
                self._server.stop()

    # -- what the run found, in collection order ---------------------------------------

    @property
    def records(self) -> list[JudgementRecord]:
        return [record for _, record in sorted(self._records, key=lambda pair: pair[0])]

    @property
    def error_records(self) -> list[ErrorRecord]:
        return [record for _, record in sorted(self._errors, key=lambda pair: pair[0])]

    @property
    def results(self) -> list[tuple[str, Judgement]]:
        """Every judged assertion of the run as `(nodeid, Judgement)`, for the text summary."""
        return [(record.nodeid, _judgement(record)) for record in self.records]

    @property
    def errors(self) -> list[tuple[str, str]]:
        return [(record.nodeid, record.message) for record in self.error_records]

    @property
    def approved_baselines(self) -> list[BaselineWrite]:
        return [write for _, write in sorted(self._baselines, key=lambda pair: pair[0])]

    def totals(self) -> dict[str, int]:
        """The judge work of the whole run: this process's judges plus every worker's."""
        judges = dict(self._judges)
        if self._judge is not None:
            judges.setdefault(id(self._judge), self._judge)
        parts = [
            each.stats_totals() if isinstance(each, JudgePanel) else each.stats.as_dict()
            for each in judges.values()
        ]
        return _sum_totals([*parts, *self._worker_totals])

    def _order(self, nodeid: str) -> Order:
        self._arrivals += 1
        return (self._index.get(nodeid, len(self._index)), self._arrivals)

    # -- xdist -------------------------------------------------------------------------

    def worker_output(self) -> dict[str, Any]:
        """This worker's findings as plain JSON data for `config.workeroutput`."""
        return {
            "records": [
                {"order": list(order), "record": record.model_dump(mode="json")}
                for order, record in self._records
            ],
            "errors": [
                {"order": list(order), "error": error.model_dump(mode="json")}
                for order, error in self._errors
            ],
            "baselines": [
                {"order": list(order), "write": write.to_data()} for order, write in self._baselines
            ],
            "totals": self.totals(),
            "notes": self._cache_notes(),
        }

    def merge_worker_output(self, data: dict[str, Any]) -> None:
        """Take in what one worker found (see `worker_output`)."""
        for item in data.get("records", []):
            order = (int(item["order"][0]), int(item["order"][1]))
            self._records.append((order, JudgementRecord.model_validate(item["record"])))
        for item in data.get("errors", []):
            order = (int(item["order"][0]), int(item["order"][1]))
            self._errors.append((order, ErrorRecord.model_validate(item["error"])))
        for item in data.get("baselines", []):
            order = (int(item["order"][0]), int(item["order"][1]))
            self._baselines.append((order, BaselineWrite.from_data(item["write"])))
        self._worker_totals.append({str(k): int(v) for k, v in data.get("totals", {}).items()})
        self.notes.extend(note for note in data.get("notes", []) if note not in self.notes)

    def _cache_notes(self) -> list[str]:
        """What the judges' caches repaired in this process (a damaged file moved aside)."""
        found = [self._judge] if self._judge is not None else []
        found += list(self._judges.values())
        judges = [
            judge
            for each in found
            for judge in (each.judges if isinstance(each, JudgePanel) else (each,))
        ]
        seen: dict[int, Judge] = {id(each): each for each in judges}
        return [line for each in seen.values() for line in each.cache.recovered]

    # -- per test ----------------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._index = {item.nodeid: index for index, item in enumerate(session.items)}

    def _on_judgement(self, item: pytest.Item, judgement: Judgement) -> None:
        if judgement.judge is not None:
            self._judges.setdefault(id(judgement.judge), judgement.judge)
        if _is_suite(item) and not judgement.passed:
            note = f"{judgement.note}\n{SUITE_NOTE}" if judgement.note else SUITE_NOTE
            judgement = replace(judgement, note=note)
        item.stash.setdefault(judgements_key, []).append(judgement)
        item.config.hook.pytest_rubric_judge_verdict(item=item, verdict=judgement.result)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        context = JudgeContext(
            get_judge=self.get_judge, on_judgement=partial(self._on_judgement, item)
        )
        with judge_context(context):
            if not _is_suite(item):
                return (yield)
            try:
                return (yield)
            except JudgmentFailed:
                # Recorded (with passed=False) before it was raised: it counts toward the
                # gates; the test itself holds. Judge errors are not caught: still errors.
                return None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        judgements: list[Judgement] = (
            item.stash.get(judgements_key, []) if call.when == "call" else []
        )
        judge_error = (
            call.when == "call"
            and call.excinfo is not None
            and isinstance(call.excinfo.value, JudgeError)
        )
        suite = _is_suite(item)
        if judgements:
            text = "\n\n".join("\n".join(judgement_lines(j)) for j in judgements)
            item.add_report_section("call", SECTION, text)
            for judgement in judgements:
                item.user_properties.extend(junit_properties(judgement))
                item.user_properties.append(("judge_passed", judgement.passed))
            if suite:
                item.user_properties.append(("judge_suite", True))
        if judge_error:
            item.user_properties.append(("judge_outcome", "judge_error"))
        report = yield
        if call.when != "call":
            return report
        for judgement in judgements:
            self._records.append((self._order(item.nodeid), _record(item.nodeid, judgement, suite)))
        if judge_error:
            assert call.excinfo is not None
            error = call.excinfo.value
            message = f"{type(error).__name__}: {error}"
            report.longrepr = message
            kind = getattr(error, "kind", "judge_error")
            self._errors.append(
                (
                    self._order(item.nodeid),
                    ErrorRecord(nodeid=item.nodeid, message=message, kind=kind),
                )
            )
        writes: list[BaselineWrite] = item.stash.get(baseline_key, [])
        if report.passed:
            self._baselines.extend((self._order(item.nodeid), write) for write in writes)
        return report

    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        if report.when == "call" and report.failed and _is_judge_error(report):
            return "error", "E", "ERROR"
        return None

    # -- end of run ------------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            workeroutput: dict[str, Any] = getattr(self.config, "workeroutput")  # noqa: B009
            workeroutput[WORKER_OUTPUT_KEY] = self.worker_output()
            return
        self.notes.extend(note for note in self._cache_notes() if note not in self.notes)
        records, errors = self.records, self.error_records
        settings = self.settings
        wanted = bool(records or errors or settings.judge_fail_under)
        wanted = wanted or bool(settings.judge_report or settings.judge_report_md)
        if wanted:
            self._finish_run(session, records, errors)
        self._write_baselines(session)
        if self.report is not None:
            self.report = self.report.model_copy(
                update={"passed": session.exitstatus == 0, "notes": tuple(self.notes)}
            )
            self._write_reports(session, self.report)

    def _finish_run(
        self, session: pytest.Session, records: list[JudgementRecord], errors: list[ErrorRecord]
    ) -> None:
        """Aggregates and gates over the run; a gate not met fails the run."""
        aggregates = aggregate_run(records, len(errors))
        gates = evaluate(self.settings.judge_fail_under, aggregates)
        if records:
            self.notes.append(_rates_line(aggregates.winrate, aggregates))
        suite_failures = sum(1 for record in records if record.suite and not record.passed)
        if suite_failures:
            self.notes.append(
                f"judge_suite: {suite_failures} comparison(s) did not hold; they count toward "
                "the gates instead of failing their tests"
                + ("" if gates else " (no --judge-fail-under gate is set)")
            )
        self.notes.extend(result.line() for result in gates)
        if failed(gates):
            self.notes.append(
                f"judge gates: {len(failed(gates))} of {len(gates)} not met; the run fails"
            )
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.report = RunReport(
            passed=session.exitstatus == pytest.ExitCode.OK,
            judgements=tuple(records),
            errors=tuple(errors),
            totals=self.totals(),
            aggregates=aggregates,
            gates=tuple(gates),
        )

    def _write_baselines(self, session: pytest.Session) -> None:
        pending = self.approved_baselines
        if not pending:
            return
        if session.exitstatus != pytest.ExitCode.OK:
            self.notes.append(
                f"baselines: {len(pending)} update(s) held back because the run did not pass"
            )
            return
        for write in pending:
            write_baseline(write.path, write.text)
            self.notes.append(f"baselines: {write.reason}: {_relative(write.path, self.config)}")

    def _write_reports(self, session: pytest.Session, report: RunReport) -> None:
        outputs = (
            (self.settings.judge_report, report_json),
            (self.settings.judge_report_md, markdown_summary),
        )
        for path, render in outputs:
            if path is None:
                continue
            try:
                write_text_atomic(path, render(report))
            except OSError as error:
                # Never raise from the end of a run; a report CI asked for and did not get
                # fails the run instead.
                self.notes.append(f"judge report NOT written to {path}: {error}")
                if session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            else:
                self.notes.append(f"judge report: {_relative(path, self.config)}")

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.is_worker:
            return
        results, errors = self.results, self.errors
        if not (results or errors or self.notes):
            return
        terminalreporter.section(SECTION)
        for line in summary_lines(results, self.totals(), errors=errors, notes=self.notes):
            terminalreporter.write_line(line)


class _WorkerNode(Protocol):
    """What the controller sees of an xdist worker (`xdist.workermanage.WorkerController`)."""

    workeroutput: dict[str, Any]


class XdistHooks:
    """The controller's side of pytest-xdist; registered only when xdist is installed."""

    def __init__(self, plugin: RubricJudgePlugin) -> None:
        self.plugin = plugin

    def pytest_testnodedown(self, node: _WorkerNode, error: object | None) -> None:
        output = getattr(node, "workeroutput", None) or {}
        data = output.get(WORKER_OUTPUT_KEY)
        if data is not None:
            self.plugin.merge_worker_output(data)
        elif error is not None:
            name = getattr(node, "gateway", None)
            self.plugin.notes.append(
                f"judge: worker {getattr(name, 'id', '?')} went down before reporting its "
                f"judgements ({error}); the summary, reports and gates miss them"
            )


def _is_suite(item: pytest.Item) -> bool:
    return item.get_closest_marker("judge_suite") is not None


def _is_judge_error(report: pytest.TestReport) -> bool:
    return ("judge_outcome", "judge_error") in report.user_properties


def _record(nodeid: str, judgement: Judgement, suite: bool) -> JudgementRecord:
    verdict = judgement.verdict if isinstance(judgement.verdict, Verdict) else None
    return JudgementRecord(
        nodeid=nodeid,
        assertion=judgement.assertion,
        passed=judgement.passed,
        names=judgement.names,
        note=judgement.note,
        suite=suite,
        verdict=verdict,
        grade=judgement.grade,
    )


def _judgement(record: JudgementRecord) -> Judgement:
    return Judgement(
        verdict=record.verdict,
        assertion=record.assertion,
        passed=record.passed,
        names=record.names,
        note=record.note,
        grade=record.grade,
    )


def _sum_totals(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for part in parts:
        for name, value in part.items():
            totals[name] = totals.get(name, 0) + value
    return totals


def _rates_line(winrate: float | None, aggregates: Aggregates) -> str:
    rec = aggregates.reconciled
    judged = aggregates.comparisons - rec.errors
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


# -- module-level hooks (pytest finds them through the pytest11 entry point) ----------

plugin_key = pytest.StashKey[RubricJudgePlugin]()
xdist_key = pytest.StashKey[XdistHooks]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "judge: a test judged by the rubric judge (added automatically to tests that use "
        "the judge or judge_baseline fixture; deselect with -m 'not judge')",
    )
    config.addinivalue_line(
        "markers",
        "judge_suite: the test's comparisons count toward the suite-level gates "
        "(--judge-fail-under); a comparison that does not hold is recorded, not raised",
    )
    plugin = RubricJudgePlugin(config, read_settings(config))
    config.stash[plugin_key] = plugin
    config.pluginmanager.register(plugin, "rubric-judge-session")
    if config.pluginmanager.hasplugin("xdist") and not plugin.is_worker:
        hooks = XdistHooks(plugin)
        config.stash[xdist_key] = hooks
        config.pluginmanager.register(hooks, "rubric-judge-xdist")


def pytest_unconfigure(config: pytest.Config) -> None:
    hooks = config.stash.get(xdist_key, None)
    if hooks is not None:
        config.pluginmanager.unregister(hooks)
        del config.stash[xdist_key]
    plugin = config.stash.get(plugin_key, None)
    if plugin is not None:
        plugin.close()
        config.pluginmanager.unregister(plugin)
        del config.stash[plugin_key]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if JUDGE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker("judge")


@pytest.hookimpl(trylast=True)
def pytest_rubric_judge_make_judge(config: pytest.Config) -> Judge | JudgePanel:
    """The default judge (or panel), built from the options."""
    plugin = config.stash[plugin_key]
    settings = plugin.settings
    common: dict[str, Any] = {
        "api_key": settings.api_key,
        "cache_dir": settings.judge_cache_dir,
        "cache_mode": settings.judge_cache,
        "timeout": settings.judge_timeout,
        "max_retries": settings.judge_max_retries,
        "temperature": settings.judge_temperature,
        "max_tokens": settings.judge_max_tokens,
        "max_input_chars": settings.judge_max_input_chars,
        "seed": settings.judge_seed,
        "samples": settings.judge_samples,
        "structured_output": settings.judge_structured_output,
    }
    if settings.judge_panel:
        return JudgePanel(
            [Judge(url, model, **common) for model, url in settings.judge_panel],
            strategy=settings.judge_panel_strategy,  # type: ignore[arg-type]
            rubric_judge=settings.judge_panel_rubric,
        )
    return Judge(plugin.judge_url(), settings.judge_model, **common)
