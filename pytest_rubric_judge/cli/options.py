"""Judge options for the command line, from the option table the plugin reads too.

Nothing here imports pytest or the judge at import time (`rubric-judge --help` stays
quick); the judge is imported when a command makes one.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..credentials import Secret
from ..options import DEFAULT_CACHE_DIR, OPTIONS, api_key_from_env

if TYPE_CHECKING:
    from ..judge import Judge

#: Files whose folder pytest would take as the rootdir.
ROOT_MARKERS = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
#: Panels are a pytest-run feature; the command judges with one model (several replicas).
JUDGE_OPTIONS = tuple(
    o
    for o in OPTIONS
    if o.dest
    not in ("judge_update_baselines", "judge_panel", "judge_panel_strategy", "judge_panel_rubric")
)


class CommandError(Exception):
    """A usage problem found after parsing (a missing file, a bad combination)."""


def add_judge_options(parser: argparse.ArgumentParser, *, cache_only: bool = False) -> None:
    """The plugin's judge options (`--judge-url`, ...), with the same environment fallbacks.

    With `cache_only`, just `--judge-cache-dir` (for the cache commands).
    """
    group = parser.add_argument_group("judge options (as in the pytest plugin)")
    for option in JUDGE_OPTIONS:
        if cache_only and option.dest != "judge_cache_dir":
            continue
        group.add_argument(
            option.cli,
            dest=option.dest,
            type=option.parse,
            default=None,
            metavar=option.metavar,
            help=option.command_help_text,
        )


def _resolved(args: argparse.Namespace, dest: str) -> object:
    """The option's value: command line, then environment, then default."""
    option = next(o for o in JUDGE_OPTIONS if o.dest == dest)
    value = getattr(args, dest, None)
    if value is None:
        for name in option.env:
            if os.environ.get(name):
                try:
                    value = option.parse(os.environ[name])
                except argparse.ArgumentTypeError as error:
                    raise CommandError(f"environment variable {name}: {error}") from None
                break
    return option.default if value is None else value


def find_rootdir(start: Path | None = None) -> Path:
    """The nearest folder, from `start` up, holding a pytest configuration file, else `start`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).is_file() for marker in ROOT_MARKERS):
            return folder
    return here


def cache_dir(args: argparse.Namespace) -> Path:
    """`--judge-cache-dir`, else RUBRIC_JUDGE_CACHE_DIR, else the plugin's default folder."""
    value = _resolved(args, "judge_cache_dir")
    if value:
        return Path(str(value)).resolve()
    return find_rootdir() / DEFAULT_CACHE_DIR


def api_key() -> Secret | None:
    """The API key from the environment, as a `Secret`."""
    return api_key_from_env()


def judge_from_args(args: argparse.Namespace, **overrides: object) -> Judge:
    """A `Judge` configured exactly as the plugin would configure it."""
    from ..judge import Judge

    settings: dict[str, object] = {
        "api_key": api_key(),
        "cache_dir": cache_dir(args),
        "cache_mode": _resolved(args, "judge_cache"),
        "timeout": _resolved(args, "judge_timeout"),
        "max_retries": _resolved(args, "judge_max_retries"),
        "temperature": _resolved(args, "judge_temperature"),
        "max_tokens": _resolved(args, "judge_max_tokens"),
        "max_input_chars": _resolved(args, "judge_max_input_chars"),
        "seed": _resolved(args, "judge_seed"),
        "samples": _resolved(args, "judge_samples"),
        "structured_output": _resolved(args, "judge_structured_output"),
    }
    settings.update(overrides)
    url = _resolved(args, "judge_url")
    if isinstance(url, tuple):
        url = ",".join(url)
    model = _resolved(args, "judge_model")
    return Judge(
        str(url) if url else None,
        str(model) if model else None,
        **settings,  # type: ignore[arg-type]
    )
