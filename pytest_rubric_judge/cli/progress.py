"""The progress bar the batch commands draw on stderr while rows are judged."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Progress", "clock"]


class Progress:
    """A one-line progress bar with rate and ETA, redrawn at most ten times a second.

    Judge errors and invalid input rows are counted apart, as the outputs count them.
    """

    def __init__(self, total: int | None, stream: TextIO, *, enabled: bool, width: int = 28):
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.width = width
        self.done = 0
        self.errors = 0
        self.invalid = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, *, ok: bool, invalid: bool = False) -> None:
        self.done += 1
        self.invalid += invalid
        self.errors += not ok and not invalid
        now = time.monotonic()
        if self.enabled and (now - self._drawn >= 0.1 or self.done == self.total):
            self._drawn = now
            self.stream.write("\r" + self.line(now))
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = max(1e-9, (now or time.monotonic()) - self.started)
        rate = self.done / elapsed
        errors = f"  errors {self.errors}" if self.errors else ""
        if self.invalid:
            errors += f"  invalid {self.invalid}"
        if self.total:
            share = min(1.0, self.done / self.total)
            filled = int(share * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            return (
                f"[{bar}] {self.done}/{self.total} {share:6.1%}  {rate:7.1f} rows/s  "
                f"ETA {clock(eta)}{errors}"
            )
        return f"{self.done} rows  {rate:7.1f} rows/s  elapsed {clock(elapsed)}{errors}"

    def finish(self) -> None:
        if self.enabled and self.done != self.total:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
        elif self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def clock(seconds: float) -> str:
    """`1:02:03`, `4:05`, or `--:--` for an unknown time."""
    if seconds == float("inf"):
        return "--:--"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
