"""The cache modes, as the plugin's options and the command line name them.

- ``rw``: read hits, write new answers (the default).
- ``replay``: read only; a miss is the caller's problem (usually a test error). The
  cache is opened read-only: nothing in its folder is created or written, so a cache on a
  read-only disk replays.
- ``refresh``: never read, always write: re-ask the judge and overwrite.
- ``off``: no disk access at all; the directory may be None.

Kept apart from the storage so that reading options never imports the database code.
"""

from __future__ import annotations

from typing import Literal

CacheMode = Literal["rw", "replay", "refresh", "off"]
CACHE_MODES: tuple[CacheMode, ...] = ("rw", "replay", "refresh", "off")


def validate_mode(value: str) -> CacheMode:
    """Return `value` as a cache mode, or raise ValueError naming the accepted modes.

    For option parsers: a wrong mode is a usage error when the command line is read.
    """
    for mode in CACHE_MODES:
        if value == mode:
            return mode
    raise ValueError(
        f"invalid judge cache mode {value!r}: expected one of {', '.join(CACHE_MODES)}"
    )
