"""The cache's SQLite file opened read-only: every lookup reads here, in every mode.

diskcache cannot open a database read-only: its constructor creates tables, rewrites its
settings and sets the journal mode, all writes. So lookups read diskcache's `Cache` table
(key, raw, expire_time, mode, value; stable since diskcache 4) through a read-only
connection of their own, shared by the threads, which decodes stored text without ever
failing on a damaged byte; and a cache on a read-only disk replays:

- A `mode=ro` connection first. It sees entries still in the write-ahead log that a
  killed writer left, and coordinates with a writer in another process through
  SQLite's shared-memory index, which it creates beside the file when the folder is
  writable (SQLite's own files; nothing is written into the database).
- Where that cannot open (a read-only folder holding no index, or a full disk), an
  `immutable=1` connection: no lock, no side file, nothing created; refused when a
  write-ahead log with content sits beside the file, since that connection would not
  see it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final
from urllib.parse import quote

from .errors import (
    CacheAccessError,
    CacheCorruptError,
    database_error,
    is_busy,
    is_damage,
    sqlite_code,
)

#: diskcache's storage mode of a value kept inline in the database as given.
MODE_RAW = 1


class Foreign:
    """Marks a stored key or value that this cache did not write as text (e.g. a pickle)."""


#: What a read gives for a value that is not this cache's JSON text.
FOREIGN: Final = Foreign()
#: How SQLite fails when it cannot create the index of a write-ahead log beside the file:
#: a folder that cannot be written, or a full disk.
_NO_INDEX = frozenset({10, 14})  # IOERR, CANTOPEN
_GET = (
    "SELECT mode, value FROM Cache WHERE key = ? AND raw = 1"
    " AND (expire_time IS NULL OR expire_time > ?)"
)


def _uri(db: Path, option: str) -> str:
    return f"file:{quote(str(db.absolute()))}?{option}"


def _text(data: bytes) -> object:
    """SQLite text as a str, or `FOREIGN` when it is not UTF-8 (a damaged byte): reading
    never raises UnicodeDecodeError."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return FOREIGN


@contextmanager
def _readable() -> Iterator[None]:
    """Turn the UnicodeDecodeError that Python's sqlite3 raises when a damaged file makes
    SQLite's own error message invalid UTF-8 into the database error it stands for."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise _malformed(error) from None


def _malformed(error: UnicodeDecodeError) -> sqlite3.DatabaseError:
    return sqlite3.DatabaseError(f"database disk image is malformed ({error.reason})")


def _connect(db: Path, option: str, timeout_s: float) -> sqlite3.Connection:
    connection = sqlite3.connect(
        _uri(db, option), uri=True, timeout=timeout_s, check_same_thread=False
    )
    connection.text_factory = _text
    return connection


def connect_read_only(db: Path, timeout_s: float) -> sqlite3.Connection:
    """A read-only connection to `db` that has read its schema (so that a file that
    cannot be opened this way fails here), without creating or changing anything where
    the folder cannot be written. Raises sqlite3 errors as SQLite gives them."""
    connection = _connect(db, "mode=ro", timeout_s)
    try:
        with _readable():
            connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
        return connection
    except sqlite3.Error as error:
        connection.close()
        if sqlite_code(error) not in _NO_INDEX:
            raise
        wal = db.with_name(db.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise sqlite3.OperationalError(
                f"{error}: {wal.name} holds answers not yet merged into {db.name}, and the "
                "folder is read-only; open the cache once where it can be written"
            ) from None
    connection = _connect(db, "immutable=1", timeout_s)
    try:
        with _readable():
            connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def check_database(db: Path, timeout_s: float = 60.0) -> str | None:
    """None when the SQLite file `db` passes a quick integrity check, else what is wrong.

    Read-only. A file that is busy (another process is writing) is not damaged: that
    counts as fine. A file that cannot be opened or read for another reason (a folder
    without permission, a failing disk) is not damage either: that raises
    `CacheAccessError`, so that nobody moves a sound cache aside.
    """
    try:
        connection = connect_read_only(db, timeout_s)
    except sqlite3.Error as error:
        return _damage_or_raise(db, error)
    try:
        with _readable():
            rows = connection.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as error:
        return _damage_or_raise(db, error)
    finally:
        connection.close()
    return _problems(rows)


def _problems(rows: list[tuple[object, ...]]) -> str | None:
    """What SQLite's quick check found, in one short line; None when it found nothing."""
    lines = [
        line.strip()
        for row in rows
        if row and row[0] != "ok"
        for line in str(row[0]).splitlines()
        if line.strip() and not line.startswith("***")
    ]
    if not lines and any(row and row[0] != "ok" for row in rows):
        lines = ["failed"]
    text = "; ".join(lines[:3]) + (f" (and {len(lines) - 3} more)" if len(lines) > 3 else "")
    return text or None


def _damage_or_raise(db: Path, error: sqlite3.Error) -> str | None:
    if is_busy(error):
        return None
    if is_damage(error):
        return f"{type(error).__name__}: {error}"
    raise CacheAccessError(db.parent, error, writing=False) from error


class ReadOnlyDatabase:
    """diskcache's entries read through one read-only connection; safe across threads.

    Values come back as stored: a `str` for text, anything else for what this cache
    never writes (the caller treats it as damage). Each method raises the cache's own
    errors, never a bare sqlite3 one.
    """

    def __init__(self, db: Path, timeout_s: float) -> None:
        self.db = db
        self._lock = threading.Lock()
        try:
            self._connection = connect_read_only(db, timeout_s)
            with _readable():
                tables = {
                    row[0]
                    for row in self._connection.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table'"
                    )
                }
        except sqlite3.Error as error:
            raise self._error(error) from error
        #: A database without tables is an empty cache (a writer stopped before it made
        #: any; looked at again on each read); one with other tables but no `Cache` is
        #: not a judge cache.
        self._empty = not tables
        if tables and "Cache" not in tables:
            self._connection.close()
            raise CacheCorruptError(db.parent, "it has no Cache table: not a judge cache", db)

    def _error(self, error: sqlite3.Error) -> Exception:
        return database_error(self.db.parent, error, writing=False)

    def _rows(self, query: str, arguments: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        if self._empty and not self._has_cache_table():
            return []
        try:
            with self._lock:  # (`_readable`'s work, inline: every lookup comes here)
                return self._connection.execute(query, arguments).fetchall()
        except UnicodeDecodeError as error:
            damaged = _malformed(error)
            raise self._error(damaged) from damaged
        except sqlite3.Error as error:
            raise self._error(error) from error

    def _has_cache_table(self) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'Cache'"
        try:
            with self._lock, _readable():
                found = bool(self._connection.execute(query).fetchall())
        except sqlite3.Error as error:
            raise self._error(error) from error
        self._empty = not found
        return found

    def quick_check(self) -> str | None:
        """None when SQLite's quick integrity check passes, else what it found."""
        try:
            with self._lock, _readable():
                rows = self._connection.execute("PRAGMA quick_check").fetchall()
        except sqlite3.Error as error:
            if is_damage(error):
                return f"{type(error).__name__}: {error}"
            raise self._error(error) from error
        return _problems(rows)

    def get(self, key: str) -> object | None:
        """The value stored under `key` (a str for text), or None."""
        rows = self._rows(_GET, (key, time.time()))
        if not rows:
            return None
        mode, value = rows[0]
        return value if mode == MODE_RAW and isinstance(value, str) else FOREIGN

    def keys(self) -> Iterator[str]:
        """The stored text keys, oldest first."""
        for (key,) in self._rows("SELECT key FROM Cache WHERE raw = 1 ORDER BY rowid"):
            if isinstance(key, str):
                yield key

    def count(self) -> int:
        rows = self._rows("SELECT count(*) FROM Cache")
        count = rows[0][0] if rows else 0
        return count if isinstance(count, int) else 0

    def close(self) -> None:
        with self._lock:
            self._connection.close()
