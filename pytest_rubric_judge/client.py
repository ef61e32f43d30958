"""A small client for OpenAI-compatible chat-completions servers (vLLM, Ollama, OpenAI...).

It owns one pooled `httpx.Client`, safe to share between the threads that run judge calls
concurrently, and turns every way a call can fail into a `JudgeUnavailableError` whose
one-line message names the cause and the fix. Transient failures (refused or reset
connections, timeouts, HTTP 408/429/5xx) are retried with exponential backoff and full
jitter; a 429 or 503 that says when to come back (`Retry-After`) is believed, within a cap.

The API key is sent as a bearer token and nowhere else: it is redacted from every error
message, kept out of `repr`, and never logged.

This module knows nothing about pytest, so it works from the CLI and from a notebook.
"""

from __future__ import annotations

import base64
import email.utils
import http
import ipaddress
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from .errors import JudgeUnavailableError
from .models import Usage

__all__ = ["RETRY_STATUSES", "ChatClient", "Completion", "normalize_base_url"]

log = logging.getLogger(__name__)

#: HTTP statuses that mean "try again": timeout, rate limit, server errors and gateways.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: The most characters of a server's error message quoted in an exception.
EXCERPT_CHARS = 300

_URL_HINT = "Check --judge-url / RUBRIC_JUDGE_BASE_URL"
_KEY_HINT = "check RUBRIC_JUDGE_API_KEY / OPENAI_API_KEY"
#: Transport failures worth another attempt; others (bad scheme, proxy setup) never heal.
_RETRY_TRANSPORT: tuple[type[httpx.TransportError], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


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
            f"judge URL {_redact_userinfo(text)!r} is not an http(s) URL with a host; "
            "expected something like http://127.0.0.1:8000/v1"
        )
    if parts.query or parts.fragment:
        raise ValueError(
            f"judge URL {_redact_userinfo(text)!r} has a query or fragment; give the base "
            "URL only, e.g. https://api.example.com/v1"
        )
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"judge URL {_redact_userinfo(text)!r} has an invalid port") from exc
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _redact_userinfo(url: str) -> str:
    """`url` without any user:password part, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return f"{scheme}{sep}{netloc}{slash}{path}"


def _split_userinfo(url: str) -> tuple[str, str, str]:
    """`url` without its user:password part, and the (percent-decoded) user and password."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, "", ""
    host = parts.netloc.rsplit("@", 1)[1]
    plain = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return plain, unquote(parts.username or ""), unquote(parts.password or "")


def _secret_forms(api_key: str | None, username: str, password: str) -> tuple[str, ...]:
    """Every spelling of a credential that a server could echo back, longest first."""
    forms: set[str] = set()
    if api_key:
        forms.add(api_key)
    if password:
        forms.update({password, quote(password, safe="")})
    if username or password:
        forms.add(base64.b64encode(f"{username}:{password}".encode()).decode())
    # Very short passwords would blank out ordinary words; they are still never sent back
    # by this module, which only quotes the server.
    return tuple(sorted((f for f in forms if len(f) >= 4), key=len, reverse=True))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Wording:
    """Backoff and error wording shared by the sync and the async client.

    A subclass sets `_display_url` (no credentials), `_secrets` (texts to mask),
    `backoff_base`, `backoff_max` and `_random`.
    """

    _display_url: str
    _secrets: tuple[str, ...]
    backoff_base: float
    backoff_max: float
    _random: random.Random

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(backoff_max, backoff_base * 2**attempt)]."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0**attempt)
        return self._random.uniform(0.0, ceiling)

    def _not_json(self, status: int, text: str) -> JudgeUnavailableError:
        return self._error(
            f"judge at {self._display_url} answered HTTP {status} with a body that is not "
            f"JSON ({_excerpt(text, 80)!r}); is it an OpenAI-compatible endpoint? {_URL_HINT}"
        )

    def _bad_body(self, what: str, data: object) -> JudgeUnavailableError:
        detail = _server_message(data) if isinstance(data, dict) else None
        said = f" (it said: {detail})" if detail else ""
        return self._error(
            f"judge at {self._display_url} answered with {what}{said}; is it an "
            f"OpenAI-compatible chat-completions endpoint? {_URL_HINT}"
        )

    def _status_message(
        self,
        status: int,
        reason: str,
        said: str,
        *,
        attempts: int,
        request: str,
        model: str | None,
        location: str,
    ) -> JudgeUnavailableError:
        """The error for a final non-2xx answer, with the fix for its status."""
        where = f"judge at {self._display_url} answered HTTP {status} {reason}"
        said_part = f" ({_excerpt(said)})" if said.strip() else ""
        if status in (401, 403):
            message = f"{where}{said_part}: {_KEY_HINT}"
        elif status == 404:
            model_part = f" and --judge-model (asked for {model!r})" if model else ""
            message = (
                f"{where} for {request}{said_part}: check "
                f"--judge-url (should end in /v1){model_part}"
            )
        elif 300 <= status < 400:
            message = (
                f"{where} redirecting to {_excerpt(location, 200)}: use the final URL as "
                f"--judge-url / RUBRIC_JUDGE_BASE_URL"
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
        error = self._error(message)
        error.status = status
        return error

    def _completion(
        self, data: dict[str, Any], retries: int, model: str, latency_s: float
    ) -> Completion:
        """The first choice of a chat-completions body; a malformed one is an error."""
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _with_retries(self._bad_body("a body without `choices`", data), retries)
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict) or "content" not in message:
            raise _with_retries(self._bad_body("a choice without `message.content`", data), retries)
        text = _content_text(message["content"])
        if text is None:
            raise _with_retries(
                self._bad_body("a `message.content` that is not text", data), retries
            )
        finish = choice.get("finish_reason")
        answered_by = data.get("model")
        return Completion(
            text=text,
            usage=_usage(data.get("usage")),
            finish_reason=finish if isinstance(finish, str) else None,
            latency_s=latency_s,
            retries=retries,
            model=answered_by if isinstance(answered_by, str) and answered_by else model,
        )

    def _error(self, message: str) -> JudgeUnavailableError:
        """An error whose message is one printable line without any credential.

        A server may echo what it received (the key, the URL's password, the Basic token)
        or send terminal control characters; none of that reaches the message.
        """
        text = _printable(_one_line(message))
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return JudgeUnavailableError(text)


class ChatClient(_Wording):
    """A pooled, retrying client for `POST {base_url}/chat/completions`.

    One instance is meant to be shared: `complete` may be called from many threads at once.
    `sleep` is injectable so that tests of the retry policy run instantly.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        retry_after_max: float = 60.0,
        max_connections: int = 16,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections!r}")
        if backoff_base < 0 or backoff_max < 0 or retry_after_max < 0:
            raise ValueError("backoff_base, backoff_max and retry_after_max must be 0 or more")
        plain_url, username, password = _split_userinfo(normalize_base_url(base_url))
        #: The endpoint without any user:password part; credentials live only in `_http`.
        self.base_url = plain_url
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self._display_url = self.base_url
        self._api_key = api_key or None
        self._sleep = sleep
        self._random = random.Random()
        headers = {"Accept": "application/json"}
        auth: httpx.BasicAuth | None = None
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key}"
        elif username or password:
            # Credentials in the URL mean HTTP Basic auth, as curl reads them; an API key,
            # when given, is what authenticates instead.
            auth = httpx.BasicAuth(username, password)
        self._secrets = _secret_forms(self._api_key, username, password)
        self._http = httpx.Client(
            headers=headers,
            auth=auth,
            # connect/read/write as asked; waiting for a free pooled connection is not a
            # server failure, so the pool wait is unbounded.
            timeout=httpx.Timeout(self.timeout, pool=None),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            follow_redirects=False,
            # Proxy variables are for reaching the outside; a local judge is reached directly.
            trust_env=not _is_loopback(urlsplit(self.base_url).hostname or ""),
        )

    def __repr__(self) -> str:
        key = "'***'" if self._api_key is not None else "None"
        return (
            f"ChatClient(base_url={self._display_url!r}, api_key={key}, "
            f"timeout={self.timeout:g}, max_retries={self.max_retries})"
        )

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections. Idempotent."""
        self._http.close()

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        model: str,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        response_format: dict[str, object] | None = None,
    ) -> Completion:
        """Send one chat completion request and return the first choice's text.

        Optional sampling fields are sent only when given, since some servers reject
        fields they do not know. An empty or null `content` is returned as "" (the caller's
        parser asks for a repair); a body that is not a chat completion raises
        `JudgeUnavailableError`.
        """
        body: dict[str, object] = {
            "model": model,
            "messages": messages,
            "temperature": temperature,
        }
        optional: dict[str, object | None] = {
            "max_tokens": max_tokens,
            "top_p": top_p,
            "seed": seed,
            "response_format": response_format,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        started = time.perf_counter()
        data, retries = self._request("POST", "/chat/completions", body, model=model)
        return self._completion(data, retries, model, time.perf_counter() - started)

    def list_models(self) -> list[str]:
        """The model ids the server offers (`GET {base_url}/models`)."""
        data, _ = self._request("GET", "/models", None, model=None)
        items = data.get("data")
        if not isinstance(items, list):
            raise self._bad_body("a model list without `data`", data)
        return [item["id"] for item in items if isinstance(item, dict) and "id" in item]

    # -- internals ---------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: dict[str, object] | None, *, model: str | None
    ) -> tuple[dict[str, Any], int]:
        """One logical request with retries: the decoded JSON object and the retry count."""
        url = self.base_url + path
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._http.request(method, url, json=body)
            except _RETRY_TRANSPORT as exc:
                if last:
                    raise _with_retries(self._transport_error(exc, attempts), attempt) from exc
                delay = self._backoff(attempt)
                cause = type(exc).__name__
            except httpx.HTTPError as exc:
                raise _with_retries(self._transport_error(exc, attempt + 1), attempt) from exc
            else:
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        return self._decode(response), attempt
                    except JudgeUnavailableError as error:
                        raise _with_retries(error, attempt) from None
                if status not in RETRY_STATUSES or last:
                    raise _with_retries(
                        self._status_error(response, attempt + 1, method, path, model), attempt
                    )
                hinted = _retry_after(response.headers) if status in (429, 503) else None
                delay = (
                    min(hinted, self.retry_after_max)
                    if hinted is not None
                    else self._backoff(attempt)
                )
                cause = f"HTTP {status}"
            log.info(
                "judge at %s: %s, retrying in %.2fs (attempt %d of %d)",
                self._display_url,
                cause,
                delay,
                attempt + 2,
                attempts,
            )
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _decode(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise self._not_json(response.status_code, response.text) from None
        if not isinstance(data, dict):
            raise self._bad_body("a JSON body that is not an object", data)
        return data

    def _transport_error(self, exc: httpx.HTTPError, attempts: int) -> JudgeUnavailableError:
        where = f"judge at {self._display_url}"
        tries = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(exc, httpx.ConnectTimeout):
            message = (
                f"{where} could not be connected to within {self.timeout:g}s {tries}; is the "
                f"host reachable? {_URL_HINT}, or raise --judge-timeout"
            )
        elif isinstance(exc, httpx.TimeoutException):
            message = (
                f"{where} gave no answer within {self.timeout:g}s (timeout) {tries}; the model "
                "may be slow or overloaded: raise --judge-timeout or lower the concurrency"
            )
        elif isinstance(exc, httpx.ConnectError):
            if "refused" in str(exc).lower():
                message = (
                    f"{where} refused the connection {tries}; is the server running? {_URL_HINT}"
                )
            else:
                message = (
                    f"{where} could not be reached {tries} ({_one_line(str(exc))}); {_URL_HINT}"
                )
        elif isinstance(exc, (httpx.RemoteProtocolError, httpx.NetworkError)):
            message = (
                f"{where} closed or reset the connection before answering {tries} "
                f"({_one_line(str(exc)) or type(exc).__name__}); the server may have crashed "
                "or be overloaded: check its logs"
            )
        else:
            message = (
                f"{where} could not be called ({type(exc).__name__}: "
                f"{_one_line(str(exc))}); {_URL_HINT}"
            )
        return self._error(message)

    def _status_error(
        self,
        response: httpx.Response,
        attempts: int,
        method: str,
        path: str,
        model: str | None,
    ) -> JudgeUnavailableError:
        said = _server_message(_json_or_none(response)) or _excerpt(response.text)
        return self._status_message(
            response.status_code,
            _phrase(response),
            said,
            attempts=attempts,
            request=f"{method} {self._display_url}{path}",
            model=model,
            location=response.headers.get("location", "?"),
        )


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _content_text(content: object) -> str | None:
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


def _usage(raw: object) -> Usage:
    """Token counts from the `usage` object; anything missing or malformed counts as 0."""
    if not isinstance(raw, Mapping):
        return Usage()

    def count(key: str) -> int:
        value = raw.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    prompt, completion = count("prompt_tokens"), count("completion_tokens")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=count("total_tokens") or prompt + completion,
    )


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _server_message(data: object) -> str | None:
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


def _phrase(response: httpx.Response) -> str:
    try:
        return http.HTTPStatus(response.status_code).phrase
    except ValueError:
        return response.reason_phrase or "(unknown status)"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


_UNPRINTABLE_RE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _printable(text: str) -> str:
    """`text` with control and bidirectional-override characters shown as escapes."""
    return _UNPRINTABLE_RE.sub(lambda match: ascii(match.group())[1:-1], text)


def _with_retries(error: JudgeUnavailableError, retries: int) -> JudgeUnavailableError:
    """`error`, recording how many retries were spent before it."""
    error.retries = retries
    return error


def _excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    line = _one_line(text)
    return line if len(line) <= limit else line[: limit - 1] + "…"
