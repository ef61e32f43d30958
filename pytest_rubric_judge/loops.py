"""The event loops judge calls run on, and the collector's pace while they run.

A batch runs its calls on a loop in a thread of its own (`run_loop`); the blocking
`Judge` runs its coroutines on one background loop (`LoopThread`). Both loops come from
`loop_factory`: uvloop's loop (libuv) where uvloop is installed, which is the default on
Linux and macOS, else asyncio's own. At 128 requests in flight the loop's thread is the
limit of a batch on a small machine, and uvloop spends less of it on scheduling and
socket I/O (docs/performance.md). Set RUBRIC_JUDGE_EVENT_LOOP=asyncio to use asyncio's
loop instead (uvloop to insist on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = [
    "BATCH_GC_THRESHOLD",
    "LOOP_ENV",
    "LoopThread",
    "fewer_collections",
    "loop_factory",
    "run_loop",
]

T = TypeVar("T")

#: The environment variable that chooses the event loop: uvloop, asyncio or auto.
LOOP_ENV = "RUBRIC_JUDGE_EVENT_LOOP"
_CHOICES = ("auto", "uvloop", "asyncio")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new event loop, as `LOOP_ENV` chooses (auto when unset: uvloop when
    it can be imported). Raises ValueError for another value, and for `uvloop` when it is
    not installed."""
    choice = os.environ.get(LOOP_ENV, "").strip().lower() or "auto"
    if choice not in _CHOICES:
        raise ValueError(
            f"{LOOP_ENV}={os.environ[LOOP_ENV]!r} is not an event loop this package knows; "
            "set it to uvloop, asyncio or auto (or unset it)"
        )
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ValueError(
                    f"{LOOP_ENV}=uvloop but uvloop cannot be imported; install it with "
                    "`pip install uvloop` (Linux and macOS), or unset the variable"
                ) from None
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return factory
    return asyncio.new_event_loop


def run_loop(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(work)` on a loop from `loop_factory` (on Python 3.10, which has no
    `asyncio.Runner` to take a loop factory, on asyncio's own loop)."""
    try:
        factory = loop_factory()
    except BaseException:
        work.close()  # never to be run: not left for the collector to warn about
        raise
    if sys.version_info < (3, 11):  # pragma: no cover - Python 3.10
        return asyncio.run(work)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(work)


class LoopThread:
    """One event loop in a daemon thread, on which blocking callers run coroutines."""

    def __init__(self, name: str = "rubric-judge") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = loop_factory()()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop = loop
            return self._loop

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the loop and wait for it; an interrupt cancels it."""
        future = asyncio.run_coroutine_threadsafe(work, self._started())
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise


_GC_LOCK = threading.Lock()
_GC_HOLDERS = 0
_GC_SAVED: tuple[int, ...] | None = None
#: The young generation's threshold while a batch runs (CPython's default is 700).
BATCH_GC_THRESHOLD = 30_000


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect the young generation far less often while a batch runs.

    A request in flight allocates hundreds of short-lived objects (the JSON body, the
    parsed answer, pydantic models), almost none in reference cycles; at CPython's default
    threshold the collector's passes over them cost about 0.1 ms of CPU per request at 128
    in flight, a tenth of the client's share, and still 0.02 ms at 7,000
    (docs/performance.md). The thresholds are the process's, so they are
    restored when the last batch that raised them ends.
    """
    global _GC_HOLDERS, _GC_SAVED
    with _GC_LOCK:
        if _GC_HOLDERS == 0:
            _GC_SAVED = gc.get_threshold()
            gc.set_threshold(max(BATCH_GC_THRESHOLD, _GC_SAVED[0]), *_GC_SAVED[1:])
        _GC_HOLDERS += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_HOLDERS -= 1
            if _GC_HOLDERS == 0 and _GC_SAVED is not None:
                gc.set_threshold(*_GC_SAVED)
                _GC_SAVED = None
