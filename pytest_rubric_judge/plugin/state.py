"""The run's state: its settings, its judge (made on first use), and what the run found.

One `RubricJudgePlugin` per run lives in `config.stash[plugin_key]`; the hooks and the
fixtures read it from there and never import each other. Under pytest-xdist each worker
keeps its own and hands what it found to the controller as plain JSON data
(`worker_output`), which the controller merges (`merge_worker_output`).

Nothing heavy is imported here at import time: the judge, the report models and pydantic
load when a test first needs the judge or a judgment is recorded.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from ..errors import JudgeBuildError, JudgeError
from ..settings import Settings
from .controls import RunControls
from .redaction import scrub

if TYPE_CHECKING:
    from ..context import Judgment
    from ..judge import Judge, JudgeLike
    from ..panel import JudgePanel
    from ..report.run_json import ErrorRecord, JudgmentRecord, RunReport
    from ..serve import JudgeServer

#: Where a record sits in the run: (the test's collection index, arrival order).
Order = tuple[int, int]


@dataclass(frozen=True)
class BaselineWrite:
    """A baseline to write at the end of a run that passed.

    `legacy` is the file the baseline was read from under its older, class-less name;
    it is removed after the write when `remove_legacy` (no other test can own it).
    """

    path: Path
    text: str
    reason: str
    legacy: Path | None = None
    remove_legacy: bool = False

    def to_data(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "text": self.text,
            "reason": self.reason,
            "legacy": str(self.legacy) if self.legacy is not None else None,
            "remove_legacy": self.remove_legacy,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> BaselineWrite:
        legacy = data.get("legacy")
        return cls(
            Path(data["path"]),
            data["text"],
            data["reason"],
            Path(legacy) if legacy else None,
            bool(data.get("remove_legacy", False)),
        )


class RubricJudgePlugin:
    """The run's settings, its judge and server, and its judgements, errors and baselines."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        #: When the run began (ISO 8601, UTC), for the reports.
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        #: Every spelling of the run's credentials, masked from every report.
        self.secret_forms = settings.secret_forms()
        self._judge: JudgeLike | None = None
        self._build_error: tuple[type[JudgeError], str] | None = None
        self._lock = threading.Lock()
        #: Every judge that gave a verdict in this process, for the totals.
        self.judges: dict[int, JudgeLike] = {}
        #: Judge totals reported by xdist workers.
        self.worker_totals: list[dict[str, int]] = []
        self.index: dict[str, int] = {}
        self._arrivals = 0
        self.records: list[tuple[Order, JudgmentRecord]] = []
        self.errors: list[tuple[Order, ErrorRecord]] = []
        self.baselines: list[tuple[Order, BaselineWrite]] = []
        self.notes: list[str] = []
        #: The run's report, made at session finish (on the controller only).
        self.report: RunReport | None = None
        self._server: JudgeServer | None = None
        self._server_error: str | None = None
        #: Rubric locks, the spend budget and the dry run, hung on the judge when made.
        self.controls = RunControls(config, settings, self.add_note)

    def __repr__(self) -> str:
        return f"<RubricJudgePlugin worker={self.is_worker} settings={self.settings!r}>"

    def mask(self, text: str) -> str:
        """`text` without any form of the run's credentials, nor any URL's user:password."""
        return scrub(text, self.secret_forms)

    # -- the judge -------------------------------------------------------------------

    def get_judge(self) -> Judge | JudgePanel:
        """The run's judge, made on first use by the `pytest_rubric_judge_make_judge` hook.

        A judge that cannot be made fails every test that needs it with the same one-line
        error; the exception that stopped it is not kept, because its frames hold the
        credentials the judge was given.
        """
        __tracebackhide__ = True
        with self._lock:
            if self._judge is None and self._build_error is None:
                self._build_error = self._make_judge()
            if self._build_error is not None:
                kind, failure = self._build_error
            else:
                assert self._judge is not None
                # Any `JudgeLike` works; the assertions are typed with the two built in.
                return cast("Judge | JudgePanel", self._judge)
        raise _fresh(kind, failure)

    def _make_judge(self) -> tuple[type[JudgeError], str] | None:
        """Make the judge; the error's type and (masked) message when it cannot be made."""
        from ..judge import JudgeLike

        try:
            made = self.config.hook.pytest_rubric_judge_make_judge(config=self.config)
        except pytest.UsageError:
            raise
        except JudgeError as error:
            return type(error), self.mask(str(error))
        except Exception as error:  # reported as a judge error: the test is an ERROR
            message = f"the judge could not be made: {type(error).__name__}: {error}"
            return JudgeBuildError, self.mask(message + _raised_at(error))
        if not isinstance(made, JudgeLike):
            raise pytest.UsageError(
                "pytest_rubric_judge_make_judge must return a Judge or a JudgePanel, "
                f"got {type(made).__name__}"
            )
        self._judge = made
        self.controls.attach(made)
        return None

    def judge_url(self) -> str | None:
        """The configured URL, or that of the server `--judge-serve` starts (once per run).

        A server that fails to start fails every test that needs the judge with the same
        error, naming the cause and the last lines of its log (credentials masked),
        without starting it again.
        """
        __tracebackhide__ = True
        settings = self.settings
        if settings.judge_serve is None:
            return settings.judge_url
        if self._server is None and self._server_error is None:
            self._server_error = self._start_server()
        if self._server_error is not None:
            raise _server_error(self._server_error)
        assert self._server is not None
        return self._server.url

    def _start_server(self) -> str | None:
        from ..serve import JudgeServer

        settings = self.settings
        assert settings.judge_serve is not None and settings.judge_serve_log is not None
        server = JudgeServer(
            settings.judge_serve,
            log_path=settings.judge_serve_log,
            startup_timeout=settings.judge_serve_timeout,
            progress=self.progress,
            secrets=self.secret_forms,
        )
        self.progress(f"rubric judge: starting {self.mask(settings.judge_serve)!r}")
        try:
            server.start()
        except JudgeError as error:
            return self.mask(str(error))
        self._server = server
        self.progress(f"rubric judge: judge server ready at {server.url}")
        return None

    def server_exit(self) -> str | None:
        """Why the judge server this run started stopped answering: it exited (its status
        and the tail of its log); None when it runs, or none was started."""
        if self._server is None:
            return None
        return self._server.exit_message()

    def progress(self, line: str) -> None:
        """A line on the terminal, even while a test's output is captured."""
        line = self.mask(line)
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

    def all_judges(self) -> list[JudgeLike]:
        """Every judge (or panel) used in this process, each once."""
        found = dict(self.judges)
        if self._judge is not None:
            found.setdefault(id(self._judge), self._judge)
        return list(found.values())

    def totals(self) -> dict[str, int]:
        """The judge work of the whole run: this process's judges plus every worker's."""
        parts = [each.stats_totals() for each in self.all_judges()]
        totals: dict[str, int] = {}
        for part in [*parts, *self.worker_totals]:
            for name, value in part.items():
                totals[name] = totals.get(name, 0) + value
        return totals

    def _members(self) -> list[object]:
        """Every judge of this process, a panel's members each once."""
        members: dict[int, object] = {}
        for each in self.all_judges():
            for judge in getattr(each, "judges", (each,)):
                members.setdefault(id(judge), judge)
        return list(members.values())

    def cache_notes(self) -> list[str]:
        """What the judges' caches repaired in this process (a damaged file moved aside),
        and the structured-output dialect each judge that sent requests used."""
        lines: list[str] = []
        for judge in self._members():
            cache = getattr(judge, "cache", None)
            lines.extend(str(line) for line in getattr(cache, "recovered", ()))
        for judge in self._members():
            summary = getattr(judge, "structured_summary", None)
            stats = getattr(judge, "stats_totals", None)
            if isinstance(summary, str) and callable(stats) and stats().get("requests", 0):
                lines.append(f"judge structured output: {summary}")
        return lines

    def add_note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    # -- what the run found, in collection order ---------------------------------------

    def order(self, nodeid: str) -> Order:
        self._arrivals += 1
        return (self.index.get(nodeid, len(self.index)), self._arrivals)

    def belongs(self, item: pytest.Item, judgment: Judgment) -> bool:
        """Whether a judged assertion is part of the run's results: made with the run's
        judge, or in a test marked `judge`. One given a judge of its own in an unmarked
        test is a test of that judge (this plugin's own tests are such): it is shown in
        its test's report section only."""
        if item.get_closest_marker("judge") is not None or judgment.judge is None:
            return True
        return judgment.judge is self._judge

    def on_judgment(self, item: pytest.Item, judgment: Judgment) -> None:
        """A judged assertion of `item` finished (passed or not)."""
        if self.belongs(item, judgment):
            if judgment.judge is not None:
                self.judges.setdefault(id(judgment.judge), judgment.judge)
        else:
            item.stash.setdefault(outside_key, set()).add(id(judgment))
        item.stash.setdefault(judgments_key, []).append(judgment)
        item.config.hook.pytest_rubric_judge_verdict(item=item, verdict=judgment.result)

    def sorted_records(self) -> list[JudgmentRecord]:
        return [record for _, record in sorted(self.records, key=lambda pair: pair[0])]

    def sorted_errors(self) -> list[ErrorRecord]:
        return [record for _, record in sorted(self.errors, key=lambda pair: pair[0])]

    def approved_baselines(self) -> list[BaselineWrite]:
        return [write for _, write in sorted(self.baselines, key=lambda pair: pair[0])]

    # -- xdist -------------------------------------------------------------------------

    def worker_output(self) -> dict[str, Any]:
        """This worker's findings as plain JSON data for `config.workeroutput`."""
        return {
            "records": [
                {"order": list(order), "record": record.model_dump(mode="json")}
                for order, record in self.records
            ],
            "errors": [
                {"order": list(order), "error": error.model_dump(mode="json")}
                for order, error in self.errors
            ],
            "baselines": [
                {"order": list(order), "write": write.to_data()} for order, write in self.baselines
            ],
            "totals": self.totals(),
            "notes": [*self.cache_notes(), *self.notes],
            "controls": self.controls.data(),
        }

    def merge_worker_output(self, data: dict[str, Any]) -> None:
        """Take in what one worker found (see `worker_output`)."""
        from ..report.run_json import ErrorRecord, JudgmentRecord

        for item in data.get("records", []):
            order = (int(item["order"][0]), int(item["order"][1]))
            self.records.append((order, JudgmentRecord.model_validate(item["record"])))
        for item in data.get("errors", []):
            order = (int(item["order"][0]), int(item["order"][1]))
            self.errors.append((order, ErrorRecord.model_validate(item["error"])))
        for item in data.get("baselines", []):
            order = (int(item["order"][0]), int(item["order"][1]))
            self.baselines.append((order, BaselineWrite.from_data(item["write"])))
        self.worker_totals.append({str(k): int(v) for k, v in data.get("totals", {}).items()})
        self.controls.merge(data.get("controls"))
        for note in data.get("notes", []):
            self.add_note(str(note))


def _server_error(message: str) -> JudgeError:
    from ..serve import JudgeServerError

    return JudgeServerError(message)


def _raised_at(error: BaseException) -> str:
    """` (raised at file:line)`: where to look, without the frames' locals."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    return f" (raised at {frames[-1].filename}:{frames[-1].lineno})"


def _fresh(kind: type[JudgeError], message: str) -> JudgeError:
    """A new error of `kind`: raising a kept one would grow its traceback on every test."""
    try:
        return kind(message)
    except Exception:  # a subclass with another signature
        return JudgeBuildError(message)


plugin_key = pytest.StashKey[RubricJudgePlugin]()
#: The judged assertions of one test, in the order they finished.
judgments_key = pytest.StashKey[list["Judgment"]]()
#: Ids of the judged assertions of one test that are not part of the run's results.
outside_key = pytest.StashKey[set[int]]()
#: The baselines one test asks to write when the run passes.
baseline_key = pytest.StashKey[list[BaselineWrite]]()


def qualified_name(item: pytest.Item) -> str:
    """The test's name with its classes: `TestA.test_x[param]` (`test_x[param]` outside one):
    what its baseline and rubric lock files are named after."""
    classes = [node.name for node in item.listchain() if isinstance(node, pytest.Class)]
    return ".".join([*classes, item.name])


def get_plugin(config: pytest.Config) -> RubricJudgePlugin:
    """The run's state; a usage error when the plugin was not configured."""
    state = config.stash.get(plugin_key, None)
    if state is None:
        raise pytest.UsageError("the rubric judge plugin is not configured in this run")
    return state
