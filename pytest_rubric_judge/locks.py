"""Rubric locks: each test's rubrics kept in a reviewable file beside it, and used from there.

A test's lock file is `judge_rubrics/<module>/<test id>.yaml` beside its module, named by
the rules of baselines (`baselines.per_test_path`: a test in a class is named with its
class, unsafe characters become `_` with a short hash added). Its format, and the checks
on reading it, are in `lockfiles`.

`RubricLocks` is the run's: the plugin says which test is running (`start`, `finish`;
a process runs one test at a time) and hangs it on the run's judges as their
`CallCore.rubric_hooks`, so that every rubric a judge looks up for that test comes here
first (`rubric_for`), and every rubric it makes is recorded (`made`):

- a prompt (and reference) with an entry in the test's lock file gets that rubric: no
  rubric request, from the memo, the cache or the judge. A lock file that cannot be read
  is a `RubricLockError` (a judge error: the test is an ERROR) naming the file, the
  problem and the fix, for every rubric the test looks up;
- with `write` (`--judge-lock-rubrics`), every other rubric the test was judged on is
  added to its file when the test ends: the file is replaced atomically
  (`baselines.write_baseline`), one file per test as soon as the test ends, so a run that
  is killed keeps every file written before and never half a file. After a test that
  passed, the file holds exactly the rubrics it used (entries it no longer uses are
  dropped); after one that did not, entries are only added;
- with `check` (`--judge-check-rubrics`), the test is still judged on its locked rubrics,
  and each one is then asked of the judge again, bypassing the lock and the cache
  (`fresh_rubric`); the differences (criteria added and removed, weights and types
  changed) are reported and the file is left as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .baselines import per_test_path, read_baseline, write_baseline
from .errors import JudgeError
from .lockfiles import LockEntry, LockFileError, read_lock, render_lock
from .models import Rubric

if TYPE_CHECKING:
    from .budget import DryRun
    from .calls import CallCore

__all__ = [
    "FOLDER",
    "RubricLockError",
    "RubricLocks",
    "fresh_rubric",
    "lock_path",
    "rubric_changes",
]

FOLDER = "judge_rubrics"
#: Weights closer than this are the same weight in a check.
WEIGHT_TOLERANCE = 0.005
_FIX = (
    "fix the file, or delete it and run pytest --judge-lock-rubrics to lock the judge's "
    "rubrics again"
)

Key = tuple[str, str | None]


class RubricLockError(JudgeError):
    """A test's rubric lock file cannot be read."""

    kind = "rubric_lock"


def lock_path(module_path: Path, test_name: str) -> Path:
    """The lock file of `test_name` (`TestA.test_x[id]`) in the module `module_path`."""
    return per_test_path(module_path, test_name, FOLDER, ".yaml")


def rubric_changes(locked: Rubric, fresh: Rubric) -> list[str]:
    """What changed from `locked` to `fresh`: criteria added and removed, weights (as
    normalized) and types changed. Empty when they agree; descriptions are not compared."""
    old, new = locked.normalized(), fresh.normalized()
    changes = [f"added {name}" for name in new.names if old.get(name) is None]
    changes += [f"removed {name}" for name in old.names if new.get(name) is None]
    for before in old.criteria:
        after = new.get(before.name)
        if after is None:
            continue
        if abs(after.weight - before.weight) > WEIGHT_TOLERANCE:
            changes.append(f"{before.name} weight {before.weight:.3f} -> {after.weight:.3f}")
        if after.type != before.type:
            changes.append(f"{before.name} type {before.type} -> {after.type}")
    return changes


def fresh_rubric(core: CallCore, prompt: str, reference: str | None) -> Rubric:
    """The judge's rubric for the prompt asked again: the cache is neither read nor written,
    but the request counts in the judge's counters and passes its gate (budget, dry run)."""
    from .cache import JudgeCache
    from .calls import CallCore, drive_blocking

    fresh = CallCore(core.config, JudgeCache(None, "off"), model=lambda: core.model, can_ask=True)
    fresh.stats, fresh.dialects, fresh.gate = core.stats, core.dialects, core.gate
    fresh.context_code = core.context_code
    if core.send is None:
        raise JudgeError("no judge to ask: --judge-check-rubrics needs --judge-url")
    rubric, _ = drive_blocking(fresh.protocol(fresh.rubric_spec(prompt, reference)), core.send)
    return rubric


@dataclass
class _Test:
    """What one test did with rubrics."""

    nodeid: str
    path: Path
    #: The lock file's entries, read on first use; the problem when it cannot be read.
    entries: dict[Key, LockEntry] | None = None
    problem: str | None = None
    #: Every rubric the test was judged on, in order of first use (locked ones included).
    used: dict[Key, Rubric] = field(default_factory=dict)
    locked: set[Key] = field(default_factory=set)
    checks: dict[Key, tuple[CallCore, Rubric]] = field(default_factory=dict)


@dataclass
class LockCounts:
    """What the locks did in this process, for the summary (and merged over workers)."""

    read: int = 0
    written: int = 0
    locked: int = 0
    dropped: int = 0
    checked: int = 0
    changed: int = 0
    #: Checks that could not ask the judge, and lock files that could not be written.
    failed: int = 0
    failed_writes: int = 0

    def data(self) -> dict[str, int]:
        return dict(self.__dict__)


class RubricLocks:
    """The run's rubric lock files (see the module docstring)."""

    def __init__(
        self,
        *,
        write: bool = False,
        check: bool = False,
        shown: Callable[[Path], str] = str,
        dry_run: DryRun | None = None,
    ) -> None:
        self.write = write and dry_run is None
        self.check = check
        self.shown = shown
        self.dry_run = dry_run
        self.current: _Test | None = None
        self.counts = LockCounts()
        self._lock = threading.Lock()
        #: The judge's rubrics asked again in this run, per judge and prompt.
        self._fresh: dict[tuple[int, str, str | None], Rubric] = {}

    # -- the test that is running ------------------------------------------------------

    def start(self, nodeid: str, path: Path) -> None:
        self.current = _Test(nodeid, path)

    def _entries(self, test: _Test) -> dict[Key, LockEntry]:
        """The test's locked rubrics; RubricLockError when its file cannot be read."""
        with self._lock:
            if test.entries is None and test.problem is None:
                try:
                    test.entries = _read_file(test.path)
                except LockFileError as error:
                    test.problem = str(error)
            if test.problem is not None:
                raise RubricLockError(f"{self.shown(test.path)}: {test.problem}; {_FIX}")
            assert test.entries is not None
            return test.entries

    # -- the hooks of CallCore ---------------------------------------------------------

    def rubric_for(
        self, core: CallCore, prompt: str, reference: str | None, memo: Rubric | None
    ) -> Rubric | None:
        """The rubric for a prompt of the running test: its locked one, else `memo` (the
        judge's remembered one), else in a dry run the cached one or a placeholder; None
        when the judge must make it."""
        test = self.current
        key = (prompt, reference)
        if test is not None:
            entry = self._entries(test).get(key)
            if entry is not None:
                with self._lock:
                    if key not in test.locked:
                        self.counts.read += 1
                    test.locked.add(key)
                    test.used.setdefault(key, entry.rubric)
                    if self.check:
                        test.checks.setdefault(key, (core, entry.rubric))
                return entry.rubric
        if memo is None and self.dry_run is not None:
            return self.dry_run.rubric(core, prompt, reference)
        if memo is not None:
            self.made(prompt, reference, memo)
        return memo

    def made(self, prompt: str, reference: str | None, rubric: Rubric) -> None:
        """A rubric the judge made (or remembered) for the running test."""
        test = self.current
        if test is not None:
            with self._lock:
                test.used.setdefault((prompt, reference), rubric)

    # -- the end of a test -------------------------------------------------------------

    def finish(self, *, passed: bool) -> list[str]:
        """End the running test: check its locked rubrics, write its lock file; the lines
        for the summary."""
        test, self.current = self.current, None
        if test is None:
            return []
        lines = self._check(test)
        if self.write and test.problem is None and test.used:
            line = self._write(test, passed=passed)
            if line:
                lines.append(line)
        return lines

    def _check(self, test: _Test) -> list[str]:
        from .budget import DryRunMiss
        from .callspec import excerpt

        lines = []
        for (prompt, reference), (core, locked) in test.checks.items():
            where = f"rubric check: {test.nodeid}, prompt {excerpt(prompt, 40)}"
            try:
                fresh = self._fresh.get((id(core), prompt, reference))
                if fresh is None:
                    fresh = fresh_rubric(core, prompt, reference)
                    self._fresh[id(core), prompt, reference] = fresh
            except DryRunMiss:
                continue
            except JudgeError as error:
                self.counts.failed += 1
                lines.append(f"{where}: could not ask the judge: {type(error).__name__}: {error}")
                continue
            self.counts.checked += 1
            changes = rubric_changes(locked, fresh)
            if changes:
                self.counts.changed += 1
                lines.append(f"{where}: the judge's rubric changed: {'; '.join(changes)}")
        return lines

    def _write(self, test: _Test, *, passed: bool) -> str | None:
        try:
            existing = self._entries(test)
        except RubricLockError:  # a file that cannot be read is never overwritten
            return None
        if passed:
            keys = list(test.used)
        else:
            keys = list(existing) + [key for key in test.used if key not in existing]
        rubrics = {**{key: entry.rubric for key, entry in existing.items()}, **test.used}
        entries = [LockEntry(*key, rubrics[key]) for key in keys]
        if [entry.key for entry in entries] == list(existing) and all(
            existing[entry.key].rubric == entry.rubric for entry in entries
        ):
            return None
        shown = self.shown(test.path)
        try:
            write_baseline(test.path, render_lock(test.nodeid, entries))
        except Exception as error:  # never raise from the end of a test
            self.counts.failed_writes += 1
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            return f"rubric locks: NOT written to {shown}: {reason}"
        self.counts.written += 1
        self.counts.locked += len([key for key in keys if key not in existing])
        self.counts.dropped += len([key for key in existing if key not in keys])
        return None


def _read_file(path: Path) -> dict[Key, LockEntry]:
    try:
        text = read_baseline(path)
    except UnicodeDecodeError as error:
        raise LockFileError(f"the file is not UTF-8 text (byte {error.start})") from None
    except NotADirectoryError:  # a file where a folder of the path would be: none there
        return {}
    except OSError as error:
        raise LockFileError(f"the file cannot be read: {error.strerror or error}") from None
    if text is None:
        return {}
    return {entry.key: entry for entry in read_lock(text)}
