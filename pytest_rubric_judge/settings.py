"""The plugin's options: one table, read from the command line, the environment and ini.

Precedence: command line, then environment variable, then ini key, then default. Values
are validated when read, so a bad one is a usage error before any test runs. The API key
is never an option: it comes only from the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .cache import CACHE_MODES, CacheMode, validate_mode
from .client import normalize_base_url
from .endpoints import split_urls
from .gates import Gate, gates_argument
from .judge import STRUCTURED_MODES
from .scoring import PANEL_STRATEGIES

API_KEY_ENV = ("RUBRIC_JUDGE_API_KEY", "OPENAI_API_KEY")
DEFAULT_CACHE_DIR = ".rubric_judge_cache"
DEFAULT_SERVE_LOG = ".rubric_judge_serve.log"


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def cache_mode(text: str) -> CacheMode:
    if text not in CACHE_MODES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a cache mode; choose one of {', '.join(CACHE_MODES)}"
        )
    return validate_mode(text)


def text(value: str) -> str:
    return value


def report_path(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("a report path must not be empty")
    return value


def judge_urls(value: str) -> tuple[str, ...]:
    """One URL, or several separated by commas (several endpoints of the same model)."""
    try:
        return tuple(normalize_base_url(url) for url in split_urls(value))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return parse


def judge_panel(value: str) -> tuple[tuple[str, str], ...]:
    """`modelA@URL1,modelB@URL2` as (model, url) pairs."""
    members = []
    for part in split_urls(value):
        model, at, url = part.rpartition("@")
        if not at or not model.strip() or not url.strip():
            raise argparse.ArgumentTypeError(
                f"panel member {part!r} is not MODEL@URL, e.g. "
                "'Qwen/Qwen2.5-7B-Instruct@http://127.0.0.1:8000/v1'"
            )
        try:
            members.append((model.strip(), normalize_base_url(url.strip())))
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return tuple(members)


@dataclass(frozen=True)
class Option:
    """One option: its flag, ini key, environment variables, parser, default and help."""

    dest: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    env: tuple[str, ...] = ()
    metavar: str | None = None
    flag: bool = False
    #: The flag may be repeated; each value is parsed to a tuple and the tuples are joined.
    repeat: bool = False

    @property
    def cli(self) -> str:
        return "--" + self.dest.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option(
        "judge_url",
        judge_urls,
        None,
        "base URL of the OpenAI-compatible judge endpoint, e.g. http://127.0.0.1:8000/v1; "
        "repeat it or separate URLs with commas for several replicas of the same model",
        env=("RUBRIC_JUDGE_BASE_URL", "OPENAI_BASE_URL"),
        metavar="URL",
        repeat=True,
    ),
    Option(
        "judge_model",
        text,
        None,
        "judge model name as the server knows it (default: the server's only model)",
        env=("RUBRIC_JUDGE_MODEL",),
        metavar="NAME",
    ),
    Option(
        "judge_cache_dir",
        text,
        None,
        f"folder of the verdict cache (default: {DEFAULT_CACHE_DIR} under the rootdir)",
        env=("RUBRIC_JUDGE_CACHE_DIR",),
        metavar="DIR",
    ),
    Option(
        "judge_cache",
        cache_mode,
        "rw",
        "cache mode: rw (read and write, default), replay (cache only, a miss is an error, "
        "no network), refresh (call the judge and overwrite), off",
        env=("RUBRIC_JUDGE_CACHE",),
        metavar="MODE",
    ),
    Option(
        "judge_timeout",
        positive_float,
        120.0,
        "seconds to wait for one judge answer",
        metavar="SECONDS",
    ),
    Option(
        "judge_max_retries",
        non_negative_int,
        3,
        "retries of a failed judge request (connection errors, 429, 5xx)",
        metavar="N",
    ),
    Option("judge_temperature", non_negative_float, 0.0, "judge sampling temperature", metavar="T"),
    Option("judge_max_tokens", positive_int, 2048, "most tokens in one judge answer", metavar="N"),
    Option(
        "judge_max_input_chars",
        positive_int,
        200_000,
        "longest prompt or response accepted, in characters",
        metavar="N",
    ),
    Option("judge_seed", non_negative_int, None, "judge sampling seed", metavar="N"),
    Option(
        "judge_samples",
        positive_int,
        1,
        "judge each order N times, each with its own seed; the majority decides",
        env=("RUBRIC_JUDGE_SAMPLES",),
        metavar="N",
    ),
    Option(
        "judge_structured_output",
        choice(*STRUCTURED_MODES),
        "auto",
        "send JSON Schemas as response_format: auto (fall back to plain prompting once when "
        "the server rejects them), json_schema (always), off",
        metavar="MODE",
    ),
    Option(
        "judge_panel",
        judge_panel,
        (),
        "a panel of judges, MODEL@URL separated by commas (ini: one per line); the panel "
        "decides each comparison",
        env=("RUBRIC_JUDGE_PANEL",),
        metavar="MODEL@URL,...",
        repeat=True,
    ),
    Option(
        "judge_panel_strategy",
        choice(*PANEL_STRATEGIES),
        "majority",
        "how a panel decides: majority, unanimous or mean_margin",
        metavar="STRATEGY",
    ),
    Option(
        "judge_panel_rubric",
        non_negative_int,
        0,
        "which panel judge (0-based) writes the rubric every judge scores",
        metavar="N",
    ),
    Option(
        "judge_update_baselines",
        lambda v: v.strip().lower() in ("1", "true", "yes", "on"),
        False,
        "write missing baselines, and replace those a candidate beats in both orders",
        flag=True,
    ),
)


#: Options of a pytest run only (reports and gates), not of the judge: the `rubric-judge`
#: command shares `OPTIONS` but not these.
RUN_OPTIONS: tuple[Option, ...] = (
    Option(
        "judge_serve",
        text,
        None,
        "start the judge server with this command for the run, {port} replaced by a free "
        "port on 127.0.0.1, e.g. 'vllm serve Qwen/Qwen2.5-7B-Instruct --port {port}'",
        env=("RUBRIC_JUDGE_SERVE",),
        metavar="COMMAND",
    ),
    Option(
        "judge_serve_timeout",
        positive_float,
        600.0,
        "seconds to wait for the --judge-serve server to answer",
        metavar="SECONDS",
    ),
    Option(
        "judge_serve_log",
        text,
        None,
        f"log file of the --judge-serve server (default: {DEFAULT_SERVE_LOG} under the rootdir)",
        metavar="PATH",
    ),
    Option(
        "judge_report",
        report_path,
        None,
        "write every verdict of the run and its aggregates to this JSON file",
        env=("RUBRIC_JUDGE_REPORT",),
        metavar="PATH.json",
    ),
    Option(
        "judge_report_md",
        report_path,
        None,
        "write a short Markdown summary (for a CI step summary or a PR comment) to this file",
        env=("RUBRIC_JUDGE_REPORT_MD",),
        metavar="PATH.md",
    ),
    Option(
        "judge_fail_under",
        gates_argument,
        (),
        "fail the run when a suite-level gate is not met: winrate=RATE, winrate_lower=RATE, "
        "consistency=RATE, errors=N; comma-separated or repeated",
        env=("RUBRIC_JUDGE_FAIL_UNDER",),
        metavar="KEY=VALUE",
        repeat=True,
    ),
)
ALL_OPTIONS: tuple[Option, ...] = OPTIONS + RUN_OPTIONS


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("rubric-judge", "rubric judge (pytest-rubric-judge)")
    for option in ALL_OPTIONS:
        if option.flag:
            group.addoption(
                option.cli, action="store_true", default=None, dest=option.dest, help=option.help
            )
            parser.addini(option.dest, option.help, type="bool", default=False)
            continue
        env = f" [env: {', '.join(option.env)}]" if option.env else ""
        group.addoption(
            option.cli,
            dest=option.dest,
            type=option.parse,
            default=None,
            action="append" if option.repeat else "store",
            metavar=option.metavar,
            help=option.help + env,
        )
        parser.addini(option.dest, option.help, default=None)


@dataclass(frozen=True)
class Settings:
    #: One URL, or several comma-separated replicas.
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

    @property
    def api_key(self) -> str | None:
        for name in API_KEY_ENV:
            value = os.environ.get(name)
            if value:
                return value
        return None


def read_settings(config: pytest.Config) -> Settings:
    """Resolve every option; a bad environment or ini value is a usage error naming it."""
    values: dict[str, Any] = {}
    for option in ALL_OPTIONS:
        value = config.getoption(option.dest)
        if option.repeat and value is not None:
            value = tuple(item for part in value for item in part)
        source = option.cli
        if value is None:
            for name in option.env:
                if os.environ.get(name):
                    value, source = os.environ[name], f"environment variable {name}"
                    break
        if value is None:
            value, source = config.getini(option.dest), f"ini key {option.dest}"
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
                raise pytest.UsageError(f"{source}: {error}") from None
        values[option.dest] = value
    values["judge_cache_dir"] = _cache_dir(config, config.getoption("judge_cache_dir"))
    urls = values["judge_url"]
    values["judge_url"] = ",".join(urls) if urls else None
    if values["judge_serve"] is not None:
        if "{port}" not in values["judge_serve"]:
            raise pytest.UsageError(
                "--judge-serve: the command must contain {port}, e.g. "
                "'vllm serve MODEL --port {port}'"
            )
        log = values["judge_serve_log"]
        values["judge_serve_log"] = (
            (config.invocation_params.dir / log).resolve()
            if log
            else config.rootpath / DEFAULT_SERVE_LOG
        )
    if values["judge_panel"] and values["judge_panel_rubric"] >= len(values["judge_panel"]):
        raise pytest.UsageError(
            f"--judge-panel-rubric {values['judge_panel_rubric']} is not a panel member; "
            f"the panel has {len(values['judge_panel'])} judges (0-based)"
        )
    for dest in ("judge_report", "judge_report_md"):
        if values[dest] is not None:
            values[dest] = _report_path(config, dest, str(values[dest]))
    return Settings(**values)


def _report_path(config: pytest.Config, dest: str, value: str) -> Path:
    """A report path: relative to where pytest started, or for an ini value to the ini file."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    if config.getoption(dest) is None and not any(
        os.environ.get(name) for name in next(o.env for o in RUN_OPTIONS if o.dest == dest)
    ):
        base = config.inipath.parent if config.inipath else config.rootpath
        return (base / path).resolve()
    return (config.invocation_params.dir / path).resolve()


def _cache_dir(config: pytest.Config, cli_value: str | None) -> Path:
    if cli_value:
        return (config.invocation_params.dir / cli_value).resolve()
    env_value = os.environ.get("RUBRIC_JUDGE_CACHE_DIR")
    if env_value:
        return Path(env_value).resolve()
    ini_value = config.getini("judge_cache_dir")
    if ini_value:
        base = config.inipath.parent if config.inipath else config.rootpath
        return (base / str(ini_value)).resolve()
    return config.rootpath / DEFAULT_CACHE_DIR
