"""Hooks that other plugins and conftest.py files can implement.

Example, in a conftest.py::

    from pytest_rubric_judge import Judge

    def pytest_rubric_judge_make_judge(config):
        # A project-wide judge on an internal gateway, with its own subclass or backend.
        return Judge("https://llm-gateway.internal/v1", "judge-large", cache_dir=".judge")

    def pytest_rubric_judge_verdict(item, verdict):
        # Export every verdict, for example to a JSON lines file or an experiment tracker.
        with open("verdicts.jsonl", "a") as out:
            out.write(verdict.model_dump_json() + "\\n")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import pytest

    from .judge import JudgeLike
    from .models import Grade, Verdict

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(firstresult=True)
def pytest_rubric_judge_make_judge(config: pytest.Config) -> JudgeLike | None:
    """Return the judge for this run (a `Judge` or a `JudgePanel`), or None to leave it to
    the next implementation.

    The first non-None result wins; the plugin's own implementation, built from the
    command-line options, runs last. Called once, when a test first needs the judge. An
    exception raised here makes every test that needs the judge an ERROR with its
    one-line message (credentials masked); the exception itself is not shown.
    """


@hookspec
def pytest_rubric_judge_verdict(item: pytest.Item, verdict: Verdict | Grade) -> None:
    """Called after every judged assertion of `item`, passed or failed: a pairwise
    assertion's `Verdict`, or the `Grade` of `assert_meets_rubric`."""
