"""The blocking client for OpenAI-compatible chat-completions servers (vLLM, Ollama, ...).

One pooled `httpx.Client`, safe to share between the threads that run judge calls. What
it shares with the asyncio client (retry policy, `Retry-After`, body decoding with a size
cap after decompression, error wording) lives in `http_policy`; this module only moves
bytes.

`--judge-timeout` bounds a whole attempt: connecting, sending, the response headers and
the whole body. httpx's own timeouts bound each socket operation, so a server that
trickles one byte a second never trips them; the connections here are opened through a
small httpcore network backend whose every operation waits at most until the attempt's
deadline. Proxies from the environment are honoured for remote judges (never for a judge
on this machine), through the same backend.

The API key is sent as a bearer token and nowhere else: it is held as a `Secret`, masked
from every error message, and never logged.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from .credentials import Secret, is_loopback, redact_url
from .http_policy import (
    DEFAULT_MAX_BODY_BYTES,
    RETRY_STATUSES,
    AttemptFailed,
    BodyDecoder,
    Completion,
    Reply,
    Retry,
    chat_body,
    normalize_base_url,
)
from .targets import target

__all__ = ["RETRY_STATUSES", "ChatClient", "Completion", "environment_proxy", "normalize_base_url"]

log = logging.getLogger(__name__)


class _Deadline(threading.local):
    """The deadline of the attempt the current thread is making (monotonic seconds)."""

    at: float | None = None

    def bound(self, timeout: float | None, error: type[Exception]) -> float | None:
        if self.at is None:
            return timeout
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise error("the attempt's deadline passed")
        return remaining if timeout is None else min(timeout, remaining)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = self._deadline.bound(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, bounded), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's own socket backend, every operation bounded by the attempt's deadline."""

    def __init__(self, deadline: _Deadline) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        bounded = self._deadline.bound(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
        return _Stream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        bounded = self._deadline.bound(timeout, httpcore.ConnectTimeout)
        return _Stream(
            self._inner.connect_unix_socket(path, bounded, socket_options), self._deadline
        )

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _CoreBody(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        stream = self._response.stream
        assert isinstance(stream, Iterable)
        yield from stream

    def close(self) -> None:
        self._response.close()


class _DeadlineTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool that uses the deadline-bounded backend."""

    def __init__(self, *, max_connections: int, proxy: str | None, deadline: _Deadline) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            proxy=httpcore.Proxy(proxy) if proxy else None,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            network_backend=_Backend(deadline),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        response = self._pool.handle_request(core)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_CoreBody(response),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


def environment_proxy(url: str) -> str | None:
    """The proxy the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) names for `url`.

    A judge on this machine is always reached directly. A malformed proxy setting is a
    ValueError naming the variable (without its credentials), not a failure at the first
    request.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if is_loopback(host) or urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    try:
        _ = proxy_parts.port
        valid = proxy_parts.scheme in ("http", "https") and bool(proxy_parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(
            f"the proxy set in the environment for {parts.scheme} URLs "
            f"({redact_url(proxy)!r}) is not an http(s) URL with a host and port; fix or "
            f"unset {parts.scheme.upper()}_PROXY / ALL_PROXY, or list the judge's host in NO_PROXY"
        )
    return proxy_parts.geturl()


def _classify(exc: Exception) -> AttemptFailed:
    """An httpx or httpcore exception as the typed failure of one attempt."""
    name = type(exc).__name__
    detail = str(exc) or name
    if name == "ConnectTimeout":
        return AttemptFailed("connect_timeout", detail)
    if name in ("ReadTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException"):
        return AttemptFailed("timeout", detail)
    if name == "ConnectError":
        refused = "refused" in detail.lower() or "errno 111" in detail.lower()
        return AttemptFailed("refused" if refused else "unreachable", detail)
    if name in ("ProxyError", "UnsupportedProtocol", "LocalProtocolError", "InvalidURL"):
        return AttemptFailed("config", f"{name}: {detail}")
    return AttemptFailed("reset", detail)


_CAUGHT = (
    httpx.HTTPError,
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
    OSError,
)


class ChatClient:
    """A pooled, retrying client for `POST {base_url}/chat/completions`.

    One instance is meant to be shared: `complete` may be called from many threads at once.
    `sleep` is injectable so that tests of the retry policy run instantly; `transport`
    replaces the network (an `httpx.MockTransport` in tests; it is not deadline-bounded).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | Secret | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        retry_after_max: float = 60.0,
        max_connections: int = 16,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections!r}")
        self._target = target(
            base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
        )
        #: The endpoint without any user:password part; credentials live only in `_http`.
        self.base_url = self._target.url
        self.policy = self._target.policy
        self.max_body_bytes = max_body_bytes
        self._sleep = sleep
        self._deadline = _Deadline()
        if transport is None:
            transport = _DeadlineTransport(
                max_connections=max_connections,
                proxy=environment_proxy(self.base_url),
                deadline=self._deadline,
            )
        self._http = httpx.Client(
            headers=self._target.headers(),
            # Each operation is bounded here too; the deadline bounds the whole attempt.
            timeout=httpx.Timeout(self.policy.timeout, pool=None),
            transport=transport,
            follow_redirects=False,
            trust_env=False,  # the transport above chose the proxy
        )

    @property
    def timeout(self) -> float:
        return self.policy.timeout

    @property
    def max_retries(self) -> int:
        return self.policy.max_retries

    def __repr__(self) -> str:
        key = "'***'" if self._target.has_key else "None"
        return (
            f"ChatClient(base_url={self.base_url!r}, api_key={key}, "
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
        self, messages: list[dict[str, Any]], *, model: str, **sampling: Any
    ) -> Completion:
        """Send one chat completion request and return the first choice's text.

        `sampling`: temperature, max_tokens, top_p, seed, response_format (see
        `http_policy.chat_body`). An empty or null `content` is returned as "" (the
        caller's parser asks for a repair); a body that is not a chat completion raises
        `JudgeUnavailableError`.
        """
        payload = chat_body(messages, model=model, **sampling)
        started = time.perf_counter()
        data, retries = self._request("POST", "/chat/completions", payload, model=model)
        return self.policy.completion(
            data, retries=retries, model=model, latency_s=time.perf_counter() - started
        )

    def list_models(self) -> list[str]:
        """The model ids the server offers (`GET {base_url}/models`)."""
        data, _ = self._request("GET", "/models", None, model=None)
        return self.policy.model_ids(data)

    # -- internals ---------------------------------------------------------------------

    def _request(
        self, method: str, path: str, payload: bytes | None, *, model: str | None
    ) -> tuple[dict[str, Any], int]:
        """One logical request with retries: the decoded JSON object and the retry count."""
        url = self.base_url + path
        for attempt in range(self.policy.attempts):
            outcome: Reply | AttemptFailed
            try:
                outcome = self._attempt(method, url, payload)
            except AttemptFailed as failed:
                outcome = failed
            step = self.policy.judge(
                attempt, outcome, request=f"{method} {self.base_url}{path}", model=model
            )
            if not isinstance(step, Retry):
                return step, attempt
            log.info(
                "judge at %s: %s, retrying in %.2fs (attempt %d of %d)",
                self.base_url,
                step.cause,
                step.delay,
                attempt + 2,
                self.policy.attempts,
            )
            self._sleep(step.delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, method: str, url: str, payload: bytes | None) -> Reply:
        """One exchange, bounded as a whole by the timeout."""
        self._deadline.at = time.monotonic() + self.policy.timeout
        try:
            with self._http.stream(method, url, content=payload) as response:
                length = response.headers.get("content-length", "")
                encoding = response.headers.get("content-encoding")
                if length.isdigit() and not encoding and int(length) > self.max_body_bytes:
                    raise AttemptFailed(
                        "too_large",
                        f"a body of {int(length):,} bytes, over {self.max_body_bytes:,}",
                    )
                decoder = BodyDecoder(encoding, self.max_body_bytes)
                if response.is_stream_consumed:  # a test transport that gave it read
                    decoder.feed(response.content)
                for chunk in () if response.is_stream_consumed else response.iter_raw():
                    decoder.feed(chunk)
                    self._deadline.bound(None, httpcore.ReadTimeout)
                body = decoder.finish()
                # httpx's headers look names up case-insensitively, as `Reply` requires.
                return Reply(response.status_code, response.headers, body)
        except AttemptFailed:
            raise
        except _CAUGHT as exc:
            raise _classify(exc) from None
        finally:
            self._deadline.at = None
