"""Output into a pipe that closed early (`rubric-judge cache stats | head -1`).

Like other Unix tools, a command whose reader went away stops quietly: no traceback and
no "Exception ignored" message at exit. Its exit status is 141 (128 + SIGPIPE), what a
shell reports for a tool that SIGPIPE stopped; a pipeline without `pipefail` only sees
the reader's status anyway.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

__all__ = ["EXIT_BROKEN_PIPE", "quiet_broken_pipe"]

EXIT_BROKEN_PIPE = 141

_Args = TypeVar("_Args")


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush has nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (captured, replaced)
        pass


def quiet_broken_pipe(command: Callable[[_Args], int]) -> Callable[[_Args], int]:
    """`command`, flushing stdout before it returns and exiting quietly on a closed pipe."""

    @functools.wraps(command)
    def run(args: _Args) -> int:
        try:
            status = command(args)
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        return status

    return run
