"""`FakeJudge`: the fake judge served over real HTTP on 127.0.0.1, a thread per connection.

The answers come from a `FakeJudgeHandler`; this module adds what only a server has: a
port, keep-alive connections, latency, and the two faults that are about the connection
itself (a reset half-way through a body, a request never answered). It stops itself after
`max_lifetime` seconds so that a forgotten server cannot outlive a test run. A client that
closes its connection before its answer is written (an interrupted run) is ignored
quietly: the request is counted, the answer dropped, and nothing is printed.
"""

from __future__ import annotations

import logging
import socket
import struct
import sys
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .handler import FakeJudgeHandler, FaultKind, RecordedRequest, Reply
from .policies import Answer, Policy

__all__ = ["FakeJudge"]

log = logging.getLogger("pytest_rubric_judge.testing")


class FakeJudge:
    """An OpenAI-compatible judge server on 127.0.0.1, answering from a policy.

    Endpoints: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`. Each chat
    request first consumes a queued failure or fault (`fail`, `fault`), then a scripted
    answer (`script`), and only then asks the policy; `handler` does that part, and this
    object passes its methods and settings through. The server stops itself after
    `max_lifetime` seconds so that a forgotten one cannot outlive a test run.

    A request carrying a `response_format` (any dialect) gets bare JSON from the answer
    builders (`pass_yaml_answer` and the others), as a server that
    constrains its output writes; `structured_answers=False` keeps fenced YAML for every
    request. Scripted text is sent as it is. `engine` (a name in `testing.engines.ENGINES`,
    e.g. "llama-cpp-python") refuses the `response_format` dialects that server refuses,
    with its status and message. `images=False` refuses requests with image content parts
    as a text-only model's server does (HTTP 400 saying the model does not support image
    input), so that the judge's `ImagesRefusedError` can be tested.

    `models` are the ids `GET /v1/models` lists, in order (default: just `model`; `[]` lists
    none), and `model_fields` extra fields of every entry there, such as vLLM's
    `{"max_model_len": 32768}`: a server with several models or a context length to report.
    """

    #: How long a "hang" fault keeps the connection open without answering.
    hang_s: float = 30.0

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        model: str = "fake-judge",
        latency: float = 0.0,
        max_lifetime: float = 900.0,
        port: int = 0,
        structured_answers: bool = True,
        models: Sequence[str] | None = None,
        model_fields: Mapping[str, object] | None = None,
        engine: str | None = None,
        images: bool = True,
    ) -> None:
        self.handler = FakeJudgeHandler(
            policy,
            model=model,
            structured_answers=structured_answers,
            engine=engine,
            images=images,
        )
        #: The ids `GET /v1/models` lists; None lists `model` alone.
        self.models: list[str] | None = None if models is None else list(models)
        #: Extra fields of every entry of `GET /v1/models` (e.g. `max_model_len`).
        self.model_fields: dict[str, object] = dict(model_fields or {})
        #: Seconds before each chat answer is sent.
        self.latency = latency
        self.max_lifetime = max_lifetime
        self._port = port
        self._life = threading.Lock()  # start and stop
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Timer | None = None
        self._stopped = threading.Event()
        self._stopped.set()
        self._url: str | None = None

    def __repr__(self) -> str:
        state = self._url if self.running else "stopped"
        return f"FakeJudge({state}, model={self.model!r}, policy={type(self.policy).__name__})"

    # -- settings, kept by the handler ------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return self.handler.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self.handler.policy = policy

    @property
    def model(self) -> str:
        return self.handler.model

    @model.setter
    def model(self, model: str) -> None:
        self.handler.model = model

    @property
    def structured_answers(self) -> bool:
        return self.handler.structured_answers

    @structured_answers.setter
    def structured_answers(self, enabled: bool) -> None:
        self.handler.structured_answers = enabled

    @property
    def images(self) -> bool:
        """Whether requests with image content parts are answered (False: HTTP 400)."""
        return self.handler.images

    @images.setter
    def images(self, accepted: bool) -> None:
        self.handler.images = accepted

    def models_reply(self) -> Reply:
        """The `GET /v1/models` answer: `models` (else `model`), each with `model_fields`."""
        ids = [self.model] if self.models is None else self.models
        data = [
            {**self.model_fields, "id": name, "object": "model", "owned_by": "pytest-rubric-judge"}
            for name in ids
        ]
        return Reply.json(200, {"object": "list", "data": data})

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeJudge:
        """Bind a free port on 127.0.0.1 (or `port`) and serve in a daemon thread."""
        with self._life:
            if self._server is not None:
                return self
            server = _Server(("127.0.0.1", self._port), self)
            self._stopped.clear()
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name=f"FakeJudge:{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            watchdog = threading.Timer(self.max_lifetime, self.stop)
            watchdog.daemon = True
            watchdog.start()
            self._server, self._thread, self._watchdog = server, thread, watchdog
            self._url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections. Idempotent, safe from any thread."""
        with self._life:
            server, thread, watchdog = self._server, self._thread, self._watchdog
            self._server = self._thread = self._watchdog = None
            self._stopped.set()  # wakes hanging and sleeping handlers
        if server is None:
            return
        if watchdog is not None:
            watchdog.cancel()
        if thread is not threading.current_thread():
            server.shutdown()
        server.drop_connections()
        server.server_close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped (by `stop` or the watchdog); True if it has."""
        return self._stopped.wait(timeout)

    def _pause(self, seconds: float) -> bool:
        """Sleep up to `seconds`, less if the server stops meanwhile; True if it stopped."""
        return self._stopped.wait(seconds)

    @property
    def running(self) -> bool:
        return not self._stopped.is_set()

    def __enter__(self) -> FakeJudge:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, "http://127.0.0.1:<port>/v1" (kept after `stop`)."""
        if self._url is None:
            raise RuntimeError("FakeJudge has not been started; call start() or use `with`")
        return self._url

    # -- scripting, done by the handler -----------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received, in order."""
        return self.handler.requests

    @property
    def request_count(self) -> int:
        """How many chat-completion requests arrived (failed ones included)."""
        return self.handler.request_count

    def reset(self) -> None:
        """Forget the request log and drop queued answers, failures and faults."""
        self.handler.reset()

    def script(self, *answers: Answer) -> None:
        """Queue raw answers (or functions of the request), used FIFO before the policy."""
        self.handler.script(*answers)

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        body: str | None = None,
    ) -> None:
        """Answer the next `times` chat requests with HTTP `status` (and a Retry-After).

        `body` is sent as is; by default an OpenAI-style JSON error.
        """
        self.handler.fail(status, times=times, retry_after=retry_after, body=body)

    def fault(self, kind: FaultKind, *, times: int = 1) -> None:
        """Misbehave on the next `times` chat requests.

        reset: headers with a Content-Length, half the body, then an abrupt close.
        hang: never answer (until `hang_s` passes or the server stops).
        non_json: HTTP 200 with an HTML body. no_choices: a completion without `choices`.
        empty: `content` is "". truncated: half the answer, finish_reason "length".
        """
        self.handler.fault(kind, times=times)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], judge: FakeJudge) -> None:
        self.judge = judge
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _HTTPHandler)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (an interrupted run) is no error of the
        server's: it is logged at debug level, without a traceback. Anything else is
        reported as `socketserver` does."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            log.debug("fake judge: client %s went away: %s", client_address, error)
            return
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        """Shut down kept-alive connections so no handler thread outlives `stop`."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _HTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx's pool expects
    timeout = 120  # an idle kept-alive connection is closed after this
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake judge: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        judge = self.server.judge
        reply = judge.handler.handle(method, self.path, headers, raw)
        if method == "GET" and self.path.split("?", 1)[0] == "/v1/models" and reply.status == 200:
            reply = judge.models_reply()
        if reply.fault == "hang":
            judge._pause(judge.hang_s)
            self.close_connection = True
            return
        if reply.chat and judge.latency > 0:
            judge._pause(judge.latency)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.payload)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if reply.fault == "reset":
            self.wfile.write(reply.payload[: len(reply.payload) // 2])
            self.wfile.flush()
            # Linger 0: close with a TCP reset instead of an orderly shutdown.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.wfile.write(reply.payload)
