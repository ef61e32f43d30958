"""What both chat-completions clients share: the request body, the retry policy, body
decoding with a size cap, the reading of a completion, and the wording of every failure.

The blocking client (`client.ChatClient`, httpx) and the asyncio client
(`aio.AsyncChatClient`, aiohttp) differ only in how one attempt goes over the wire. Each
attempt ends in a `Reply` (a status, headers and a decoded body) or an `AttemptFailed`
(the connection failed, with a typed cause); `Policy.judge` decides from that alone
whether the logical request succeeded, is retried after a delay, or fails with a one-line
`JudgeUnavailableError` whose `cause`, `status` and `failover` are set. Nothing here does
I/O, so every rule is tested once.
"""

from __future__ import annotations

import email.utils
import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from .completions import (
    Completion,
    content_text,
    excerpt,
    one_line,
    phrase,
    printable,
    server_message,
    usage_of,
)
from .config import check_timeout
from .credentials import mask, redact_url
from .dialects import rejects_format
from .errors import JudgeUnavailableError
from .wire_json import json_bytes, read_json

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "RETRY_STATUSES",
    "AttemptFailed",
    "BodyDecoder",
    "Completion",
    "Policy",
    "Reply",
    "chat_body",
    "normalize_base_url",
    "retry_after",
]

#: HTTP statuses that mean "try again": timeout, rate limit, server errors and gateways.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: The largest response body accepted, after decompression. A judge's answer is a few
#: kilobytes; a runaway or hostile server must not exhaust memory.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024

URL_HINT = "Check --judge-url / RUBRIC_JUDGE_BASE_URL"
KEY_HINT = "check RUBRIC_JUDGE_API_KEY / OPENAI_API_KEY"

#: Why one attempt failed before a whole response arrived.
FailureCause = Literal[
    "connect_timeout",  # no connection within the deadline
    "timeout",  # connected, but the whole answer did not arrive within the deadline
    "refused",
    "unreachable",  # DNS, no route, TLS setup
    "reset",  # closed or reset mid-exchange, malformed HTTP
    "too_large",  # the body passed the size cap
    "config",  # a proxy or URL setting that no retry can heal
]
#: Causes worth another attempt on the same endpoint.
RETRIED_CAUSES = frozenset({"connect_timeout", "timeout", "refused", "unreachable", "reset"})


@dataclass(frozen=True)
class Reply:
    """A whole HTTP response: status, headers (looked up by lower-case name, whatever the
    case the server used) and the decoded body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class AttemptFailed(Exception):
    """One attempt failed before a whole response arrived."""

    def __init__(self, cause: FailureCause, detail: str = "") -> None:
        super().__init__(detail or cause)
        self.cause: FailureCause = cause
        self.detail = detail


def normalize_base_url(base_url: str) -> str:
    """The base URL that `/chat/completions` and `/models` are appended to.

    A trailing "/" is dropped and a bare host gets "/v1", so "http://127.0.0.1:8000" and
    "http://127.0.0.1:8000/v1" name the same endpoint. Raises ValueError for anything that
    is not an http(s) URL with a host.
    """
    text = base_url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"judge URL {redact_url(text)!r} is not an http(s) URL with a host; "
            "expected something like http://127.0.0.1:8000/v1"
        )
    if parts.query or parts.fragment:
        raise ValueError(
            f"judge URL {redact_url(text)!r} has a query or fragment; give the base "
            "URL only, e.g. https://api.example.com/v1"
        )
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"judge URL {redact_url(text)!r} has an invalid port") from exc
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def chat_body(
    messages: list[dict[str, Any]],
    *,
    model: str,
    temperature: float = 0.0,
    max_tokens: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    response_format: dict[str, object] | None = None,
) -> bytes:
    """The JSON body of a chat-completions request. Optional sampling fields are sent only
    when given, since some servers reject fields they do not know."""
    body: dict[str, object] = {"model": model, "temperature": temperature}
    optional: dict[str, object | None] = {"max_tokens": max_tokens, "top_p": top_p, "seed": seed}
    body.update({key: value for key, value in optional.items() if value is not None})
    body["messages"] = messages
    if response_format is not None:
        body["response_format"] = response_format
    return json_bytes(body)


class BodyDecoder:
    """Decodes a response body as it arrives, refusing it once it passes `limit` bytes
    *after* decompression: a small gzip body cannot inflate into gigabytes in memory.

    Handles identity, gzip and deflate (zlib or raw); any other content coding is refused.
    """

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        coding = (content_encoding or "identity").strip().lower()
        self._inflate: Any = None
        self._raw_deflate = False
        if coding in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._inflate = zlib.decompressobj()
        elif coding not in ("identity", ""):
            raise AttemptFailed("config", f"the server sent a body in {coding!r} coding")

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._inflate is None:
            self._keep(chunk)
            return
        data = chunk
        while data:
            room = self.limit - self._size + 1
            try:
                out = self._inflate.decompress(data, room)
            except zlib.error as exc:
                if self._size == 0 and not self._raw_deflate and self._inflate.eof is False:
                    # Some servers send raw deflate under "deflate": try that once.
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._raw_deflate = True
                    continue
                raise AttemptFailed(
                    "reset", f"the body could not be decompressed ({exc})"
                ) from None
            self._keep(out)
            data = self._inflate.unconsumed_tail
            if self._inflate.eof:
                break

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.limit:
            raise AttemptFailed("too_large", f"the body passed {self.limit:,} bytes")
        self._parts.append(data)

    def finish(self) -> bytes:
        if self._inflate is not None:
            self._keep(self._inflate.flush())
        return b"".join(self._parts)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date.
    `headers` has lower-case names."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            value = -1.0
        if value == value and value >= 0:  # not NaN
            return value
    text = headers.get("retry-after")
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


@dataclass
class Retry:
    """`Policy.judge`'s answer when the attempt is to be repeated after `delay` seconds."""

    delay: float
    cause: str


@dataclass
class Policy:
    """One client's retry policy and error wording.

    `display_url` carries no credentials; `secrets` are the texts masked from every message
    (a server may echo the key or the Basic token back).
    """

    display_url: str
    timeout: float
    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    retry_after_max: float = 60.0
    secrets: tuple[str, ...] = ()
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        check_timeout(self.timeout)
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries!r}")
        if min(self.backoff_base, self.backoff_max, self.retry_after_max) < 0:
            raise ValueError("backoff_base, backoff_max and retry_after_max must be 0 or more")

    @property
    def attempts(self) -> int:
        return self.max_retries + 1

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(backoff_max, backoff_base * 2**attempt)]."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(attempt, 62))
        return self.rng.uniform(0.0, ceiling)

    def judge(
        self,
        attempt: int,
        outcome: Reply | AttemptFailed,
        *,
        request: str,
        model: str | None,
    ) -> dict[str, Any] | Retry:
        """The decoded JSON object of a successful reply, a `Retry`, or raises the final
        `JudgeUnavailableError` (its `retries` set to the attempts spent before it)."""
        last = attempt >= self.max_retries
        if isinstance(outcome, AttemptFailed):
            if outcome.cause in RETRIED_CAUSES and not last:
                return Retry(self.backoff(attempt), outcome.cause)
            raise self._failed(outcome, attempt + 1, retries=attempt)
        status = outcome.status
        if 200 <= status < 300:
            try:
                data = read_json(outcome.body)
            except (ValueError, RecursionError):
                text = outcome.body[:200].decode("utf-8", "replace")
                raise self.error(
                    f"judge at {self.display_url} answered HTTP {status} with a body that is "
                    f"not JSON ({excerpt(text, 80)!r}); is it an OpenAI-compatible endpoint? "
                    f"{URL_HINT}",
                    cause="bad_body",
                    retries=attempt,
                ) from None
            if not isinstance(data, dict):
                raise self.bad_body("a JSON body that is not an object", data, retries=attempt)
            return data
        if status in RETRY_STATUSES and not last and not _refuses_format(outcome):
            hinted = retry_after(outcome.headers) if status in (429, 503) else None
            delay = (
                min(hinted, self.retry_after_max) if hinted is not None else self.backoff(attempt)
            )
            return Retry(delay, f"HTTP {status}")
        raise self._status_error(
            outcome, attempt + 1, request=request, model=model, retries=attempt
        )

    # -- wording ---------------------------------------------------------------------------

    def error(
        self, message: str, *, cause: str, status: int | None = None, retries: int = 0
    ) -> JudgeUnavailableError:
        """An error whose message is one printable line without any credential.

        A server may echo what it received (the key, the URL's password, the Basic token)
        or send terminal control characters; none of that reaches the message.
        """
        text = mask(printable(one_line(message)), self.secrets)
        error = JudgeUnavailableError(text, retries=retries)
        error.status = status
        error.cause = cause
        return error

    def bad_body(self, what: str, data: object, *, retries: int = 0) -> JudgeUnavailableError:
        detail = server_message(data)
        said = f" (it said: {excerpt(detail)})" if detail else ""
        return self.error(
            f"judge at {self.display_url} answered with {what}{said}; is it an "
            f"OpenAI-compatible chat-completions endpoint? {URL_HINT}",
            cause="bad_body",
            retries=retries,
        )

    def _failed(
        self, failure: AttemptFailed, attempts: int, *, retries: int
    ) -> JudgeUnavailableError:
        where = f"judge at {self.display_url}"
        tries = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
        detail = one_line(failure.detail)
        cause = failure.cause
        if cause == "connect_timeout":
            message = (
                f"{where} could not be connected to within {self.timeout:g}s {tries}; is the "
                f"host reachable? {URL_HINT}, or raise --judge-timeout"
            )
        elif cause == "timeout":
            message = (
                f"{where} gave no answer within {self.timeout:g}s (timeout) {tries}, the limit "
                "of a whole attempt (connecting, headers and body); the model may be slow or "
                "overloaded: raise --judge-timeout or "
                "lower the concurrency"
            )
        elif cause == "refused":
            message = f"{where} refused the connection {tries}; is the server running? {URL_HINT}"
        elif cause == "unreachable":
            message = f"{where} could not be reached {tries} ({detail}); {URL_HINT}"
        elif cause == "too_large":
            message = (
                f"{where} sent an answer larger than the limit ({detail}); is it an "
                f"OpenAI-compatible chat-completions endpoint? {URL_HINT}"
            )
        elif cause == "config":
            message = f"{where} could not be called ({detail}); {URL_HINT}"
        else:
            message = (
                f"{where} closed or reset the connection before answering {tries} "
                f"({detail or 'no detail'}); the server may have crashed or be overloaded: "
                "check its logs"
            )
        return self.error(message, cause=cause, retries=retries)

    def _status_error(
        self, reply: Reply, attempts: int, *, request: str, model: str | None, retries: int
    ) -> JudgeUnavailableError:
        status = reply.status
        said = _said(reply)
        where = f"judge at {self.display_url} answered HTTP {status} {phrase(status)}"
        said_part = f" ({excerpt(said)})" if said.strip() else ""
        if status in (401, 403):
            message = f"{where}{said_part}: {KEY_HINT}"
        elif status == 404:
            model_part = f" and --judge-model (asked for {model!r})" if model else ""
            message = (
                f"{where} for {request}{said_part}: check "
                f"--judge-url (should end in /v1){model_part}"
            )
        elif 300 <= status < 400:
            location = reply.headers.get("location", "?")
            message = (
                f"{where} redirecting to {excerpt(location, 200)}: use the final URL as "
                f"--judge-url / RUBRIC_JUDGE_BASE_URL"
            )
        elif rejects_format(status, said):
            message = (
                f"{where}{said_part}: the server refused the structured-output request "
                "(response_format); --judge-structured-output=auto finds a form it accepts, "
                "or use off"
            )
        elif status in RETRY_STATUSES:
            advice = (
                "the server is rate limiting: lower the concurrency or try later"
                if status == 429
                else "the server is failing or overloaded: check its logs or try later"
            )
            message = f"{where} after {attempts} attempts{said_part}; {advice}"
        else:
            message = (
                f"{where}{said_part}: the request was rejected; check --judge-model and the "
                "judge's sampling options"
            )
        error = self.error(message, cause="status", status=status, retries=retries)
        error.said = said
        return error

    def completion(
        self, data: dict[str, Any], *, retries: int, model: str, latency_s: float
    ) -> Completion:
        """The first choice of a chat-completions body; a malformed one is an error."""
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise self.bad_body("a body without `choices`", data, retries=retries)
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict) or "content" not in message:
            raise self.bad_body("a choice without `message.content`", data, retries=retries)
        text = content_text(message["content"])
        if text is None:
            raise self.bad_body("a `message.content` that is not text", data, retries=retries)
        finish = choice.get("finish_reason")
        answered_by = data.get("model")
        return Completion(
            text=text,
            usage=usage_of(data.get("usage")),
            finish_reason=finish if isinstance(finish, str) else None,
            latency_s=latency_s,
            retries=retries,
            model=answered_by if isinstance(answered_by, str) and answered_by else model,
        )

    def model_ids(self, data: dict[str, Any]) -> list[str]:
        """The ids of a `GET /models` body."""
        items = data.get("data")
        if not isinstance(items, list):
            raise self.bad_body("a model list without `data`", data)
        return [
            item["id"]
            for item in items
            if isinstance(item, dict) and isinstance(item.get("id"), str)
        ]


def _said(reply: Reply) -> str:
    """The server's error message in a reply: its JSON error's text, or the body's start."""
    try:
        return server_message(read_json(reply.body)) or ""
    except (ValueError, RecursionError):
        return reply.body[:400].decode("utf-8", "replace")


def _refuses_format(reply: Reply) -> bool:
    """A 500 that names the structured-output request (llama-cpp-python's answer to a
    `response_format` it does not know) is a refusal, not a failure worth retrying."""
    return reply.status == 500 and rejects_format(500, _said(reply))
