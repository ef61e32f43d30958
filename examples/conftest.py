"""Which judge the example suite uses.

Any judge you configure is used: a URL (RUBRIC_JUDGE_BASE_URL, --judge-url or the ini key
judge_url), a server the plugin starts (--judge-serve), a panel (--judge-panel), or a
`pytest_rubric_judge_make_judge` hook of your own (in a plugin or another conftest.py).
With none of these, this file starts an offline stand-in,
`pytest_rubric_judge.testing.FakeJudge` with its text heuristic, so that the suite runs
anywhere; the run's header says so in one line, and so does its last line.

It does this through the plugin's public hook `pytest_rubric_judge_make_judge`, which is
also how a project plugs in a judge of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_rubric_judge import Judge
from pytest_rubric_judge.cache import validate_mode
from pytest_rubric_judge.plugin import plugin_key
from pytest_rubric_judge.testing import FakeJudge

#: Set when no judge is configured: the stand-in answers whatever needs a judge.
no_judge_key = pytest.StashKey[bool]()
#: The stand-in server, once a test has needed it.
stand_in_key = pytest.StashKey[FakeJudge]()

STAND_IN_NOTICE = (
    "rubric judge: no judge configured, so verdicts come from an offline stand-in "
    "(FakeJudge, a text heuristic), not a language model; for a real judge set "
    "RUBRIC_JUDGE_BASE_URL and RUBRIC_JUDGE_MODEL, or pass --judge-url and --judge-model"
)
STAND_IN_SUMMARY = (
    "rubric judge: the verdicts of this run came from the offline stand-in (FakeJudge, a "
    "text heuristic), not a language model: no judge was configured"
)


def _is_ours(function: Callable[..., object]) -> bool:
    """This file's hook, or the plugin's own (which builds the judge from the options)."""
    return function is pytest_rubric_judge_make_judge or function.__module__.startswith(
        "pytest_rubric_judge."
    )


def judge_configured(config: pytest.Config) -> bool:
    """Whether the run names a judge: a URL, a serve command, a panel, or another hook."""
    settings = config.stash[plugin_key].settings
    if settings.judge_url or settings.judge_serve or settings.judge_panel:
        return True
    hooks = config.pluginmanager.hook.pytest_rubric_judge_make_judge.get_hookimpls()
    return any(not _is_ours(hook.function) for hook in hooks)


@pytest.hookimpl(trylast=True)  # after the plugin has resolved its settings
def pytest_configure(config: pytest.Config) -> None:
    config.stash[no_judge_key] = not judge_configured(config)


@pytest.hookimpl(trylast=True)  # after the plugin has closed the judge
def pytest_unconfigure(config: pytest.Config) -> None:
    stand_in = config.stash.get(stand_in_key, None)
    if stand_in is not None:
        stand_in.stop()
        del config.stash[stand_in_key]


def pytest_report_header(config: pytest.Config) -> str | None:
    return STAND_IN_NOTICE if config.stash.get(no_judge_key, False) else None


@pytest.hookimpl(trylast=True)  # the last line of the run, after the rubric judge section
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if not config.stash.get(no_judge_key, False):
        return
    # The stand-in answered here, or in the workers of a pytest-xdist run.
    if stand_in_key in config.stash or config.pluginmanager.has_plugin("dsession"):
        terminalreporter.write_line(STAND_IN_SUMMARY, yellow=True, bold=True)


def pytest_rubric_judge_make_judge(config: pytest.Config) -> Judge | None:
    # A hook registered earlier (a plugin) was seen at configure time; one registered later
    # (a conftest.py further down) runs before this one.
    if not config.stash.get(no_judge_key, False):
        return None  # a judge is configured: the plugin builds it from the options
    stand_in = config.stash.get(stand_in_key, None)
    if stand_in is None:
        stand_in = config.stash[stand_in_key] = FakeJudge().start()
    settings = config.stash[plugin_key].settings
    return Judge(
        stand_in.url,
        stand_in.model,
        cache_dir=settings.judge_cache_dir,
        cache_mode=validate_mode(settings.judge_cache),
        timeout=settings.judge_timeout,
        max_retries=settings.judge_max_retries,
        temperature=settings.judge_temperature,
        max_tokens=settings.judge_max_tokens,
        max_input_chars=settings.judge_max_input_chars,
    )
