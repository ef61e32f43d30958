"""The option table the pytest plugin and the `rubric-judge` command share.

One `Option` per setting: its flag (`--judge-url`), ini key (`judge_url`), environment
variables, parser, default and help. Parsers raise `argparse.ArgumentTypeError` with a
message that never quotes a credential, so a bad value is a usage error, never a crash
and never a leak.

Plain Python: no pytest, and nothing heavy at import. A parser that needs a heavier part
of the package (URL checks, gates) imports it when it runs, which is only when the option
is given. The API key is never an option: it comes only from the environment
(`api_key_from_env`), as a `Secret`.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .cache.modes import CACHE_MODES, CacheMode, validate_mode
from .config import STRUCTURED_MODES
from .credentials import Secret

if TYPE_CHECKING:
    from .gates import Gate

API_KEY_ENV = ("RUBRIC_JUDGE_API_KEY", "OPENAI_API_KEY")
DEFAULT_CACHE_DIR = ".rubric_judge_cache"
DEFAULT_SERVE_LOG = ".rubric_judge_serve.log"
#: How a panel decides; the same as `scoring.PANEL_STRATEGIES` (a test keeps them equal),
#: spelled here so that reading options does not import the scoring code.
PANEL_STRATEGIES: tuple[str, ...] = ("majority", "unanimous", "mean_margin")
_TRUE = ("1", "true", "yes", "on")


def api_key_from_env(environ: Mapping[str, str] | None = None) -> Secret | None:
    """The API key from RUBRIC_JUDGE_API_KEY, else OPENAI_API_KEY; None when neither is set."""
    source = os.environ if environ is None else environ
    for name in API_KEY_ENV:
        if source.get(name):
            return Secret(source[name])
    return None


# -- value parsers (argparse `type=` callables) ------------------------------------------------


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
    if not value >= 0:
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


def boolean(value: str) -> bool:
    return value.strip().lower() in _TRUE


def report_path(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("a report path must not be empty")
    return value


def split_urls(value: str) -> list[str]:
    """`"http://a/v1, http://b/v1"` as a list of non-empty URLs."""
    return [part.strip() for part in value.split(",") if part.strip()]


def shown_url(value: str) -> str:
    """`value` with everything between `://` and its last `@` shown as `***`.

    For messages about a URL that may be malformed: a password with an unencoded `/` or
    `@` is still hidden.
    """
    scheme, sep, rest = value.partition("://")
    if not sep or "@" not in rest:
        return value
    return f"{scheme}{sep}***@{rest.rsplit('@', 1)[1]}"


def _base_url(value: str) -> str:
    from .credentials import redact_url
    from .http_policy import normalize_base_url

    try:
        return normalize_base_url(value)
    except ValueError as error:
        shown = shown_url(value.strip())
        message = str(error).replace(redact_url(value.strip()), shown).replace(value, shown)
        raise argparse.ArgumentTypeError(message) from None


def judge_urls(value: str) -> tuple[str, ...]:
    """One URL, or several separated by commas (several endpoints of the same model)."""
    urls = split_urls(value)
    if not urls:
        raise argparse.ArgumentTypeError("no judge URL given")
    return tuple(_base_url(url) for url in urls)


def choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return parse


#: `MODEL@URL`: the model is everything before the first `@` that starts the URL, so a
#: URL may carry `user:password@` and a model name may hold `@`.
_PANEL_MEMBER = re.compile(r"^(?P<model>.+?)@(?P<url>[A-Za-z][A-Za-z0-9+.-]*://.+)$")
#: A URL's user:password part, wherever it is in a text we quote back.
_USERINFO = re.compile(r"(?<=://)[^/\s]*@")


def judge_panel(value: str) -> tuple[tuple[str, str], ...]:
    """`modelA@URL1,modelB@URL2` as (model, url) pairs."""
    members = []
    for part in split_urls(value):
        found = _PANEL_MEMBER.match(part)
        if found is None or not found["model"].strip():
            shown = shown_url(part) if "://" in part else _USERINFO.sub("***@", part)
            raise argparse.ArgumentTypeError(
                f"panel member {shown!r} is not MODEL@URL, e.g. "
                "'Qwen/Qwen2.5-7B-Instruct@http://127.0.0.1:8000/v1'"
            )
        members.append((found["model"].strip(), _base_url(found["url"].strip())))
    if not members:
        raise argparse.ArgumentTypeError("no panel member given")
    return tuple(members)


def fail_under(value: str) -> tuple[Gate, ...]:
    """Suite-level gates, `winrate=0.5,errors=0` (see `gates`)."""
    from .gates import gates_argument

    return gates_argument(value)


# -- the table ---------------------------------------------------------------------------------


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
    #: The help in the `rubric-judge` command, where it differs (no rootdir outside pytest).
    cli_help: str | None = None

    @property
    def cli(self) -> str:
        """The command-line flag: `--judge-url`."""
        return "--" + self.dest.replace("_", "-")

    @property
    def ini(self) -> str:
        """The ini key: `judge_url`."""
        return self.dest

    @property
    def help_text(self) -> str:
        """The help, with the environment variables that also set it."""
        return self.help + self._env_suffix

    @property
    def command_help_text(self) -> str:
        """The help in the `rubric-judge` command, with the environment variables."""
        return (self.cli_help or self.help) + self._env_suffix

    @property
    def _env_suffix(self) -> str:
        return f" [env: {', '.join(self.env)}]" if self.env else ""


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
        cli_help=(
            f"folder of the verdict cache (default: {DEFAULT_CACHE_DIR} in the nearest folder "
            "upward holding a pytest.ini, pyproject.toml, tox.ini or setup.cfg, else in the "
            "current folder)"
        ),
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
        boolean,
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
        fail_under,
        (),
        "fail the run when a suite-level gate is not met: winrate=RATE, winrate_lower=RATE, "
        "consistency=RATE, errors=N; comma-separated or repeated",
        env=("RUBRIC_JUDGE_FAIL_UNDER",),
        metavar="KEY=VALUE",
        repeat=True,
    ),
)
ALL_OPTIONS: tuple[Option, ...] = OPTIONS + RUN_OPTIONS
BY_DEST: dict[str, Option] = {option.dest: option for option in ALL_OPTIONS}

__all__ = [
    "ALL_OPTIONS",
    "API_KEY_ENV",
    "BY_DEST",
    "DEFAULT_CACHE_DIR",
    "DEFAULT_SERVE_LOG",
    "OPTIONS",
    "PANEL_STRATEGIES",
    "RUN_OPTIONS",
    "Option",
    "api_key_from_env",
    "boolean",
    "cache_mode",
    "choice",
    "fail_under",
    "judge_panel",
    "judge_urls",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "report_path",
    "shown_url",
    "split_urls",
    "text",
]
