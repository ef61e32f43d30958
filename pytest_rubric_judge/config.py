"""A judge's configuration: one frozen value, checked once when it is made.

Everything that shapes a judge's requests and answers (the model, sampling, criteria
bounds, input limits, samples, structured output) and how it talks to the server
(timeout, retries, concurrency) is here; `Judge` builds the client and the cache from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from .credentials import Secret, redact_url
from .dialects import PROBE_ORDER

DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_TOKENS = 2048
DEFAULT_MAX_INPUT_CHARS = 200_000
DEFAULT_CONCURRENCY = 8

StructuredMode = Literal[
    "auto", "json_schema", "openai_strict", "json_object_schema", "tgi_json", "json_object", "off"
]
#: `auto`, each dialect of `dialects.PROBE_ORDER`, and `off`.
STRUCTURED_MODES: tuple[str, ...] = ("auto", *PROBE_ORDER, "off")

NOT_CONFIGURED_HINT = (
    "point the plugin at an OpenAI-compatible judge: --judge-url and --judge-model "
    "(or RUBRIC_JUDGE_BASE_URL and RUBRIC_JUDGE_MODEL), for example after "
    "`vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000` use "
    "--judge-url http://127.0.0.1:8000/v1 --judge-model Qwen/Qwen2.5-7B-Instruct"
)


def check_timeout(seconds: float) -> None:
    """Raise ValueError unless `seconds` is a positive, finite number (a timer cannot be
    set to infinity: aiohttp's raises OverflowError). Shared with the clients' policy."""
    if not 0 < seconds < math.inf:
        raise ValueError(f"timeout must be a positive, finite number, got {seconds!r}")


@dataclass(frozen=True)
class JudgeConfig:
    """How a judge is asked. `urls` may be empty: the judge then answers from its cache."""

    #: May carry user:password (HTTP Basic auth), so it is left out of the repr.
    urls: tuple[str, ...] = field(default=(), repr=False)
    model: str | None = None
    api_key: Secret | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    temperature: float = 0.0
    max_tokens: int | None = DEFAULT_MAX_TOKENS
    top_p: float | None = None
    seed: int | None = None
    min_criteria: int = 2
    max_criteria: int = 8
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS
    concurrency: int = DEFAULT_CONCURRENCY
    samples: int = 1
    structured_output: StructuredMode = "auto"

    def __post_init__(self) -> None:
        if not 1 <= self.min_criteria <= self.max_criteria:
            raise ValueError("need 1 <= min_criteria <= max_criteria")
        if self.max_input_chars < 1:
            raise ValueError("max_input_chars must be >= 1")
        if self.samples < 1:
            raise ValueError("samples must be 1 or more")
        if self.concurrency < 1:
            raise ValueError("concurrency must be 1 or more")
        check_timeout(self.timeout)
        if not 0 <= self.temperature < math.inf:
            raise ValueError(
                f"temperature must be a finite number of 0 or more, got {self.temperature!r}"
            )
        if self.top_p is not None and not 0 <= self.top_p <= 1:
            raise ValueError(f"top_p must be between 0 and 1, got {self.top_p!r}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries!r}")
        if self.structured_output not in STRUCTURED_MODES:
            raise ValueError(
                f"structured_output must be one of {', '.join(STRUCTURED_MODES)}, "
                f"not {self.structured_output!r}"
            )

    @property
    def display_urls(self) -> str | None:
        """The endpoints as shown in messages and reprs: no user:password part."""
        return ",".join(redact_url(u) for u in self.urls) if self.urls else None
