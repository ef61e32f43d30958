"""Several judge endpoints serving the same model, used as one.

Each request goes to the endpoint with the fewest requests in flight (ties go to the one
used least recently), so a slow replica receives less work. An endpoint that cannot be
reached, or keeps failing after its own retries, is set aside for a cool-down period and
the request moves on to the next one; only when every endpoint has failed does the
request fail. This is client-side balancing for replicas started side by side (vLLM data
parallel instances, one server per GPU); a load balancer in front of them works too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .client import ChatClient, Completion
from .errors import JudgeUnavailableError

DEFAULT_COOL_DOWN = 30.0
#: Statuses that mean "this endpoint is unwell", worth trying another replica for.
_FAILOVER_HINTS = ("refused", "no answer within", "closed or reset", "after ", "HTTP 5")


@dataclass
class _Endpoint:
    client: ChatClient
    in_flight: int = 0
    last_used: float = 0.0
    down_until: float = 0.0
    failures: int = 0
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def split_urls(value: str | Sequence[str]) -> list[str]:
    """`"http://a/v1,http://b/v1"` or a list, as a list of non-empty URLs."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    urls = [p.strip() for p in parts if p and p.strip()]
    if not urls:
        raise ValueError("no judge endpoint given")
    return urls


class MultiClient:
    """Chat completions over several endpoints: least outstanding requests, with failover.

    It has the `ChatClient` methods the judge uses (`complete`, `list_models`, `close`).
    """

    def __init__(
        self,
        clients: Sequence[ChatClient],
        *,
        cool_down: float = DEFAULT_COOL_DOWN,
    ) -> None:
        if not clients:
            raise ValueError("MultiClient needs at least one endpoint")
        self._endpoints = [_Endpoint(client) for client in clients]
        self.cool_down = cool_down
        self._lock = threading.Lock()

    @classmethod
    def from_urls(cls, urls: Sequence[str], **client_options: Any) -> MultiClient:
        return cls([ChatClient(url, **client_options) for url in urls])

    @property
    def base_url(self) -> str:
        return ",".join(e.client.base_url for e in self._endpoints)

    def __repr__(self) -> str:
        return f"MultiClient({self.base_url!r})"

    def served(self) -> dict[str, int]:
        """Requests answered per endpoint (for reports and tests)."""
        return {e.client.base_url: e.served for e in self._endpoints}

    def _order(self) -> list[_Endpoint]:
        """Endpoints to try, best first: up before down, then fewest in flight."""
        now = time.monotonic()
        with self._lock:
            return sorted(
                self._endpoints,
                key=lambda e: (e.down_until > now, e.in_flight, e.last_used),
            )

    def complete(self, messages: list[dict[str, str]], **options: Any) -> Completion:
        errors: list[str] = []
        for endpoint in self._order():
            with self._lock:
                endpoint.in_flight += 1
                endpoint.last_used = time.monotonic()
            try:
                completion = endpoint.client.complete(messages, **options)
            except JudgeUnavailableError as error:
                text = str(error)
                if not any(hint in text for hint in _FAILOVER_HINTS):
                    raise  # a request the server refuses (4xx) fails the same everywhere
                with self._lock:
                    endpoint.failures += 1
                    endpoint.down_until = time.monotonic() + self.cool_down
                errors.append(text)
                continue
            finally:
                with self._lock:
                    endpoint.in_flight -= 1
            with self._lock:
                endpoint.served += 1
                endpoint.down_until = 0.0
            return completion
        raise JudgeUnavailableError(
            f"every judge endpoint failed ({len(errors)}): " + " | ".join(errors)
        )

    def list_models(self) -> list[str]:
        errors: list[str] = []
        for endpoint in self._order():
            try:
                return endpoint.client.list_models()
            except JudgeUnavailableError as error:
                errors.append(str(error))
        raise JudgeUnavailableError("no judge endpoint listed its models: " + " | ".join(errors))

    def close(self) -> None:
        for endpoint in self._endpoints:
            endpoint.client.close()
