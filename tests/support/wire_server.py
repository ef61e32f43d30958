"""A raw HTTP/1.1 server on 127.0.0.1 whose every byte on the wire is the test's choice.

The fake judge speaks correct HTTP; the client conformance tests need servers that do not:
a body that ends at connection close, a gzip bomb, headers trickled a byte at a time, a
chunked body that never ends. Each connection reads one request and hands it, with the
socket, to the test's `behave(request, conn)`; the server records the requests and how
long each connection stayed open, and stops itself after `life_s` at the latest.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WireRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Connection:
    sock: socket.socket
    opened: float
    closed_by_peer: threading.Event = field(default_factory=threading.Event)

    def send(self, data: bytes) -> bool:
        """Send `data`; False once the client has gone away."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed_by_peer.set()
            return False


Behaviour = Callable[[WireRequest, Connection], None]


def completion_body(text: str = "hello", model: str = "wire-model") -> bytes:
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    ).encode()


def response_head(status: int = 200, reason: str = "OK", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class WireServer:
    """Serve `behave` on a free port until `stop()` (or `life_s` seconds)."""

    def __init__(self, behave: Behaviour, *, life_s: float = 60.0) -> None:
        self.behave = behave
        self.requests: list[WireRequest] = []
        #: Seconds each finished connection stayed open.
        self.durations: list[float] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._deadline = time.monotonic() + life_s
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stopping(self) -> bool:
        return self._stop.is_set() or time.monotonic() > self._deadline

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def __enter__(self) -> WireServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self.stopping():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        opened = time.monotonic()
        conn.settimeout(10)
        try:
            request = _read_request(conn)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
            self.behave(request, Connection(conn, opened))
        except OSError:
            pass
        finally:
            with self._lock:
                self.durations.append(time.monotonic() - opened)
            try:
                conn.close()
            except OSError:
                pass


def _read_request(conn: socket.socket) -> WireRequest | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return WireRequest(method, path, headers, rest[:length])
