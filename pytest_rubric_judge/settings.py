"""A run's settings, resolved from the option table (`options`).

Precedence: command line, then environment variable, then ini key, then default. Values
are validated when read, so a bad one is an `OptionError` (the plugin turns it into a
usage error) before any test runs. The API key comes only from the environment and is
held as a `Secret`; the repr of `Settings` shows no credential, because pytest prints
locals that hold it (`-l`).

Plain Python, no pytest: the plugin hands `read_settings` a `Sources` made from its
`pytest.Config`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache.modes import CacheMode
from .credentials import Secret, mask, redact_url, secret_forms, split_userinfo
from .options import (
    ALL_OPTIONS,
    API_KEY_ENV,
    BY_DEST,
    DEFAULT_CACHE_DIR,
    DEFAULT_SERVE_LOG,
    OPTIONS,
    RUN_OPTIONS,
    Option,
    api_key_from_env,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    split_urls,
)

if TYPE_CHECKING:
    from .budget import JudgeBudget
    from .gates import Gate

# The option table and its parsers live in `options`; these names are kept here too.
__all__ = [
    "ALL_OPTIONS",
    "API_KEY_ENV",
    "DEFAULT_CACHE_DIR",
    "DEFAULT_SERVE_LOG",
    "OPTIONS",
    "RUN_OPTIONS",
    "Option",
    "OptionError",
    "Settings",
    "Sources",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "read_settings",
]


class OptionError(ValueError):
    """A bad option value; the message names where it came from and never a credential."""


@dataclass(frozen=True, repr=False)
class Settings:
    #: One URL, or several comma-separated replicas; may carry user:password@.
    judge_url: str | None
    judge_model: str | None
    judge_cache_dir: Path
    judge_cache: CacheMode
    judge_timeout: float
    judge_max_retries: int
    judge_temperature: float
    judge_max_tokens: int
    judge_max_input_chars: int
    judge_update_baselines: bool
    judge_seed: int | None = None
    judge_samples: int = 1
    judge_structured_output: str = "auto"
    judge_panel: tuple[tuple[str, str], ...] = ()
    judge_panel_strategy: str = "majority"
    judge_panel_rubric: int = 0
    judge_serve: str | None = None
    judge_serve_timeout: float = 600.0
    judge_serve_log: Path | None = None
    #: Absolute paths of the reports to write, or None.
    judge_report: Path | None = None
    judge_report_md: Path | None = None
    #: Suite-level gates, checked over every comparison of the run.
    judge_fail_under: tuple[Gate, ...] = ()
    #: The earlier JSON report to diff this run's against (absolute), or None.
    judge_compare_to: Path | None = None
    judge_fail_on_regression: bool = False
    #: Sequential judging: the confidence (None: off), the most samples, and what an
    #: undecided assertion makes of its test ("fail", "error" or "skip").
    judge_confidence: float | None = None
    judge_max_samples: int = 16
    judge_undecided: str = "fail"
    #: Rubric lock files (`locks`), the spend budget and the dry run (`budget`).
    judge_lock_rubrics: bool = False
    judge_check_rubrics: bool = False
    judge_budget: JudgeBudget | None = None
    judge_dry_run: bool = False
    #: From RUBRIC_JUDGE_API_KEY or OPENAI_API_KEY; shown as '***'.
    api_key: Secret | None = None

    @property
    def urls(self) -> tuple[str, ...]:
        """Every judge URL configured (replicas and panel members), as given."""
        found = split_urls(self.judge_url) if self.judge_url else []
        return (*found, *(url for _, url in self.judge_panel))

    def secret_forms(self) -> tuple[str, ...]:
        """Every spelling of the key and of each URL password, to mask from any output."""
        forms: set[str] = set(secret_forms(self.api_key))
        for url in self.urls:
            _, user, password = split_userinfo(url)
            forms.update(secret_forms(None, user, password))
        return tuple(sorted(forms, key=len, reverse=True))

    def __repr__(self) -> str:
        shown = []
        for each in fields(self):
            value = getattr(self, each.name)
            if each.name == "judge_url" and value is not None:
                value = ",".join(redact_url(url) for url in split_urls(value))
            elif each.name == "judge_panel":
                value = tuple((model, redact_url(url)) for model, url in value)
            elif each.name == "judge_serve" and value is not None:
                value = mask(value, secret_forms(self.api_key))
            shown.append(f"{each.name}={value!r}")
        return f"Settings({', '.join(shown)})"


@dataclass(frozen=True)
class Sources:
    """Where option values come from: pytest's config, or anything shaped like it."""

    #: dest -> the parsed command-line value, None when not given.
    cli: Callable[[str], Any]
    #: ini key -> the raw ini value ("" or None when not set).
    ini: Callable[[str], Any]
    invocation_dir: Path
    rootpath: Path
    inipath: Path | None = None
    #: Not in the repr: it holds the API key.
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)

    @property
    def ini_base(self) -> Path:
        """What a relative path in the ini file is relative to."""
        return self.inipath.parent if self.inipath else self.rootpath


def read_settings(sources: Sources) -> Settings:
    """Resolve every option; a bad value is an `OptionError` naming where it came from."""
    values: dict[str, Any] = {}
    for option in ALL_OPTIONS:
        value = sources.cli(option.dest)
        if option.repeat and value is not None:
            value = tuple(item for part in value for item in part)
        source = option.cli
        if value is None:
            for name in option.env:
                if sources.environ.get(name):
                    value, source = sources.environ[name], f"environment variable {name}"
                    break
        if value is None:
            value, source = sources.ini(option.ini), f"ini key {option.ini}"
            if value in (None, "") and not option.flag:
                value = None
        if value is None:
            values[option.dest] = option.default
            continue
        if isinstance(value, str):
            if option.repeat:
                value = value.replace("\n", ",")
            try:
                value = option.parse(value)
            except argparse.ArgumentTypeError as error:
                raise OptionError(f"{source}: {error}") from None
        values[option.dest] = value
    urls = values["judge_url"]
    values["judge_url"] = ",".join(urls) if urls else None
    values["judge_cache_dir"] = _cache_dir(sources)
    if values["judge_serve"] is not None:
        if "{port}" not in values["judge_serve"]:
            raise OptionError(
                "--judge-serve: the command must contain {port}, e.g. "
                "'vllm serve MODEL --port {port}'"
            )
        log = values["judge_serve_log"]
        values["judge_serve_log"] = (
            (sources.invocation_dir / log).resolve()
            if log
            else sources.rootpath / DEFAULT_SERVE_LOG
        )
    panel = values["judge_panel"]
    if panel and values["judge_panel_rubric"] >= len(panel):
        raise OptionError(
            f"--judge-panel-rubric {values['judge_panel_rubric']} is not a panel member; "
            f"the panel has {len(panel)} judges (0-based)"
        )
    if values["judge_check_rubrics"] and values["judge_cache"] == "replay":
        raise OptionError(
            "--judge-check-rubrics asks the judge again, which --judge-cache=replay "
            "forbids; drop one of them"
        )
    for dest in ("judge_report", "judge_report_md", "judge_compare_to"):
        if values[dest] is not None:
            values[dest] = _report_path(sources, dest, str(values[dest]))
    return Settings(**values, api_key=api_key_from_env(sources.environ))


def _report_path(sources: Sources, dest: str, value: str) -> Path:
    """A report path: relative to where pytest started, or for an ini value to the ini file."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    from_ini = sources.cli(dest) is None and not any(
        sources.environ.get(name) for name in BY_DEST[dest].env
    )
    base = sources.ini_base if from_ini else sources.invocation_dir
    return (base / path).resolve()


def _cache_dir(sources: Sources) -> Path:
    cli_value = sources.cli("judge_cache_dir")
    if cli_value:
        return (sources.invocation_dir / str(cli_value)).resolve()
    env_value = sources.environ.get("RUBRIC_JUDGE_CACHE_DIR")
    if env_value:
        return Path(env_value).resolve()
    ini_value = sources.ini("judge_cache_dir")
    if ini_value:
        return (sources.ini_base / str(ini_value)).resolve()
    return sources.rootpath / DEFAULT_CACHE_DIR
