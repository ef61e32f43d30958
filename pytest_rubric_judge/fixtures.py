"""The plugin's fixtures: `judge` and `judge_baseline`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .assertions import assert_not_worse, assert_preferred
from .baselines import baseline_path, read_baseline
from .models import Verdict

if TYPE_CHECKING:
    from .judge import Judge
    from .panel import JudgePanel
    from .plugin import RubricJudgePlugin


class BaselineMissingError(AssertionError):
    """The test has no stored baseline yet."""


def _plugin(config: pytest.Config) -> RubricJudgePlugin:
    from .plugin import plugin_key

    return config.stash[plugin_key]


@pytest.fixture(scope="session")
def judge(pytestconfig: pytest.Config) -> Judge | JudgePanel:
    """The run's `Judge`, built from the options (or by a `pytest_rubric_judge_make_judge` hook).

    With no judge URL configured it still answers from the cache; a comparison that is not
    cached then errors with a message saying how to configure a judge.
    """
    return _plugin(pytestconfig).get_judge()


class Baseline:
    """The stored baseline response of one test, and assertions against it.

    The file lives beside the test module in `judge_baselines/<module>/<test id>.txt`.
    With `--judge-update-baselines`, a missing baseline is recorded from the candidate, and
    an existing one is replaced by a candidate the judge prefers in both orders; writes
    happen when the whole run has passed.
    """

    def __init__(self, item: pytest.Item, plugin: RubricJudgePlugin) -> None:
        self._item = item
        self._plugin = plugin
        self.path: Path = baseline_path(Path(item.path), item.name)
        self.update: bool = plugin.settings.judge_update_baselines

    def __repr__(self) -> str:
        return f"Baseline({str(self.path)!r}, exists={self.exists})"

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    @property
    def text(self) -> str:
        """The stored response; fails the test when there is none."""
        stored = read_baseline(self.path)
        if stored is None:
            raise BaselineMissingError(self._missing_message())
        return stored

    def _missing_message(self) -> str:
        return (
            f"no stored baseline for {self._item.name} at {self.path}; run pytest with "
            "--judge-update-baselines to record the current response as the baseline"
        )

    def _schedule(self, text: str, reason: str) -> None:
        from .plugin import BaselineWrite, baseline_key

        self._item.stash.setdefault(baseline_key, []).append(BaselineWrite(self.path, text, reason))

    def _stored_or_record(self, new: str) -> str | None:
        __tracebackhide__ = True
        stored = read_baseline(self.path)
        if stored is None:
            if not self.update:
                raise BaselineMissingError(self._missing_message())
            self._schedule(new, "recorded a new baseline")
        return stored

    def _maybe_replace(self, new: str, verdict: Verdict) -> None:
        decisive = verdict.consistent and verdict.preference == "B>A"
        if self.update and decisive and new != verdict.response_a:
            self._schedule(new, "replaced a baseline the candidate beat in both orders")

    def assert_not_worse(
        self, new: str, *, prompt: str, tolerance: float = 0.0, **kwargs: Any
    ) -> Verdict | None:
        """`assert_not_worse(new, <stored baseline>, ...)`; None when a baseline was recorded."""
        __tracebackhide__ = True
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
        self._maybe_replace(new, verdict)
        return verdict

    def assert_preferred(
        self, new: str, *, prompt: str, min_margin: float = 0.0, **kwargs: Any
    ) -> Verdict | None:
        """`assert_preferred(new, <stored baseline>, ...)`; None when a baseline was recorded."""
        __tracebackhide__ = True
        stored = self._stored_or_record(new)
        if stored is None:
            return None
        verdict = assert_preferred(
            new, stored, min_margin, prompt=prompt, judge=self._plugin.get_judge(), **kwargs
        )
        self._maybe_replace(new, verdict)
        return verdict


@pytest.fixture
def judge_baseline(request: pytest.FixtureRequest) -> Baseline:
    """The stored baseline of the requesting test (one per parametrized id)."""
    return Baseline(request.node, _plugin(request.config))
