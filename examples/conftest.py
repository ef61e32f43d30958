"""Which judge the example suite uses.

With a judge configured (RUBRIC_JUDGE_BASE_URL, --judge-url or the ini key judge_url) the
plugin builds it from the options as usual. Without one, this file starts an offline
stand-in, `pytest_rubric_judge.testing.FakeJudge` with its text heuristic, so that the
suite runs anywhere; the run's header says so in one line.

It does this through the plugin's public hook `pytest_rubric_judge_make_judge`, which is
also how a project plugs in a judge of its own.
"""

from __future__ import annotations

import pytest

from pytest_rubric_judge import Judge
from pytest_rubric_judge.cache import validate_mode
from pytest_rubric_judge.plugin import plugin_key
from pytest_rubric_judge.testing import FakeJudge

stand_in_key = pytest.StashKey[FakeJudge]()

STAND_IN_NOTICE = (
    "rubric judge: no judge configured, so verdicts come from an offline stand-in "
    "(FakeJudge, a text heuristic), not a language model; for a real judge set "
    "RUBRIC_JUDGE_BASE_URL and RUBRIC_JUDGE_MODEL, or pass --judge-url and --judge-model"
)


@pytest.hookimpl(trylast=True)  # after the plugin has resolved its settings
def pytest_configure(config: pytest.Config) -> None:
    if config.stash[plugin_key].settings.judge_url is None:
        config.stash[stand_in_key] = FakeJudge().start()


@pytest.hookimpl(trylast=True)  # after the plugin has closed the judge
def pytest_unconfigure(config: pytest.Config) -> None:
    stand_in = config.stash.get(stand_in_key, None)
    if stand_in is not None:
        stand_in.stop()
        del config.stash[stand_in_key]


def pytest_report_header(config: pytest.Config) -> str | None:
    return STAND_IN_NOTICE if stand_in_key in config.stash else None


def pytest_rubric_judge_make_judge(config: pytest.Config) -> Judge | None:
    stand_in = config.stash.get(stand_in_key, None)
    if stand_in is None:
        return None  # a real judge is configured: the plugin builds it from the options
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
