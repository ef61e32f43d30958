"""The parsers of option values: each turns the text of a flag, ini key or environment
variable into a value, or raises `argparse.ArgumentTypeError` with a message that never
quotes a credential. Plain Python: no pytest, nothing heavy at import.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .cache.modes import CACHE_MODES, CacheMode, validate_mode
from .credentials import Secret

if TYPE_CHECKING:
    from .budget import JudgeBudget
    from .gates import Gate

API_KEY_ENV = ("RUBRIC_JUDGE_API_KEY", "OPENAI_API_KEY")
_TRUE = ("1", "true", "yes", "on")


def api_key_from_env(environ: Mapping[str, str] | None = None) -> Secret | None:
    """The API key from RUBRIC_JUDGE_API_KEY, else OPENAI_API_KEY; None when neither is set."""
    source = os.environ if environ is None else environ
    for name in API_KEY_ENV:
        if source.get(name):
            return Secret(source[name])
    return None


# -- value parsers (argparse `type=` callables) ------------------------------------------------


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):  # no option of this plugin means anything by inf or nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
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


def confidence_level(text: str) -> float:
    """A confidence for sequential judging: above 0.5 and below 1 (0.95, not 95)."""
    value = _number(text)
    if not 0.5 < value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be above 0.5 and below 1, e.g. 0.95 for 95% confidence"
        )
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


def judge_budget(value: str) -> JudgeBudget:
    """A spend budget, `requests=200,tokens=500000` (see `budget`)."""
    from .budget import parse_budget

    try:
        return parse_budget(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
