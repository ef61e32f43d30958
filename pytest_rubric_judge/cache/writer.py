"""The writable side of the cache: diskcache over SQLite, with JSON text entries only.

What diskcache gives, and what is used of it:

- Transactions (`Cache.transact`): every write, or batch of writes, is one SQLite
  transaction, so a writer killed midway (SIGKILL, a CI runner torn down) leaves the old
  entry or the new one, never part of one.
- Its schema, its write-ahead-log settings and its serializer hook (`Disk`), here one
  that writes text only and never unpickles.
- Not its eviction: the policy is ``none``, because a verdict must never vanish because
  the cache grew (a replay would then error); `JudgeCache.prune` removes entries by age
  on request, by the entry's own `created_at`, which travels through export and import
  where diskcache's store time does not.
- Not its statistics: they count hits and misses by writing to the database on every
  read, which a read-only cache cannot do and which every xdist worker would queue on.
  Each `JudgeCache` counts in memory instead.
- Not its file-backed values: every entry stays inside SQLite, under its transactions.
- Not its `check()`, which repairs by writing: the integrity check here is SQLite's
  read-only quick check, and a damaged file is moved aside whole (`move_aside`).
- Not for lookups: every mode reads through one read-only connection of its own
  (`database`), because diskcache cannot open a database read-only (replay must work on
  a read-only disk), opens one connection per thread, and fails a lookup outright when
  one stored text has a damaged byte.
- Not its per-item `set` for the answers themselves: `Writer.put_texts` stores a batch
  with one statement inside diskcache's transaction (`Cache.transact`), writing the row
  `set` writes for a short text (inline, mode raw, no expiry, no tag) and removing any
  file an old row pointed to after the commit, as `set` does. A batch of answers costs
  SQLite's work and little besides; diskcache's own triggers keep its count and size.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import diskcache  # type: ignore[import-untyped]  # diskcache ships no type information

from .database import FOREIGN, check_database
from .errors import CacheCorruptError, database_error, os_error


class TextDisk(diskcache.Disk):  # type: ignore[misc]  # diskcache.Disk is untyped
    """A diskcache serializer that only writes text and never unpickles.

    diskcache pickles anything that is not a str, int, float or bytes, and unpickles it on
    read; a cache directory from elsewhere could then run code. Here a non-text key or
    value reads back as `FOREIGN`, which the cache treats as a corrupt entry.
    """

    def get(self, key: object, raw: bool) -> object:
        if not raw:
            return FOREIGN
        return super().get(key, raw)

    def store(self, value: object, read: bool, key: object = diskcache.core.UNKNOWN) -> object:
        if read or not isinstance(value, str):
            raise TypeError("the judge cache stores JSON text only")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: object, read: bool) -> object:
        if read or mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_TEXT):
            return FOREIGN
        return super().fetch(mode, filename, value, read)


#: One row as `diskcache.Cache.set` writes a text value kept inline: a str key (raw 1),
#: stored now, no expiry, never accessed, no tag, size 0, mode raw, no file. The row
#: under the same key is updated in place, as `set` does.
_UPSERT = (
    "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count, tag,"
    " size, mode, filename, value) VALUES (?, 1, ?, NULL, ?, 0, NULL, 0, ?, NULL, ?)"
    " ON CONFLICT(key, raw) DO UPDATE SET store_time = excluded.store_time,"
    " expire_time = NULL, access_time = excluded.access_time, access_count = 0, tag = NULL,"
    " size = 0, mode = excluded.mode, filename = NULL, value = excluded.value"
)
#: Keys per query when looking for files that replaced rows pointed to (under SQLite's
#: oldest limit on parameters, 999).
_KEYS_PER_QUERY = 500


class Writer:
    """The diskcache a cache writes through, with SQLite and disk errors named for their
    cause. Lookups read through `database.ReadOnlyDatabase` in every mode."""

    def __init__(self, store: diskcache.Cache, path: Path) -> None:
        self.store = store
        self.path = path

    def put_texts(self, items: Sequence[tuple[str, str]]) -> None:
        """Store each (key, JSON text), replacing what is under the key, in one
        transaction: all of them or, when it fails, none. Raises `diskcache.Timeout` when
        another writer holds the lock too long, and sqlite3 errors as met (callers wrap
        this in `errors`)."""
        for _, text in items:
            if type(text) is not str:  # what `TextDisk.store` refuses
                raise TypeError("the judge cache stores JSON text only")
        store = self.store
        now = time.time()
        rows = [(key, now, now, diskcache.core.MODE_RAW, text) for key, text in items]
        with store.transact(retry=False):
            connection: sqlite3.Connection = store._con  # the transaction's connection
            try:
                replaced = _old_files(connection, [key for key, _ in items])
                connection.executemany(_UPSERT, rows)
            except sqlite3.Error:
                if not connection.in_transaction:
                    # SQLite rolled the whole transaction back itself (a full disk can):
                    # give diskcache's ROLLBACK one to end, so the error raised is this one.
                    connection.execute("BEGIN")
                raise
        for name in replaced:  # after the commit, as `Cache.set` cleans up
            store._disk.remove(name)

    @contextmanager
    def errors(self, *, writing: bool) -> Iterator[None]:
        try:
            yield
        except diskcache.Timeout as error:
            raise TimeoutError(f"judge cache at {self.path} stayed locked") from error
        except sqlite3.Error as error:
            raise database_error(self.path, error, writing=writing) from error
        except OSError as error:
            raise os_error(self.path, error, writing=writing) from error
        except UnicodeDecodeError as error:  # a damaged byte in text SQLite hands back
            raise CacheCorruptError(self.path, error) from error


class DirectoryLock:
    """An advisory lock on a file in the cache directory, across processes (POSIX flock).

    Serializes the rare move-aside of a damaged file, so that two processes that find the
    same damage do not also move aside the fresh file the first one started. Where flock
    does not exist (Windows) it does nothing; the move-aside is then best effort.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def __enter__(self) -> DirectoryLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


def _old_files(connection: sqlite3.Connection, keys: list[str]) -> list[str]:
    """The files that rows under `keys` keep their values in (none that this cache wrote:
    it keeps every value inline, but another diskcache user may not have)."""
    found: list[str] = []
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[start : start + _KEYS_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        query = (
            "SELECT filename FROM Cache WHERE filename IS NOT NULL AND raw = 1"
            f" AND key IN ({marks})"
        )
        found.extend(name for (name,) in connection.execute(query, chunk))
    return found


def open_store(path: Path, timeout_s: float) -> Writer:
    """The diskcache of directory `path`, created with its parents if missing. Raises
    sqlite3 and OS errors as met (the caller names them)."""
    store = diskcache.Cache(
        str(path),
        timeout=timeout_s,
        disk=TextDisk,
        eviction_policy="none",
        cull_limit=0,  # nothing is evicted, so no cull step on every write
        statistics=False,
        size_limit=2**40,
        # Keep every entry inside SQLite, whose transactions make writes atomic.
        disk_min_file_size=2**30,
    )
    return Writer(store, path)


def move_aside(db: Path, timeout_s: float) -> str | None:
    """Move a damaged database file `db` aside (with its log and index) so that a fresh
    cache starts; what was done, in one line, or None when `db` is sound.

    Raises `CacheAccessError` when the file cannot be read for another reason than
    damage: a sound cache is never moved aside.
    """
    problem = check_database(db, timeout_s)
    if problem is None:
        return None
    with DirectoryLock(db.parent / "recovery.lock"):
        if not db.exists() or check_database(db, timeout_s) is None:
            return None  # another process moved it aside and started afresh meanwhile
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = db.with_name(f"{db.name}.corrupt-{stamp}-{os.getpid()}")
        os.replace(db, aside)
        for suffix in ("-wal", "-shm"):
            side = db.with_name(db.name + suffix)
            if side.exists():
                os.replace(side, aside.with_name(aside.name + suffix))
    return (
        f"judge cache file {db} was damaged ({problem}); moved aside to {aside.name} "
        "and started a fresh cache"
    )
