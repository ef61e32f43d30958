"""The option table the pytest plugin and the `rubric-judge` command share.

One `Option` per setting: its flag (`--judge-url`), ini key (`judge_url`), environment
variables, parser (`option_parsers`), default and help. Parsers raise
`argparse.ArgumentTypeError` with a message that never quotes a credential, so a bad
value is a usage error, never a crash and never a leak.

Plain Python: no pytest, and nothing heavy at import. A parser that needs a heavier part
of the package (URL checks, gates) imports it when it runs, which is only when the option
is given. The API key is never an option: it comes only from the environment
(`api_key_from_env`), as a `Secret`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import STRUCTURED_MODES
from .option_parsers import (
    API_KEY_ENV,
    api_key_from_env,
    boolean,
    cache_mode,
    choice,
    confidence_level,
    fail_under,
    judge_budget,
    judge_panel,
    judge_urls,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    report_path,
    shown_url,
    split_urls,
    text,
)

DEFAULT_CACHE_DIR = ".rubric_judge_cache"
DEFAULT_SERVE_LOG = ".rubric_judge_serve.log"
#: How a panel decides; the same as `scoring.PANEL_STRATEGIES` (a test keeps them equal),
#: spelled here so that reading options does not import the scoring code.
PANEL_STRATEGIES: tuple[str, ...] = ("majority", "unanimous", "mean_margin")


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
        "judge model name as the server knows it (default: the first model the server "
        "lists, with a warning when it lists several)",
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
        "constrain answers with a JSON Schema: auto (find the response_format dialect the "
        "server takes: json_schema, openai_strict, json_object_schema, tgi_json, "
        "json_object, else none), one of those dialects (always), or off",
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
    Option(
        "judge_compare_to",
        report_path,
        None,
        "at the end of the run, diff its JSON report against this earlier --judge-report "
        "file and print the diff in the summary",
        env=("RUBRIC_JUDGE_COMPARE_TO",),
        metavar="OLD.json",
    ),
    Option(
        "judge_fail_on_regression",
        boolean,
        False,
        "fail the run when the --judge-compare-to diff finds a regression",
        flag=True,
    ),
    Option(
        "judge_confidence",
        confidence_level,
        None,
        "judge each assertion to this confidence, e.g. 0.95: seeded samples are drawn in "
        "batches until a sequential test decides pass or fail (see docs/confidence.md); "
        "default: off (a fixed --judge-samples)",
        env=("RUBRIC_JUDGE_CONFIDENCE",),
        metavar="LEVEL",
    ),
    Option(
        "judge_max_samples",
        positive_int,
        16,
        "with --judge-confidence: the most samples one assertion draws before it is undecided",
        env=("RUBRIC_JUDGE_MAX_SAMPLES",),
        metavar="N",
    ),
    Option(
        "judge_undecided",
        choice("fail", "error", "skip"),
        "fail",
        "what an assertion undecided at --judge-max-samples makes of its test: fail "
        "(default), error or skip",
        env=("RUBRIC_JUDGE_UNDECIDED",),
        metavar="OUTCOME",
    ),
    Option(
        "judge_lock_rubrics",
        boolean,
        False,
        "write each rubric the judge makes for a test to judge_rubrics/<module>/<test id>.yaml "
        "beside the test module; every run judges on the rubrics locked there",
        env=("RUBRIC_JUDGE_LOCK_RUBRICS",),
        flag=True,
    ),
    Option(
        "judge_check_rubrics",
        boolean,
        False,
        "ask the judge again for each locked rubric a test uses and report the criteria "
        "that changed (names, weights, types), without replacing the lock files",
        env=("RUBRIC_JUDGE_CHECK_RUBRICS",),
        flag=True,
    ),
    Option(
        "judge_budget",
        judge_budget,
        None,
        "the most the judge may be asked in this run, requests=N and/or tokens=M; once it "
        "is spent, each judged test that needs a request is an error",
        env=("RUBRIC_JUDGE_BUDGET",),
        metavar="requests=N,tokens=M",
    ),
    Option(
        "judge_dry_run",
        boolean,
        False,
        "ask the judge nothing: judged tests that would ask are skipped, and the summary "
        "counts the judge calls cached and those that would be asked",
        env=("RUBRIC_JUDGE_DRY_RUN",),
        flag=True,
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
    "confidence_level",
    "fail_under",
    "judge_budget",
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
