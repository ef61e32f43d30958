"""What a judge server says of itself beyond chat completions: its `GET /v1/models`
entries and, for llama-server, `GET /props`; read for the context length it runs with.

Servers differ: vLLM lists `max_model_len` in each model entry; llama-server lists
`meta.n_ctx_train` there (the context the model was trained with) and the context it
serves as `n_ctx` in `/props`; others report nothing. This is metadata: every failure is
"not reported", never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import JudgeConfig
from .errors import ParseError
from .loading import load_json_object

__all__ = ["CONTEXT_FIELDS", "context_length", "get_json"]

#: Fields of a `GET /v1/models` entry that give the context the server runs with
#: (vLLM: `max_model_len`; others: the rest).
CONTEXT_FIELDS = ("max_model_len", "context_length", "max_context_length", "context_window")
#: The most bytes read of a metadata answer.
METADATA_MAX_BYTES = 1 << 20


def _positive_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if value > 0 else None


def context_length(
    entries: list[Any], model: str | None, props: Mapping[str, Any] | None = None
) -> tuple[int, str] | None:
    """The context length the server reports for `model` and where it said so, or None.

    Read from the model's `GET /v1/models` entry (vLLM's `max_model_len` and the like),
    else from llama-server's `GET /props` (`n_ctx`), else from the entry's
    `meta.n_ctx_train` (llama-server, llama-cpp-python: the context trained with, an
    upper bound of what is served).
    """
    dicts = [e for e in entries if isinstance(e, dict)]
    entry = next((e for e in dicts if e.get("id") == model), dicts[0] if dicts else {})
    for name in CONTEXT_FIELDS:
        found = _positive_int(entry.get(name))
        if found:
            return found, f"{name} in GET /v1/models"
    meta = entry.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    found = _positive_int(meta.get("n_ctx"))
    if found:
        return found, "meta.n_ctx in GET /v1/models"
    if props:
        settings = props.get("default_generation_settings")
        for where, value in (
            ("n_ctx in GET /props", props.get("n_ctx")),
            (
                "default_generation_settings.n_ctx in GET /props",
                settings.get("n_ctx") if isinstance(settings, dict) else None,
            ),
        ):
            found = _positive_int(value)
            if found:
                return found, where
    found = _positive_int(meta.get("n_ctx_train"))
    if found:
        return found, "meta.n_ctx_train in GET /v1/models (the context trained with)"
    return None


def get_json(config: JudgeConfig, which: str) -> dict[str, Any] | None:
    """`GET /v1/models` ("models") or llama-server's `GET /props` ("props", at the server's
    root) from a judge's first endpoint, with its credentials, as a JSON object; None on
    any failure: this is metadata, and the judge works without it."""
    import httpx

    from .client import environment_proxy
    from .targets import target

    try:
        endpoint = target(
            config.urls[0],
            api_key=config.api_key,
            timeout=config.timeout,
            max_retries=0,
            backoff_base=0.0,
            backoff_max=0.0,
            retry_after_max=0.0,
        )
        base = endpoint.url
        if which == "props":
            base = base[: -len("/v1")] if base.endswith("/v1") else base
        body = b""
        with (
            httpx.Client(
                headers=endpoint.headers(),
                timeout=min(config.timeout, 10.0),
                proxy=environment_proxy(endpoint.url),
                trust_env=False,
                follow_redirects=False,
            ) as http,
            http.stream("GET", f"{base}/{which}") as response,
        ):
            if response.status_code != 200:
                return None
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > METADATA_MAX_BYTES:
                    return None
        return load_json_object(body.decode("utf-8", "replace"))
    except (httpx.HTTPError, OSError, ValueError, ParseError):
        return None
