"""The plugin's fixtures: `judge` and `judge_baseline`.

They read the run's state from `config.stash` (`state`), never from the hook modules.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..baselines import baseline_path, read_baseline
from .state import BaselineWrite, RubricJudgePlugin, baseline_key, get_plugin, qualified_name

if TYPE_CHECKING:
    from ..judge import JudgeLike
    from ..models import Verdict


class BaselineMissingError(AssertionError):
    """The test has no stored baseline yet."""


@pytest.fixture(scope="session")
def judge(pytestconfig: pytest.Config) -> JudgeLike:
    """The run's `Judge`, built from the options (or by a `pytest_rubric_judge_make_judge` hook).

    With no judge URL configured it still answers from the cache; a comparison that is not
    cached then errors with a message saying how to configure a judge.
    """
    __tracebackhide__ = True
    return get_plugin(pytestconfig).get_judge()


def _owners(item: pytest.Item) -> int:
    """How many places of the test's module define a test function of its name.

    A class-less file name (`test_x.txt`, as written before baselines were named with
    their class) belongs to one test only when this is 1. Every class counts, inherited
    methods included, whether pytest collects it or not: when unsure, keep the file.
    """
    name = getattr(item, "originalname", None) or item.name.split("[", 1)[0]
    namespace: dict[str, object] = getattr(getattr(item, "module", None), "__dict__", {})
    count = sum(1 for key, value in namespace.items() if key == name and inspect.isroutine(value))
    pending = [value for value in namespace.values() if inspect.isclass(value)]
    seen: set[int] = set()
    while pending:
        cls = pending.pop()
        if id(cls) in seen:
            continue
        seen.add(id(cls))
        if callable(getattr(cls, name, None)):
            count += 1
        pending.extend(value for value in vars(cls).values() if inspect.isclass(value))
    return count


def baseline_text(response: Any) -> str:
    """A response as its baseline file holds it: a string as it is, a list of messages (a
    trajectory) as indented JSON, so that a changed baseline is a readable diff."""
    if isinstance(response, str):
        return response
    from ..inputs import plain_message

    messages = [plain_message(m, f"message {i}") for i, m in enumerate(response, 1)]
    return json.dumps(messages, indent=2, ensure_ascii=False) + "\n"


def stored_response(stored: str, new: object, path: Path) -> Any:
    """The stored baseline in the form of `new`: text, or the messages its JSON holds."""
    if isinstance(new, str):
        return stored
    try:
        messages = json.loads(stored)
    except ValueError:
        messages = None
    if not isinstance(messages, list):
        raise BaselineMissingError(
            f"the baseline at {path} is text, but the candidate is a list of messages; "
            "record it again with --judge-update-baselines (or compare text with text)"
        )
    return messages


class Baseline:
    """The stored baseline response of one test, and assertions against it.

    The file lives beside the test module in `judge_baselines/<module>/<test id>.txt`,
    where a test in a class is named with its class: `TestA.test_x.txt`. A file written
    under the class-less name (`test_x.txt`) is still read when the new one is missing;
    `--judge-update-baselines` moves it to the new name (and removes the old file when no
    other test of the module can own it). With `--judge-update-baselines`, a missing
    baseline is recorded from the candidate, and an existing one is replaced by a
    candidate the judge prefers in both orders; writes happen when the whole run passed.
    """

    def __init__(self, item: pytest.Item, plugin: RubricJudgePlugin) -> None:
        self._item = item
        self._plugin = plugin
        module = Path(item.path)
        self.path: Path = baseline_path(module, qualified_name(item))
        legacy = baseline_path(module, item.name)
        self.legacy: Path | None = legacy if legacy != self.path else None
        self.update: bool = plugin.settings.judge_update_baselines
        self._moving = False

    def __repr__(self) -> str:
        return f"Baseline({str(self.path)!r}, exists={self.exists})"

    @property
    def exists(self) -> bool:
        return self.path.is_file() or (self.legacy is not None and self.legacy.is_file())

    def _read(self) -> str | None:
        """The stored text: the file of the test's name, else its class-less older one."""
        stored = read_baseline(self.path)
        if stored is not None or self.legacy is None:
            return stored
        stored = read_baseline(self.legacy)
        if stored is not None and self.update and not self._moving:
            self._moving = True
            sole = _owners(self._item) == 1
            verb = "moved" if sole else "copied"
            self._schedule(
                stored,
                f"{verb} {self.legacy.name} to {self.path.name}",
                legacy=self.legacy,
                remove_legacy=sole,
            )
        return stored

    @property
    def text(self) -> str:
        """The stored response; fails the test when there is none."""
        stored = self._read()
        if stored is None:
            raise BaselineMissingError(self._missing_message())
        return stored

    def _missing_message(self) -> str:
        return (
            f"no stored baseline for {self._item.name} at {self.path}; run pytest with "
            "--judge-update-baselines to record the current response as the baseline"
        )

    def _schedule(
        self, text: str, reason: str, *, legacy: Path | None = None, remove_legacy: bool = False
    ) -> None:
        write = BaselineWrite(self.path, text, reason, legacy, remove_legacy)
        self._item.stash.setdefault(baseline_key, []).append(write)

    def _stored_or_record(self, new: Any) -> Any:
        """The stored baseline (text, or the messages of a trajectory), or None when it
        was missing and is now recorded."""
        __tracebackhide__ = True
        stored = self._read()
        if stored is None:
            if not self.update:
                raise BaselineMissingError(self._missing_message())
            self._schedule(baseline_text(new), "recorded a new baseline")
            return None
        return stored_response(stored, new, self.path)

    def _maybe_replace(self, new: Any, stored: Any) -> None:
        text = baseline_text(new)
        if text != baseline_text(stored):
            self._schedule(text, "replaced a baseline the candidate beat in both orders")

    def assert_not_worse(
        self, new: Any, *, prompt: Any, tolerance: float = 0.0, **kwargs: Any
    ) -> Verdict | None:
        """`assert_not_worse(new, <stored baseline>, ...)`; None when a baseline was recorded."""
        __tracebackhide__ = True
        from ..assertions import assert_not_worse

        stored = self._stored_or_record(new)
        if stored is None:
            return None
        verdict = assert_not_worse(
            new,
            stored,
            prompt=prompt,
            tolerance=tolerance,
            judge=self._plugin.get_judge(),
            **kwargs,
        )
        if self.update and verdict.consistent and verdict.preference == "B>A":
            self._maybe_replace(new, stored)
        return verdict

    def assert_preferred(
        self, new: Any, *, prompt: Any, min_margin: float = 0.0, **kwargs: Any
    ) -> Verdict | None:
        """`assert_preferred(new, <stored baseline>, ...)`; None when a baseline was recorded."""
        __tracebackhide__ = True
        from ..assertions import assert_preferred

        stored = self._stored_or_record(new)
        if stored is None:
            return None
        verdict = assert_preferred(
            new, stored, min_margin, prompt=prompt, judge=self._plugin.get_judge(), **kwargs
        )
        if self.update and verdict.consistent and verdict.preference == "B>A":
            self._maybe_replace(new, stored)
        return verdict


@pytest.fixture
def judge_baseline(request: pytest.FixtureRequest) -> Baseline:
    """The stored baseline of the requesting test (one per parametrized id)."""
    return Baseline(request.node, get_plugin(request.config))
