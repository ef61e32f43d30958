"""The run's set-up and tear-down hooks, and the default judge.

- `pytest_addoption` adds every option of the shared table (`options`) as a flag and an
  ini key; `pytest_configure` resolves them (`settings`) into the run's state.
- `pytest_rubric_judge_make_judge` (our own, last) builds the judge or panel from the
  settings. It runs when a test first needs the judge, never at start-up: a run that does
  not judge never imports the judge, pydantic, httpx or numpy.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

from .. import hookspecs
from ..credentials import secret_forms
from ..options import ALL_OPTIONS, api_key_from_env
from ..settings import OptionError, Settings, Sources, read_settings
from .redaction import scrub
from .state import RubricJudgePlugin, get_plugin, plugin_key
from .xdist import XdistHooks

if TYPE_CHECKING:
    from ..judge import JudgeLike

JUDGE_FIXTURES = frozenset({"judge", "judge_baseline"})

xdist_key = pytest.StashKey[XdistHooks]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rubric-judge", "rubric judge (pytest-rubric-judge)")
    for option in ALL_OPTIONS:
        if option.flag:
            group.addoption(
                option.cli, action="store_true", default=None, dest=option.dest, help=option.help
            )
            parser.addini(option.ini, option.help, type="bool", default=False)
            continue
        group.addoption(
            option.cli,
            dest=option.dest,
            type=option.parse,
            default=None,
            action="append" if option.repeat else "store",
            metavar=option.metavar,
            help=option.help_text,
        )
        parser.addini(option.ini, option.help, default=None)


def sources(config: pytest.Config) -> Sources:
    """Where the settings come from in this run."""
    return Sources(
        cli=config.getoption,
        ini=config.getini,
        invocation_dir=config.invocation_params.dir,
        rootpath=config.rootpath,
        inipath=config.inipath,
        environ=os.environ,
    )


def _read(config: pytest.Config) -> tuple[Settings | None, str]:
    """The settings, or the one-line reason they could not be read.

    Any failure is a usage error whose message has the key and URL passwords masked; the
    exception is not kept, because the frames it passed through hold them.
    """
    try:
        return read_settings(sources(config)), ""
    except OptionError as error:
        return None, str(error)
    except Exception as error:  # a usage error, never a traceback with the settings' locals
        text = scrub(f"{type(error).__name__}: {error}", secret_forms(api_key_from_env()))
        return None, f"rubric judge options could not be read: {text}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "judge: a test judged by the rubric judge (added automatically to tests that use "
        "the judge or judge_baseline fixture and to judge_suite tests; deselect with "
        "-m 'not judge'; a test that calls an assertion without judge= needs it)",
    )
    config.addinivalue_line(
        "markers",
        "judge_suite: the test's judged assertions count toward the suite-level gates "
        "(--judge-fail-under); one that does not hold is recorded, not raised",
    )
    settings, failure = _read(config)
    if settings is None:
        raise pytest.UsageError(failure)
    state = RubricJudgePlugin(config, settings)
    config.stash[plugin_key] = state
    if config.pluginmanager.hasplugin("xdist") and not state.is_worker:
        hooks = XdistHooks(state)
        config.stash[xdist_key] = hooks
        config.pluginmanager.register(hooks, "rubric-judge-xdist")


def pytest_unconfigure(config: pytest.Config) -> None:
    hooks = config.stash.get(xdist_key, None)
    if hooks is not None:
        config.pluginmanager.unregister(hooks)
        del config.stash[xdist_key]
    state = config.stash.get(plugin_key, None)
    if state is not None:
        del config.stash[plugin_key]
        state.close()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `judge` the tests known to be judged before they run: those that request a
    judge fixture, and `judge_suite` tests (runs before `-m` deselects)."""
    for item in items:
        fixtures = JUDGE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if fixtures or item.get_closest_marker("judge_suite") is not None:
            if item.get_closest_marker("judge") is None:
                item.add_marker("judge")


@pytest.hookimpl(trylast=True)
def pytest_rubric_judge_make_judge(config: pytest.Config) -> JudgeLike:
    """The default judge (or panel), built from the options."""
    from ..judge import Judge
    from ..panel import JudgePanel

    state = get_plugin(config)
    settings = state.settings
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
    return Judge(state.judge_url(), settings.judge_model, **common)
