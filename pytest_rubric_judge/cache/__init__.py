"""The judge-call cache: one entry per judge call, keyed by everything that shapes its answer.

- `keys`: the canonical JSON of a call's key fields and its SHA-256 (SPEC, "Cache keys").
- `entry`: `CacheEntry`, one stored call (key fields, raw answer, parsed answer, cost).
- `integrity`: whether a stored answer is what its raw text reads as.
- `storage`: `JudgeCache`, the diskcache (SQLite) directory, its modes and maintenance.
- `database`: the SQLite file opened read-only (replay mode, integrity checks).
- `errors`: what goes wrong on disk, each named for its cause and its fix.
- `modes`: the four cache modes.

The keys and modes are imported at once (option parsing needs them); the storage and its
database and parser dependencies load on first use of one of their names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .keys import cache_key, canonical_json, key_fields, keyed_fields
from .modes import CACHE_MODES, CacheMode, validate_mode

if TYPE_CHECKING:
    from .database import check_database
    from .entry import CacheEntry
    from .errors import (
        DB_NAME,
        CacheAccessError,
        CacheCorruptError,
        CacheEntryCorruptError,
        CacheError,
        CacheFullError,
    )
    from .integrity import answer_problem, entry_problem
    from .storage import DEFAULT_TIMEOUT_S, JudgeCache

__all__ = [
    "CACHE_MODES",
    "DB_NAME",
    "DEFAULT_TIMEOUT_S",
    "CacheAccessError",
    "CacheCorruptError",
    "CacheEntry",
    "CacheEntryCorruptError",
    "CacheError",
    "CacheFullError",
    "CacheMode",
    "JudgeCache",
    "answer_problem",
    "cache_key",
    "canonical_json",
    "check_database",
    "entry_problem",
    "key_fields",
    "keyed_fields",
    "validate_mode",
]

#: The module of each name loaded on first use.
_LAZY = {
    "check_database": "database",
    "CacheEntry": "entry",
    "DB_NAME": "errors",
    "CacheAccessError": "errors",
    "CacheCorruptError": "errors",
    "CacheEntryCorruptError": "errors",
    "CacheError": "errors",
    "CacheFullError": "errors",
    "answer_problem": "integrity",
    "entry_problem": "integrity",
    "DEFAULT_TIMEOUT_S": "storage",
    "JudgeCache": "storage",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
