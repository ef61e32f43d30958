"""The run's rubric locks, spend budget and dry run, on the pytest side.

`RunControls` is part of the run's state (`state.RubricJudgePlugin.controls`). It is
light: the locks (`locks`), the budget and the dry run (`budget`) are made when the run's
judge is, and hung on it (`attach`: on each panel member's `CallCore`); a judge a test
makes for itself (`judge=Judge(...)`) gets none of them.

- `running(item)`, around each test's call, says which test runs (the locks read and
  write that test's file), ends the test's locks (checks, lock file), and turns a dry
  run's `DryRunMiss` into a skip naming what the test would have asked.
- Under pytest-xdist each worker has its own controls, with its share of the budget;
  `data` and `merge` carry the counts to the controller, whose `summary_lines` total
  them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..settings import Settings

if TYPE_CHECKING:
    from ..budget import Budget, DryRun
    from ..locks import RubricLocks


class _NeverRaised(Exception):
    """Stands for `DryRunMiss` while the budget module is not loaded (nothing raised it)."""


def _dry_run_miss() -> type[BaseException]:
    module = sys.modules.get("pytest_rubric_judge.budget")
    return module.DryRunMiss if module is not None else _NeverRaised


def _worker(config: pytest.Config) -> tuple[int, int] | None:
    """(index, count) of this pytest-xdist worker; None outside a worker."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if not workerinput:
        return None
    try:
        index = int(str(workerinput.get("workerid", "gw0")).lstrip("gw"))
        count = int(workerinput.get("workercount", 1))
    except ValueError:
        return None
    return (index, count) if 0 <= index < count else None


class RunControls:
    """Locks, budget and dry run of one process of the run (see the module docstring)."""

    def __init__(
        self, config: pytest.Config, settings: Settings, add_note: Callable[[str], None]
    ) -> None:
        self.config = config
        self.settings = settings
        self.add_note = add_note
        self.worker = _worker(config)
        self.locks: RubricLocks | None = None
        self.gate: Budget | DryRun | None = None
        #: The test whose call is running: (node id, module path, name with classes).
        self.test: tuple[str, Path, str] | None = None
        #: Tests a dry run skipped in this process.
        self.skipped = 0
        #: What each worker reported (on the controller).
        self.merged: list[dict[str, Any]] = []

    # -- the run's judge -------------------------------------------------------------

    def _shown(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.config.rootpath))
        except ValueError:
            return str(path)

    def _made(self) -> RubricLocks:
        from ..budget import Budget, DryRun
        from ..locks import RubricLocks

        if self.locks is None:
            settings = self.settings
            dry_run = DryRun() if settings.judge_dry_run else None
            self.gate = dry_run
            if dry_run is None and settings.judge_budget is not None:
                whole = settings.judge_budget
                limit = whole.share(*self.worker) if self.worker else whole
                self.gate = Budget(limit, whole=whole)
            self.locks = RubricLocks(
                write=settings.judge_lock_rubrics,
                check=settings.judge_check_rubrics,
                shown=self._shown,
                dry_run=dry_run,
            )
        return self.locks

    def attach(self, judge: object) -> None:
        """Hang the locks and the gate on the run's judge (each member of a panel)."""
        from ..calls import CallCore
        from ..locks import lock_path

        locks = self._made()
        for member in getattr(judge, "judges", (judge,)):
            core = getattr(member, "core", None)
            if isinstance(core, CallCore):
                core.rubric_hooks = locks
                core.gate = self.gate
        if self.test is not None:  # made inside a test's call
            nodeid, module, name = self.test
            locks.start(nodeid, lock_path(module, name))

    # -- each test -------------------------------------------------------------------

    def _asked(self) -> int:
        return int(getattr(self.gate, "asked", 0))

    @contextmanager
    def running(self, item: pytest.Item, name: str) -> Iterator[None]:
        """Around a test's call: `name` is the test's name with its classes."""
        module = Path(item.path)
        self.test = (item.nodeid, module, name)
        if self.locks is not None:
            from ..locks import lock_path

            self.locks.start(item.nodeid, lock_path(module, name))
        before = self._asked()
        passed = False
        try:
            yield
            passed = True
        except _dry_run_miss():
            self.skipped += 1
            asked = self._asked() - before
            reason = (
                f"dry run: {asked} judge call(s) would be asked (nothing was sent); "
                "run without --judge-dry-run to judge"
            )
            # Shown at the test's location (as a skip mark's is), not at this line.
            raise pytest.skip.Exception(reason, _use_item_location=True) from None
        finally:
            self.test = None
            if self.locks is not None:
                for line in self.locks.finish(passed=passed):
                    self.add_note(line)

    # -- xdist and the summary ---------------------------------------------------------

    def data(self) -> dict[str, Any]:
        """This process's counts, as plain JSON data."""
        return {
            "gate": self.gate.data() if self.gate is not None else {},
            "locks": self.locks.counts.data() if self.locks is not None else {},
            "skipped": self.skipped,
        }

    def merge(self, data: Mapping[str, Any] | None) -> None:
        if data:
            self.merged.append(dict(data))

    def failed(self) -> bool:
        """Whether a lock file could not be written (the run then fails)."""
        return any(part["locks"].get("failed_writes", 0) for part in self._parts())

    def _parts(self) -> list[dict[str, Any]]:
        return [self.data(), *self.merged]

    def _sum(self, section: str) -> dict[str, int]:
        totals: dict[str, int] = {}
        for part in self._parts():
            for name, value in dict(part.get(section) or {}).items():
                totals[str(name)] = totals.get(str(name), 0) + int(value)
        return totals

    def summary_lines(self, totals: Mapping[str, int]) -> list[str]:
        """The closing summary's lines on the budget, the dry run and the locks."""
        settings = self.settings
        lines: list[str] = []
        gate = self._sum("gate")
        workers = max(1, len(self.merged))
        if settings.judge_dry_run:
            from ..budget import dry_run_line

            skipped = sum(int(part.get("skipped", 0)) for part in self._parts())
            cached = int(totals.get("cache_hits", 0))
            lines.append(dry_run_line(cached, gate.get("asked", 0), gate.get("chars", 0), skipped))
        elif settings.judge_budget is not None:
            from ..budget import budget_line

            lines.append(budget_line(settings.judge_budget, gate, workers))
        locks = self._sum("locks")
        if locks.get("written"):
            dropped = locks.get("dropped", 0)
            lines.append(
                f"rubric locks: {locks.get('locked', 0)} rubric(s) locked in "
                f"{locks['written']} lock file(s) (judge_rubrics/ beside the test modules)"
                + (f"; {dropped} entries no longer used dropped" if dropped else "")
            )
        if locks.get("read"):
            lines.append(
                f"rubric locks: {locks['read']} locked rubric(s) used from lock files, with no "
                "rubric request"
            )
        if settings.judge_check_rubrics and not settings.judge_dry_run:
            checked, changed = locks.get("checked", 0), locks.get("changed", 0)
            if checked or changed or locks.get("failed"):
                lines.append(
                    f"rubric check: {checked} locked rubric(s) asked of the judge again, "
                    f"{changed} changed; the lock files were not replaced (edit them, or "
                    "delete them and run with --judge-lock-rubrics)"
                )
            else:
                lines.append(
                    "rubric check: no locked rubric was used in this run; lock the rubrics "
                    "first with --judge-lock-rubrics"
                )
        return lines
