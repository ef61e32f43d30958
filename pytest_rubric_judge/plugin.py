"""The pytest plugin: options, hooks and the run's judge. A thin layer over the core.

State lives in one `RubricJudgePlugin` object per run, kept in `config.stash`. Judged
assertions report to it through a context variable set around each test call, so the
assertion functions need no pytest import.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from . import hookspecs
from .baselines import write_baseline
from .context import JudgeContext, Judgement, judge_context
from .errors import JudgeError
from .fixtures import judge, judge_baseline
from .judge import Judge
from .report.text import judgement_lines, summary_lines
from .settings import Settings, add_options, read_settings

__all__ = ["judge", "judge_baseline"]

JUDGE_FIXTURES = frozenset({"judge", "judge_baseline"})
SECTION = "rubric judge"


@dataclass(frozen=True)
class BaselineWrite:
    """A baseline to write at the end of a run that passed."""

    path: Path
    text: str
    reason: str


judgements_key = pytest.StashKey[list[Judgement]]()
baseline_key = pytest.StashKey[list[BaselineWrite]]()


class RubricJudgePlugin:
    """The run's judge, its judgements, and the hooks that report them."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self._judge: Judge | None = None
        self._lock = threading.Lock()
        #: Every judge that gave a verdict in this run, for the totals.
        self._judges: dict[int, Judge] = {}
        self.results: list[tuple[str, Judgement]] = []
        self.errors: list[tuple[str, str]] = []
        self.approved_baselines: list[BaselineWrite] = []
        self.notes: list[str] = []

    # -- the judge -------------------------------------------------------------------

    def get_judge(self) -> Judge:
        """The run's judge, made on first use by the `pytest_rubric_judge_make_judge` hook."""
        with self._lock:
            if self._judge is None:
                made = self.config.hook.pytest_rubric_judge_make_judge(config=self.config)
                if not isinstance(made, Judge):
                    raise pytest.UsageError(
                        "pytest_rubric_judge_make_judge must return a Judge, "
                        f"got {type(made).__name__}"
                    )
                self._judge = made
            return self._judge

    def close(self) -> None:
        if self._judge is not None:
            self._judge.close()

    # -- per test ----------------------------------------------------------------------

    def _on_judgement(self, item: pytest.Item, judgement: Judgement) -> None:
        if judgement.judge is not None:
            self._judges.setdefault(id(judgement.judge), judgement.judge)
        item.stash.setdefault(judgements_key, []).append(judgement)
        item.config.hook.pytest_rubric_judge_verdict(item=item, verdict=judgement.verdict)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        context = JudgeContext(
            get_judge=self.get_judge, on_judgement=partial(self._on_judgement, item)
        )
        with judge_context(context):
            return (yield)

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
        if judgements:
            text = "\n\n".join("\n".join(judgement_lines(j)) for j in judgements)
            item.add_report_section("call", SECTION, text)
            for judgement in judgements:
                item.user_properties.extend(_properties(judgement))
        if judge_error:
            item.user_properties.append(("judge_outcome", "judge_error"))
        report = yield
        if call.when != "call":
            return report
        for judgement in judgements:
            self.results.append((item.nodeid, judgement))
        if judge_error:
            assert call.excinfo is not None
            error = call.excinfo.value
            message = f"{type(error).__name__}: {error}"
            report.longrepr = message
            self.errors.append((item.nodeid, message))
        writes: list[BaselineWrite] = item.stash.get(baseline_key, [])
        if report.passed:
            self.approved_baselines.extend(writes)
        return report

    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        if report.when == "call" and report.failed and _is_judge_error(report):
            return "error", "E", "ERROR"
        return None

    # -- end of run ------------------------------------------------------------------

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        pending = self.approved_baselines
        if not pending:
            return
        if exitstatus != 0:
            self.notes.append(
                f"baselines: {len(pending)} update(s) held back because the run did not pass"
            )
            return
        for write in pending:
            write_baseline(write.path, write.text)
            self.notes.append(f"baselines: {write.reason}: {_relative(write.path, self.config)}")

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not (self.results or self.errors or self.notes):
            return
        judges = dict(self._judges)
        if self._judge is not None:
            judges.setdefault(id(self._judge), self._judge)
        totals: dict[str, int] = {}
        for each in judges.values():
            for name, value in each.stats.as_dict().items():
                totals[name] = totals.get(name, 0) + value
        terminalreporter.section(SECTION)
        for line in summary_lines(self.results, totals, errors=self.errors, notes=self.notes):
            terminalreporter.write_line(line)


def _is_judge_error(report: pytest.TestReport) -> bool:
    return ("judge_outcome", "judge_error") in report.user_properties


def _relative(path: Path, config: pytest.Config) -> str:
    try:
        return str(path.relative_to(config.rootpath))
    except ValueError:
        return str(path)


def _round(value: float) -> float:
    return round(value, 4) + 0.0  # + 0.0 turns -0.0 into 0.0


def _properties(judgement: Judgement) -> list[tuple[str, object]]:
    """A judgement's key facts as junitxml properties (`item.user_properties`)."""
    verdict = judgement.verdict
    new, baseline = judgement.names[1], judgement.names[0]
    props: list[tuple[str, object]] = [
        ("judge_assertion", judgement.assertion),
        ("judge_preference", verdict.preference),
        ("judge_consistent", verdict.consistent),
        (f"judge_margin_{new}_minus_{baseline}", _round(verdict.weighted_b - verdict.weighted_a)),
        (f"judge_weighted_{baseline}", _round(verdict.weighted_a)),
        (f"judge_weighted_{new}", _round(verdict.weighted_b)),
        ("judge_cached", verdict.cached),
    ]
    for criterion in verdict.rubric.criteria:
        forward = verdict.forward.score(criterion.name)
        reversed_ = verdict.reversed.score(criterion.name)
        if forward is None or reversed_ is None:
            continue
        props.append(
            (
                f"judge_criterion_{criterion.name}",
                f"weight={criterion.weight:.3f} {baseline}={forward.score_a},{reversed_.score_a} "
                f"{new}={forward.score_b},{reversed_.score_b}",
            )
        )
    return props


# -- module-level hooks (pytest finds them through the pytest11 entry point) ----------

plugin_key = pytest.StashKey[RubricJudgePlugin]()


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
    plugin = RubricJudgePlugin(config, read_settings(config))
    config.stash[plugin_key] = plugin
    config.pluginmanager.register(plugin, "rubric-judge-session")


def pytest_unconfigure(config: pytest.Config) -> None:
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
def pytest_rubric_judge_make_judge(config: pytest.Config) -> Judge:
    """The default judge, built from the options."""
    settings = config.stash[plugin_key].settings
    return Judge(
        settings.judge_url,
        settings.judge_model,
        api_key=settings.api_key,
        cache_dir=settings.judge_cache_dir,
        cache_mode=settings.judge_cache,
        timeout=settings.judge_timeout,
        max_retries=settings.judge_max_retries,
        temperature=settings.judge_temperature,
        max_tokens=settings.judge_max_tokens,
        max_input_chars=settings.judge_max_input_chars,
    )
