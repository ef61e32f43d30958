"""Start a judge inference server for a run, and stop it afterwards.

`JudgeServer("vllm serve Qwen/Qwen2.5-7B-Instruct --port {port}")` replaces `{port}` by a
free port on 127.0.0.1, starts the command in its own process group with its output in a
log file, waits until `/health` or `/v1/models` answers, and on `stop()` terminates the
whole group, then kills it after a grace period. On Linux the server also receives
SIGTERM if the process that started it dies, so an interrupted run leaves no orphan.

The server inherits the environment, API key included, and may print it: every text of
its log quoted in an error, and the command in the repr, has each of `secrets` (every
form of the run's credentials) replaced by `***`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from .credentials import mask
from .errors import JudgeError

DEFAULT_STARTUP_TIMEOUT = 600.0
DEFAULT_GRACE = 10.0
LOG_TAIL_LINES = 20
HEALTH_PATHS = ("/health", "/v1/models")


class JudgeServerError(JudgeError):
    """The judge server could not be started, or exited before it was ready."""

    kind = "server"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child after fork
    """Ask Linux to send SIGTERM to this process when its parent dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def log_tail(path: Path, lines: int = LOG_TAIL_LINES, *, secrets: Sequence[str] = ()) -> str:
    """The last lines of a log file (empty when there is none), `secrets` masked."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    # Masked before the split: a secret never survives by straddling the first line kept.
    return "\n".join(mask(text, secrets).splitlines()[-lines:])


class JudgeServer:
    """A judge server process owned by this run."""

    def __init__(
        self,
        command: str,
        *,
        log_path: str | os.PathLike[str],
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        grace: float = DEFAULT_GRACE,
        progress: Callable[[str], None] | None = None,
        progress_every: float = 10.0,
        secrets: Sequence[str] = (),
    ) -> None:
        if "{port}" not in command:
            raise ValueError(
                "the judge server command must contain {port}, which is replaced by a free "
                "port on 127.0.0.1, e.g. 'vllm serve MODEL --port {port}'"
            )
        self.command = command
        self.log_path = Path(log_path)
        self.startup_timeout = startup_timeout
        self.grace = grace
        self.progress = progress
        self.progress_every = progress_every
        #: Texts masked from everything shown of the server (longest first).
        self.secrets = tuple(sorted(secrets, key=len, reverse=True))
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"JudgeServer({mask(self.command, self.secrets)!r}, port={self.port})"

    def _tail(self) -> str:
        return log_tail(self.log_path, secrets=self.secrets)

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL, ending in /v1."""
        if self.port is None:
            raise RuntimeError("the judge server has not been started")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_message(self) -> str | None:
        """One line saying that the server exited with its status, then the tail of its
        log; None while it runs (or before it starts, or after `stop`)."""
        process = self._process
        code = process.poll() if process is not None else None
        if code is None:
            return None
        return (
            f"the judge server started by --judge-serve exited with status {code} during the "
            f"run; last lines of {self.log_path}:\n{self._tail()}"
        )

    def start(self) -> str:
        """Start the server and wait until it answers; returns its base URL."""
        self.port = free_port()
        argv = shlex.split(self.command.replace("{port}", str(self.port)))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            try:
                self._process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,  # the server dies with its parent: no orphans
                )
            except OSError as error:
                message = f"could not start the judge server {argv[0]!r}: {error}"
                raise JudgeServerError(
                    mask(message, self.secrets) + "; check --judge-serve"
                ) from None
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _wait_ready(self) -> None:
        started = time.monotonic()
        next_note = started + self.progress_every
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                process = self._process
                assert process is not None
                code = process.poll()
                if code is not None:
                    raise JudgeServerError(
                        f"the judge server exited with status {code} before it was ready; "
                        f"last lines of {self.log_path}:\n{self._tail()}"
                    )
                for path in HEALTH_PATHS:
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"http://127.0.0.1:{self.port}{path}").status_code == 200:
                            return
                now = time.monotonic()
                if now - started > self.startup_timeout:
                    raise JudgeServerError(
                        f"the judge server did not answer within {self.startup_timeout:.0f}s; "
                        f"raise --judge-serve-timeout or check {self.log_path}:\n"
                        f"{self._tail()}"
                    )
                if self.progress is not None and now >= next_note:
                    self.progress(
                        f"waiting for the judge server on port {self.port} "
                        f"({now - started:.0f}s, log: {self.log_path})"
                    )
                    next_note = now + self.progress_every
                time.sleep(0.25)

    def stop(self) -> None:
        """Terminate the server's process group; kill it after the grace period. Idempotent."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=self.grace)

    def __enter__(self) -> JudgeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
