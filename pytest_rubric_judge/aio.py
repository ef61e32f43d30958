"""An asyncio client for OpenAI-compatible chat completions, built for many requests in flight.

`ChatClient` (httpx, sync) suits a test run of a few dozen judge calls. A batch comparison
keeps 32 to 128 requests in flight for minutes, and there httpx's pools become the
bottleneck on a small machine: one `AsyncClient` with 64-128 pooled connections falls to
a fraction of the server's rate, and a thread pool over `httpx.Client` collapses at 128
threads. This client speaks HTTP/1.1 over asyncio streams directly: one keep-alive
connection per request in flight, requests written in one buffer, responses read by
`Content-Length` or chunked encoding, so the per-request CPU cost stays near the cost of
the JSON encoding.

It behaves like `ChatClient` where it matters: transient failures (refused or reset
connections, timeouts, HTTP 408/429/5xx) are retried with jittered exponential backoff, a
`Retry-After` on 429/503 is believed within a cap, and every failure becomes a one-line
`JudgeUnavailableError` that never contains the API key. It does not follow redirects and
does not use proxies; `batch.compare_many` falls back to the sync client when a proxy is
configured for a remote judge.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from .client import (
    _URL_HINT,
    RETRY_STATUSES,
    Completion,
    _excerpt,
    _one_line,
    _phrase,
    _redact_userinfo,
    _retry_after,
    _secret_forms,
    _server_message,
    _with_retries,
    _Wording,
    normalize_base_url,
)
from .errors import JudgeUnavailableError

T = TypeVar("T")

__all__ = ["AsyncChatClient"]

#: Largest response body accepted, so a runaway server cannot exhaust memory.
MAX_BODY_BYTES = 64 * 1024 * 1024
#: Largest header block accepted.
MAX_HEADER_BYTES = 64 * 1024


class _TransportError(Exception):
    """A connection failed before a complete response arrived (worth another attempt)."""

    def __init__(self, message: str, *, timeout: bool = False, connect: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.connect = connect


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # pragma: no cover - closing a broken transport
            pass


class AsyncChatClient(_Wording):
    """A retrying asyncio client for `POST {base_url}/chat/completions`.

    Use it from one event loop; `max_connections` bounds the open connections (a request
    beyond that waits for a free one). Close it with `await client.aclose()`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        max_connections: int = 128,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        retry_after_max: float = 60.0,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections!r}")
        self.base_url = normalize_base_url(base_url)
        parts = urlsplit(self.base_url)
        self._host = parts.hostname or ""
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._path = parts.path
        default_port = (self._tls and self._port == 443) or (not self._tls and self._port == 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.max_connections = max_connections
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self._api_key = api_key or None
        self._display_url = _redact_userinfo(self.base_url)
        self._secrets = _secret_forms(self._api_key, "", "")
        self._random = random.Random()
        self._idle: deque[_Connection] = deque()
        self._slots: asyncio.Semaphore | None = None
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self._tls else None
        self._closed = False
        #: JSON text of recently sent response formats, by identity (each rubric's schema
        #: is one object, sent with every pass on its prompt).
        self._format_json: dict[int, tuple[object, str]] = {}
        head = [
            f"POST {self._path}/chat/completions HTTP/1.1",
            f"Host: {self._host_header}",
            "Accept: application/json",
            "Content-Type: application/json",
            "User-Agent: pytest-rubric-judge",
        ]
        if self._api_key is not None:
            head.append(f"Authorization: Bearer {self._api_key}")
        self._head = ("\r\n".join(head) + "\r\nContent-Length: ").encode("latin-1")

    def __repr__(self) -> str:
        key = "'***'" if self._api_key is not None else "None"
        return (
            f"AsyncChatClient(base_url={self._display_url!r}, api_key={key}, "
            f"timeout={self.timeout:g}, max_retries={self.max_retries}, "
            f"max_connections={self.max_connections})"
        )

    async def __aenter__(self) -> AsyncChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every idle connection. Idempotent."""
        self._closed = True
        while self._idle:
            connection = self._idle.popleft()
            connection.close()

    async def complete(
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
        """One chat completion, with retries; the same contract as `ChatClient.complete`."""
        body: dict[str, object] = {"model": model, "messages": messages, "temperature": temperature}
        optional: dict[str, object | None] = {
            "max_tokens": max_tokens,
            "top_p": top_p,
            "seed": seed,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        text = json.dumps(body, ensure_ascii=False)
        if response_format is not None:
            text = f'{text[:-1]}, "response_format": {self._format_text(response_format)}}}'
        payload = text.encode("utf-8")
        loop = asyncio.get_running_loop()
        started = loop.time()
        data, retries = await self._request(payload, model)
        return self._completion(data, retries, model, loop.time() - started)

    def _format_text(self, response_format: dict[str, object]) -> str:
        known = self._format_json.get(id(response_format))
        if known is not None and known[0] is response_format:
            return known[1]
        if len(self._format_json) >= 256:
            self._format_json.clear()
        text = json.dumps(response_format, ensure_ascii=False)
        self._format_json[id(response_format)] = (response_format, text)
        return text

    # -- requests ----------------------------------------------------------------------

    async def _request(self, payload: bytes, model: str) -> tuple[dict[str, Any], int]:
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self._exchange(payload)
            except _TransportError as exc:
                if last:
                    raise _with_retries(self._transport_error(exc, attempts), attempt) from None
                delay = self._backoff(attempt)
            else:
                if 200 <= response.status < 300:
                    try:
                        return self._decode(response), attempt
                    except JudgeUnavailableError as error:
                        raise _with_retries(error, attempt) from None
                if response.status not in RETRY_STATUSES or last:
                    failure = self._status_error(response, attempt + 1, model)
                    failure.status = response.status
                    raise _with_retries(failure, attempt)
                hinted = (
                    _retry_after(httpx.Headers(response.headers))
                    if response.status in (429, 503)
                    else None
                )
                delay = (
                    min(hinted, self.retry_after_max)
                    if hinted is not None
                    else self._backoff(attempt)
                )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, payload: bytes) -> _Response:
        """Send one request on a pooled connection and read the whole response."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_connections)
        request = self._head + str(len(payload)).encode() + b"\r\n\r\n" + payload
        async with self._slots:
            # A kept-alive connection the server has closed meanwhile fails before any
            # byte of the answer; that is retried at once on a fresh connection.
            while True:
                reused = bool(self._idle)
                connection = self._idle.pop() if reused else await self._connect()
                try:
                    response = await _within(self._roundtrip(connection, request), self.timeout)
                except asyncio.TimeoutError:
                    connection.close()
                    raise _TransportError("timeout", timeout=True) from None
                except _StaleConnection:
                    connection.close()
                    if reused:
                        continue
                    raise _TransportError("the server closed the connection") from None
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    connection.close()
                    raise _TransportError(_one_line(str(exc)) or type(exc).__name__) from None
                except BaseException:
                    connection.close()
                    raise
                if response.keep_alive and not self._closed:
                    self._idle.append(connection)
                else:
                    connection.close()
                return response

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                    limit=MAX_HEADER_BYTES,
                ),
                self.timeout,
            )
        except asyncio.TimeoutError:
            raise _TransportError("connect timeout", timeout=True, connect=True) from None
        except ConnectionRefusedError:
            raise _TransportError("connection refused", connect=True) from None
        except OSError as exc:
            refused = "111" in str(exc) or "refused" in str(exc).lower()
            detail = "connection refused" if refused else _one_line(str(exc))
            raise _TransportError(detail, connect=True) from None
        return _Connection(reader, writer)

    async def _roundtrip(self, connection: _Connection, request: bytes) -> _Response:
        writer, reader = connection.writer, connection.reader
        writer.write(request)
        await writer.drain()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _StaleConnection from None
            raise
        except ConnectionResetError:
            raise _StaleConnection from None
        except asyncio.LimitOverrunError:
            raise ValueError("response headers too large") from None
        lines = head.decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/"):
            raise ValueError(f"not an HTTP response: {_excerpt(lines[0], 80)!r}")
        status = int(status_line[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        connection_header = headers.get("connection", "").lower()
        keep_alive = (
            "close" not in connection_header
            if status_line[0] != "HTTP/1.0"
            else "keep-alive" in connection_header
        )
        if headers.get("transfer-encoding", "").lower().endswith("chunked"):
            body = await _read_chunked(reader)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length > MAX_BODY_BYTES:
                raise ValueError(f"response body of {length} bytes is too large")
            body = await reader.readexactly(length)
        else:
            body = await reader.read(MAX_BODY_BYTES)
            keep_alive = False
        return _Response(status, headers, body, keep_alive)

    # -- errors --------------------------------------------------------------------------

    def _decode(self, response: _Response) -> dict[str, Any]:
        try:
            data = json.loads(response.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            text = response.body[:200].decode("utf-8", "replace")
            raise self._not_json(response.status, text) from None
        if not isinstance(data, dict):
            raise self._bad_body("a JSON body that is not an object", data)
        return data

    def _transport_error(self, exc: _TransportError, attempts: int) -> JudgeUnavailableError:
        where = f"judge at {self._display_url}"
        tries = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
        detail = str(exc)
        if exc.timeout and exc.connect:
            message = (
                f"{where} could not be connected to within {self.timeout:g}s {tries}; is the "
                f"host reachable? {_URL_HINT}, or raise --judge-timeout"
            )
        elif exc.timeout:
            message = (
                f"{where} gave no answer within {self.timeout:g}s (timeout) {tries}; the model "
                "may be slow or overloaded: raise --judge-timeout or lower --concurrency"
            )
        elif exc.connect and "refused" in detail.lower():
            message = f"{where} refused the connection {tries}; is the server running? {_URL_HINT}"
        elif exc.connect:
            message = f"{where} could not be reached {tries} ({detail}); {_URL_HINT}"
        else:
            message = (
                f"{where} closed or reset the connection before answering {tries} ({detail}); "
                "the server may have crashed or be overloaded: check its logs"
            )
        return self._error(message)

    def _status_error(
        self, response: _Response, attempts: int, model: str
    ) -> JudgeUnavailableError:
        try:
            said = _server_message(json.loads(response.body)) or ""
        except (json.JSONDecodeError, UnicodeDecodeError):
            said = response.body[:400].decode("utf-8", "replace")
        return self._status_message(
            response.status,
            _phrase(httpx.Response(response.status)),
            said,
            attempts=attempts,
            request=f"POST {self._display_url}/chat/completions",
            model=model,
            location=response.headers.get("location", "?"),
        )


async def _within(work: Awaitable[T], seconds: float) -> T:
    """`work`, or asyncio.TimeoutError after `seconds`; without `wait_for`'s extra task
    per call where the running Python has `asyncio.timeout` (3.11+)."""
    if _TIMEOUT is None:
        return await asyncio.wait_for(work, seconds)
    async with _TIMEOUT(seconds):
        return await work


_TIMEOUT = getattr(asyncio, "timeout", None)


class _StaleConnection(Exception):
    """A reused connection was closed by the server before it answered."""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            # Trailers, if any, end with an empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY_BYTES:
            raise ValueError("chunked response body is too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
