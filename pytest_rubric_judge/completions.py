"""Reading a chat-completions body, and the text helpers of every message about one.

`Completion` is what a client returns for one request; the functions read its parts
from the server's JSON leniently (a missing usage counts 0 tokens) and the server's own
error message from an error body; `excerpt`, `one_line` and `printable` make any text
quoted in an error one printable line.
"""

from __future__ import annotations

import http
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .models import Usage

__all__ = [
    "EXCERPT_CHARS",
    "Completion",
    "content_text",
    "excerpt",
    "one_line",
    "phrase",
    "printable",
    "server_message",
    "usage_of",
]

#: The most characters of a server's error message quoted in an exception.
EXCERPT_CHARS = 300


@dataclass(frozen=True)
class Completion:
    """One chat completion: the text and the bookkeeping a judge call records."""

    text: str
    usage: Usage
    #: As the server sent it; "length" means the answer was cut at max_tokens.
    finish_reason: str | None
    #: Wall time over all attempts, backoff included.
    latency_s: float
    #: Attempts beyond the first.
    retries: int
    #: The model the server says answered (the requested one when it does not say).
    model: str


def content_text(content: object) -> str | None:
    """`message.content` as text: null is "", a list of text parts is joined, else None."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                return None
        return "".join(parts)
    return None


def usage_of(raw: object) -> Usage:
    """Token counts from the `usage` object; anything missing or malformed counts as 0."""
    if not isinstance(raw, Mapping):
        return Usage()

    def count(key: str) -> int:
        value = raw.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53
        return int(value) if ok else 0  # type: ignore[arg-type]

    prompt, completion = count("prompt_tokens"), count("completion_tokens")
    return Usage.model_construct(  # counts checked above: non-negative ints
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=count("total_tokens") or prompt + completion,
    )


def server_message(data: object) -> str | None:
    """The human-readable error a server put in its JSON body, in the usual places."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    for candidate in (error, data.get("detail"), data.get("message")):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "(unknown status)"


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


_UNPRINTABLE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def printable(text: str) -> str:
    """`text` with control, bidirectional-override and lone-surrogate characters escaped."""
    return _UNPRINTABLE_RE.sub(lambda match: ascii(match.group())[1:-1], text)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    line = one_line(text)
    return line if len(line) <= limit else line[: limit - 1] + "…"
