"""The asyncio client for OpenAI-compatible chat completions, for many requests in flight.

A batch comparison keeps 32 to 128 judge requests in flight for minutes. This client runs
them on `aiohttp.ClientSession` (one connection pool of `max_connections`), which keeps up
with that load on a small machine where one `httpx.AsyncClient` pool does not (see
docs/performance.md). Everything that is not moving bytes (the request body, retries,
`Retry-After`, the body-size cap after decompression, the reading of a completion and the
wording of every failure) is `http_policy`'s, shared with the blocking `ChatClient`, so
both clients behave alike; one conformance test module runs the same cases over both.

The timeout bounds a whole attempt (connecting, sending, the headers and the whole body).
Credentials in the URL are sent as HTTP Basic auth, an API key as a bearer token; proxies
from the environment are used for a remote judge, never for one on this machine.
"""

from __future__ import annotations

import asyncio
import errno
import math
import time
from typing import Any

import aiohttp

from .client import environment_proxy
from .credentials import Secret
from .http_policy import (
    DEFAULT_MAX_BODY_BYTES,
    AttemptFailed,
    BodyDecoder,
    Completion,
    Reply,
    Retry,
    chat_body,
)
from .targets import target

__all__ = ["AsyncChatClient"]


class AsyncChatClient:
    """A retrying asyncio client for `POST {base_url}/chat/completions`.

    Use it from one event loop; `max_connections` bounds the open connections (a request
    beyond that waits for a free one). Close it with `await client.aclose()`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | Secret | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        max_connections: int = 128,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        retry_after_max: float = 60.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
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
        self.base_url = self._target.url
        self.policy = self._target.policy
        self.max_connections = max_connections
        self.max_body_bytes = max_body_bytes
        self._proxy = environment_proxy(self.base_url)
        self._session: aiohttp.ClientSession | None = None

    @property
    def timeout(self) -> float:
        return self.policy.timeout

    @property
    def max_retries(self) -> int:
        return self.policy.max_retries

    def __repr__(self) -> str:
        key = "'***'" if self._target.has_key else "None"
        return (
            f"AsyncChatClient(base_url={self.base_url!r}, api_key={key}, "
            f"timeout={self.timeout:g}, max_retries={self.max_retries}, "
            f"max_connections={self.max_connections})"
        )

    async def __aenter__(self) -> AsyncChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections. Idempotent."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _open(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            headers = self._target.headers()
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0),
                headers=headers,
                auto_decompress=False,  # decoded here, under the size cap
                # One deadline for the whole attempt, body included (aiohttp's timer covers
                # reading it), not rounded up to a whole second as it is by default.
                timeout=aiohttp.ClientTimeout(
                    total=self.policy.timeout,
                    sock_connect=self.policy.timeout,
                    ceil_threshold=math.inf,
                ),
                trust_env=False,  # `environment_proxy` chose the proxy
                cookie_jar=aiohttp.DummyCookieJar(),  # a judge API sets no cookies worth keeping
                skip_auto_headers=("Accept-Encoding",),  # sent as identity above
            )
            self._session = session
        return session

    async def complete(
        self, messages: list[dict[str, Any]], *, model: str, **sampling: Any
    ) -> Completion:
        """One chat completion, with retries; the same contract as `ChatClient.complete`."""
        payload = chat_body(messages, model=model, **sampling)
        started = time.perf_counter()
        data, retries = await self._request("POST", "/chat/completions", payload, model)
        return self.policy.completion(
            data, retries=retries, model=model, latency_s=time.perf_counter() - started
        )

    async def list_models(self) -> list[str]:
        """The model ids the server offers (`GET {base_url}/models`)."""
        data, _ = await self._request("GET", "/models", None, None)
        return self.policy.model_ids(data)

    async def _request(
        self, method: str, path: str, payload: bytes | None, model: str | None
    ) -> tuple[dict[str, Any], int]:
        url = self.base_url + path
        for attempt in range(self.policy.attempts):
            outcome: Reply | AttemptFailed
            try:
                outcome = await self._attempt(method, url, payload)
            except AttemptFailed as failed:
                outcome = failed
            step = self.policy.judge(attempt, outcome, request=f"{method} {url}", model=model)
            if not isinstance(step, Retry):
                return step, attempt
            await asyncio.sleep(step.delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, method: str, url: str, payload: bytes | None) -> Reply:
        """One exchange, bounded as a whole by the timeout."""
        try:
            return await self._exchange(method, url, payload)
        except AttemptFailed:
            raise
        except (TimeoutError, asyncio.TimeoutError):
            raise AttemptFailed("timeout", "deadline") from None
        except aiohttp.ConnectionTimeoutError as exc:
            raise AttemptFailed("connect_timeout", str(exc)) from None
        except aiohttp.ClientConnectorError as exc:
            refused = exc.os_error.errno == errno.ECONNREFUSED
            raise AttemptFailed("refused" if refused else "unreachable", str(exc)) from None
        except aiohttp.InvalidURL as exc:
            raise AttemptFailed("config", f"invalid URL {exc}") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise AttemptFailed("reset", str(exc) or type(exc).__name__) from None

    async def _exchange(self, method: str, url: str, payload: bytes | None) -> Reply:
        session = self._open()
        if self._proxy is None:
            async with session.request(method, url, data=payload) as response:
                return await self._read(response)
        async with session.request(method, url, data=payload, proxy=self._proxy) as response:
            return await self._read(response)

    async def _read(self, response: aiohttp.ClientResponse) -> Reply:
        encoding = response.headers.get("Content-Encoding")
        length = response.content_length
        limit = self.max_body_bytes
        if not encoding and length is not None:
            if length > limit:
                raise AttemptFailed("too_large", f"a body of {length:,} bytes, over {limit:,}")
            body = await response.read()
        else:
            decoder = BodyDecoder(encoding, limit)
            async for chunk in response.content.iter_any():
                decoder.feed(chunk)
            body = decoder.finish()
        # aiohttp's headers look names up case-insensitively, as `Reply` requires.
        return Reply(response.status, response.headers, body)
