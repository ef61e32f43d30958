"""Several judge endpoints serving the same model, used as one, from either client.

Each request goes to the endpoint with the fewest requests in flight (ties go to the one
used least recently), so a slow replica receives less work. An endpoint whose failure
says "this replica is unwell" (`JudgeUnavailableError.failover`: it could not be reached,
timed out, reset the connection, or answered 408/429/5xx other than 501 after its own
retries) is set aside for a cool-down period and the request moves on to the next one.
A request the server refuses (any other 4xx, or 501) would be refused by every replica
alike, so it fails at once and marks nothing down: the judge's structured-output fallback
then sees the same error one endpoint would give. The decision is made on the error's
type and status, never on its message.

`EndpointSet` holds the choice and the bookkeeping; `MultiClient` (blocking) and
`AsyncMultiClient` (asyncio) are the two loops over it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .client import ChatClient
from .errors import JudgeUnavailableError
from .http_policy import Completion

if TYPE_CHECKING:  # the asyncio client (aiohttp) is imported only by the batch path
    from .aio import AsyncChatClient

DEFAULT_COOL_DOWN = 30.0


class _HasURL(Protocol):
    base_url: str


ClientT = TypeVar("ClientT", bound=_HasURL)


@dataclass
class Endpoint(Generic[ClientT]):
    client: ClientT
    in_flight: int = 0
    last_used: float = 0.0
    down_until: float = 0.0
    failures: int = 0
    served: int = 0


def split_urls(value: str | Sequence[str]) -> list[str]:
    """`"http://a/v1,http://b/v1"` or a list, as a list of non-empty URLs."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    urls = [p.strip() for p in parts if p and p.strip()]
    if not urls:
        raise ValueError("no judge endpoint given")
    return urls


@dataclass
class EndpointSet(Generic[ClientT]):
    """The replicas, which to try first, and what each outcome does to them.

    Thread-safe; every method is quick and never waits on the network.
    """

    clients: Sequence[ClientT]
    cool_down: float = DEFAULT_COOL_DOWN
    endpoints: list[Endpoint[ClientT]] = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.clients:
            raise ValueError("a multi-endpoint client needs at least one endpoint")
        self.endpoints = [Endpoint(client) for client in self.clients]

    @property
    def base_url(self) -> str:
        return ",".join(e.client.base_url for e in self.endpoints)

    def order(self) -> list[Endpoint[ClientT]]:
        """Endpoints to try, best first: up before down, then fewest in flight."""
        now = time.monotonic()
        with self._lock:
            return sorted(
                self.endpoints, key=lambda e: (e.down_until > now, e.in_flight, e.last_used)
            )

    def start(self, endpoint: Endpoint[ClientT]) -> None:
        with self._lock:
            endpoint.in_flight += 1
            endpoint.last_used = time.monotonic()

    def succeeded(self, endpoint: Endpoint[ClientT]) -> None:
        with self._lock:
            endpoint.in_flight -= 1
            endpoint.served += 1
            endpoint.down_until = 0.0

    def failed(self, endpoint: Endpoint[ClientT], error: BaseException) -> bool:
        """Record a failure; True when the request should move on to another endpoint."""
        with self._lock:
            endpoint.in_flight -= 1
            if not (isinstance(error, JudgeUnavailableError) and error.failover):
                return False
            endpoint.failures += 1
            endpoint.down_until = time.monotonic() + self.cool_down
            return True

    def served(self) -> dict[str, int]:
        """Requests answered per endpoint (for reports and tests)."""
        with self._lock:
            return {e.client.base_url: e.served for e in self.endpoints}

    @staticmethod
    def exhausted(errors: list[JudgeUnavailableError]) -> JudgeUnavailableError:
        """The error when every endpoint failed over: the last one's type and status."""
        error = JudgeUnavailableError(
            f"every judge endpoint failed ({len(errors)}): " + " | ".join(str(e) for e in errors),
            retries=sum(e.retries for e in errors),
        )
        error.cause, error.status = errors[-1].cause, errors[-1].status
        return error


class MultiClient:
    """Blocking chat completions over several endpoints, with failover."""

    def __init__(self, clients: Sequence[ChatClient], *, cool_down: float = DEFAULT_COOL_DOWN):
        self.endpoints: EndpointSet[ChatClient] = EndpointSet(clients, cool_down)

    @classmethod
    def from_urls(cls, urls: Sequence[str], **client_options: Any) -> MultiClient:
        return cls([ChatClient(url, **client_options) for url in urls])

    @property
    def base_url(self) -> str:
        return self.endpoints.base_url

    @property
    def clients(self) -> list[ChatClient]:
        return [e.client for e in self.endpoints.endpoints]

    def __repr__(self) -> str:
        return f"MultiClient({self.base_url!r})"

    def served(self) -> dict[str, int]:
        return self.endpoints.served()

    def complete(self, messages: list[dict[str, Any]], **options: Any) -> Completion:
        errors: list[JudgeUnavailableError] = []
        for endpoint in self.endpoints.order():
            self.endpoints.start(endpoint)
            try:
                completion = endpoint.client.complete(messages, **options)
            except BaseException as error:
                if not self.endpoints.failed(endpoint, error):
                    raise
                assert isinstance(error, JudgeUnavailableError)
                errors.append(error)
                continue
            self.endpoints.succeeded(endpoint)
            return completion
        raise self.endpoints.exhausted(errors)

    def list_models(self) -> list[str]:
        errors: list[JudgeUnavailableError] = []
        for endpoint in self.endpoints.order():
            try:
                return endpoint.client.list_models()
            except JudgeUnavailableError as error:
                errors.append(error)
        raise self.endpoints.exhausted(errors)

    def close(self) -> None:
        for client in self.clients:
            client.close()


class AsyncMultiClient:
    """Asyncio chat completions over several endpoints, with the same failover rules."""

    def __init__(self, clients: Sequence[AsyncChatClient], *, cool_down: float = DEFAULT_COOL_DOWN):
        self.endpoints: EndpointSet[AsyncChatClient] = EndpointSet(clients, cool_down)

    @property
    def base_url(self) -> str:
        return self.endpoints.base_url

    def served(self) -> dict[str, int]:
        return self.endpoints.served()

    async def complete(self, messages: list[dict[str, Any]], **options: Any) -> Completion:
        errors: list[JudgeUnavailableError] = []
        for endpoint in self.endpoints.order():
            self.endpoints.start(endpoint)
            try:
                completion = await endpoint.client.complete(messages, **options)
            except BaseException as error:
                if not self.endpoints.failed(endpoint, error):
                    raise
                assert isinstance(error, JudgeUnavailableError)
                errors.append(error)
                continue
            self.endpoints.succeeded(endpoint)
            return completion
        raise self.endpoints.exhausted(errors)

    async def list_models(self) -> list[str]:
        errors: list[JudgeUnavailableError] = []
        for endpoint in self.endpoints.order():
            try:
                return await endpoint.client.list_models()
            except JudgeUnavailableError as error:
                errors.append(error)
        raise self.endpoints.exhausted(errors)

    async def aclose(self) -> None:
        for endpoint in self.endpoints.endpoints:
            await endpoint.client.aclose()
