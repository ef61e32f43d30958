"""What goes wrong with a cache on disk, each named for its cause and its fix.

Every cache error is a `JudgeError`: a test that meets one has no verdict, so it is
reported as an error, never as a failure. The causes are told apart because their fixes
differ, and the wrong advice loses data: a full disk or a read-only folder is not damage,
and "delete it" would throw away answers that are intact.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Final

from ..errors import JudgeError

#: The SQLite file diskcache keeps inside the cache directory.
DB_NAME: Final = "cache.db"

# SQLite's primary result codes (https://sqlite.org/rescode.html).
_BUSY, _LOCKED, _FULL, _CORRUPT, _NOTADB = 5, 6, 13, 11, 26
_IOERR, _CANTOPEN = 10, 14
_ACCESS_CODES: Final = frozenset({3, 8, _IOERR, _CANTOPEN, 23})  # PERM, READONLY, ..., AUTH
#: Less free space than this on the cache's disk makes an SQLite I/O error a full disk.
FULL_MARGIN: Final = 256 * 1024
#: Message parts for Pythons whose sqlite3 errors carry no result code (before 3.11).
_MESSAGES: Final = (
    ("locked", _BUSY),
    ("busy", _BUSY),
    ("disk is full", _FULL),
    ("malformed", _CORRUPT),
    ("not a database", _NOTADB),
    ("readonly", 8),
    ("read-only", 8),
    ("unable to open", 14),
    ("disk i/o error", 10),
)
_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


class CacheError(JudgeError):
    """The judge cache cannot be used as the mode asks. `path` is the cache directory,
    `file` the file concerned."""

    kind = "cache_error"

    def __init__(self, message: str, *, path: Path, file: Path | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.file = file if file is not None else path / DB_NAME


class CacheCorruptError(CacheError, ValueError):
    """The cache cannot be read as a cache (damaged, or not a cache at all).

    Raised in replay mode instead of silently starting over, because a damaged cache
    would otherwise look like a run where the judge was never asked anything; and for
    damage found after the cache was opened (the next run's integrity check moves the
    file aside). Still a ValueError, as it was before it became a judge error.
    """

    kind = "cache_corrupt"

    def __init__(self, path: Path, cause: BaseException | str, file: Path | None = None) -> None:
        where = file if file is not None else path / DB_NAME
        message = (
            f"judge cache file {where} is unreadable or corrupted ({_why(cause)}); delete it "
            "(a run with --judge-cache=rw starts a fresh cache and moves a damaged file "
            "aside by itself) or restore it with `rubric-judge cache import FILE.jsonl`; "
            "or run with --judge-cache=off"
        )
        CacheError.__init__(self, message, path=path, file=where)


class CacheEntryCorruptError(CacheCorruptError):
    """One stored entry cannot be served (found in replay mode, which never re-asks).

    Its stored answer is not what its raw judge text reads as, or it is not an entry at
    all. The rest of the cache may be fine, so the fix is to re-record, not to delete.
    """

    def __init__(self, path: Path, key: str, reason: str, file: Path | None = None) -> None:
        where = file if file is not None else path / DB_NAME
        message = (
            f"judge cache entry {key[:16]} in {where} cannot be trusted: {reason} (damaged, "
            "edited, or recorded by a version that reads answers differently); re-record it "
            "with --judge-cache=rw (the judge is asked again and the entry replaced) or "
            "restore the cache with `rubric-judge cache import FILE.jsonl`"
        )
        CacheError.__init__(self, message, path=path, file=where)
        self.key = key
        self.reason = reason


class CacheFullError(CacheError):
    """The disk (or SQLite's page limit) is full: the answers stored so far are intact."""

    kind = "cache_full"

    def __init__(self, path: Path, cause: BaseException | str) -> None:
        message = (
            f"judge cache at {path}: disk full ({_why(cause)}); the answers already stored "
            "are intact. Free space on that disk, or point --judge-cache-dir at a disk with "
            "room; --judge-cache=replay reads the cache without writing"
        )
        super().__init__(message, path=path)


class CacheAccessError(CacheError):
    """The cache folder cannot be written or read here (read-only, permissions, I/O)."""

    kind = "cache_access"

    def __init__(self, path: Path, cause: BaseException | str, *, writing: bool) -> None:
        if writing:
            advice = (
                "the folder or its disk is read-only or not writable by this user: run with "
                "--judge-cache=replay to read it as it is, or point --judge-cache-dir at a "
                "writable folder"
            )
        else:
            advice = (
                "check that the folder exists, is readable by this user and that its disk is "
                "mounted and healthy"
            )
        super().__init__(
            f"judge cache at {path} cannot be {'written' if writing else 'read'} "
            f"({_why(cause)}); {advice}",
            path=path,
        )


def _why(cause: BaseException | str) -> str:
    return cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"


def sqlite_code(error: sqlite3.Error) -> int | None:
    """SQLite's primary result code for `error`, from the error or else its message."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    text = str(error).lower()
    return next((value for part, value in _MESSAGES if part in text), None)


def is_busy(error: BaseException) -> bool:
    """Whether an SQLite error means another connection holds a lock: not damage."""
    return isinstance(error, sqlite3.Error) and sqlite_code(error) in (_BUSY, _LOCKED)


def is_damage(error: sqlite3.Error) -> bool:
    """Whether an SQLite error says the file is damaged or not a database (or not a cache:
    a missing table is a plain SQL error)."""
    return sqlite_code(error) in (_CORRUPT, _NOTADB, None, 1)


def database_error(path: Path, error: sqlite3.Error, *, writing: bool) -> Exception:
    """The exception that names the cause of an SQLite error met in the cache at `path`.

    SQLite reports a full disk as "database or disk is full" only where it writes the
    database or its log; growing its shared-memory index on a full disk is a "disk I/O
    error". So an I/O or open error on a disk with (almost) no space left is a full disk.
    """
    code = sqlite_code(error)
    if code in (_BUSY, _LOCKED):
        return TimeoutError(f"judge cache at {path} stayed locked: {error}")
    if code == _FULL or (code in (_IOERR, _CANTOPEN) and nearly_full(path)):
        return CacheFullError(path, error)
    if code in _ACCESS_CODES:
        return CacheAccessError(path, error, writing=writing)
    return CacheCorruptError(path, error)


def nearly_full(path: Path) -> bool:
    """Whether the disk holding `path` (or its nearest existing parent) has less than
    `FULL_MARGIN` bytes left for this user; False where that cannot be known."""
    for candidate in (path, *path.parents):
        try:
            stats = os.statvfs(candidate)
        except (AttributeError, OSError):  # no statvfs (Windows), or not there yet
            continue
        return stats.f_bavail * stats.f_frsize < FULL_MARGIN
    return False


def os_error(path: Path, error: OSError, *, writing: bool) -> CacheError:
    """The cache error for an operating-system error on the cache folder."""
    if error.errno in _FULL_ERRNOS:
        return CacheFullError(path, error)
    return CacheAccessError(path, error, writing=writing)
