"""Where entries live: a diskcache (SQLite) directory, one JSON entry per judge call.

Entries are stored as JSON text rather than pickles, so that a cache checked into a
repository or shared between machines can be read with any SQLite tool and loading it
never runs code. SQLite's locking makes the directory safe for several threads and
several processes (pytest-xdist workers) at once. The writing modes write through
diskcache (`writer`, which says what of diskcache is used and why); replay mode reads
through a read-only connection of its own (`database`) and writes nothing.

Every entry is checked when read: its key must be the hash of its key fields, and its
stored answer what its raw judge text reads as (`integrity`). A bad entry is a miss in
the writing modes (the judge is asked again and the entry replaced) and a
`CacheEntryCorruptError` in replay mode, never an answer. A cache file that SQLite cannot
read is found when the cache opens (a quick integrity check): in a writing mode it is
moved aside to `cache.db.corrupt-<time>-<pid>` and a fresh cache is started
(`JudgeCache.recovered` says so); in replay mode, which must not silently lose its
answers, it is a `CacheCorruptError` naming the file and the fix. A full disk is a
`CacheFullError` and a folder that cannot be written a `CacheAccessError`: neither is
damage, and nothing is moved aside for them.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from .database import ReadOnlyDatabase
from .entry import CacheEntry, first_error
from .errors import (
    DB_NAME,
    CacheAccessError,
    CacheCorruptError,
    CacheEntryCorruptError,
    CacheFullError,
    database_error,
    os_error,
)
from .integrity import entry_problem
from .modes import CacheMode, validate_mode
from .writer import Writer, move_aside, open_store

#: Seconds a writer waits for another process's lock before giving up.
DEFAULT_TIMEOUT_S: Final = 60.0


class JudgeCache:
    """The judge-call cache of one directory, in one of the modes in `CACHE_MODES`.

    Nothing touches the disk until the first lookup or write: a `Judge` given a cache
    directory it never uses leaves no files. A lookup never creates the directory; the
    first write does (with its parents). Replay mode opens the database read-only and
    writes nothing. Safe to share between threads; several processes may open the same
    directory.

    `hits`, `misses` and `corrupt` count lookups made through `get`. A corrupt entry (not
    JSON, not a valid `CacheEntry`, stored under another key, or with a stored answer that
    is not what its raw text reads as) counts as corrupt and as a miss, and is never
    served; in replay mode `get` raises `CacheEntryCorruptError` for it.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        mode: CacheMode = "rw",
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.mode: CacheMode = validate_mode(mode)
        if directory is None and self.mode != "off":
            raise ValueError(
                f"judge cache mode {self.mode!r} needs a directory; use mode 'off' for no cache"
            )
        self.directory: Path | None = (
            Path(os.fspath(directory)).expanduser() if directory is not None else None
        )
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ValueError(f"timeout_s must be a positive number of seconds, not {timeout_s!r}")
        self._timeout_s = timeout_s
        self._writer: Writer | None = None
        self._reader: ReadOnlyDatabase | None = None
        self._reader_pid = 0
        #: Whether the last attempt to open the database for writing failed for lack of
        #: space or access (not damage); lookups then read it read-only.
        self._write_blocked = False
        self._open_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._corrupt = 0
        #: Entries written but not yet stored, while `deferred_writes` is on (else None).
        self._pending: dict[str, CacheEntry] | None = None
        self._pending_max = 0
        self._pending_lock = threading.Lock()
        #: What was moved aside when a damaged cache file was found, one line each.
        self.recovered: list[str] = []

    def __repr__(self) -> str:
        return f"JudgeCache({str(self.directory)!r}, mode={self.mode!r})"

    # -- mode and counters ---------------------------------------------------------

    @property
    def reads(self) -> bool:
        """Whether lookups may be served from the cache (modes rw and replay)."""
        return self.mode in ("rw", "replay")

    @property
    def writes(self) -> bool:
        """Whether new answers are stored (modes rw and refresh)."""
        return self.mode in ("rw", "refresh")

    @property
    def hits(self) -> int:
        """Lookups answered from the cache."""
        return self._hits

    @property
    def misses(self) -> int:
        """Lookups the cache could not answer (corrupt entries included)."""
        return self._misses

    @property
    def corrupt(self) -> int:
        """Stored entries found unusable and skipped."""
        return self._corrupt

    def _count(self, *, hit: bool = False, corrupt: bool = False) -> None:
        with self._count_lock:
            if hit:
                self._hits += 1
            else:
                self._misses += 1
            if corrupt:
                self._corrupt += 1

    # -- opening -------------------------------------------------------------------

    def _reads_from(self) -> ReadOnlyDatabase | None:
        """The database, opened read-only for lookups in every mode; None while there is
        nothing to read (or in mode off).

        One read path for all modes: one connection shared by the threads (diskcache
        opens one per thread), and a damaged byte in a stored text reads as a damaged
        entry instead of failing the lookup. A writing mode first opens the writable
        database, which checks the file and moves a damaged one aside; when that fails
        for lack of space or access (not damage), lookups still read what is stored, and
        each write tries again.
        """
        if self.mode == "off":
            return None
        if self.mode != "replay" and not self._write_blocked:
            try:
                self._open_writer(create=False)
            except (CacheFullError, CacheAccessError):
                self._write_blocked = True
        return self._open_reader()

    def _database(self) -> tuple[Path, Path]:
        """The directory and its database file, after checking the directory is one."""
        assert self.directory is not None
        path = self.directory
        try:
            if path.exists() and not path.is_dir():
                raise CacheCorruptError(path, NotADirectoryError("not a directory"), file=path)
        except OSError as error:
            raise os_error(path, error, writing=self.writes) from error
        return path, path / DB_NAME

    def _open_reader(self) -> ReadOnlyDatabase | None:
        """The database opened read-only, on first need; None while it does not exist
        (looked for again next time, since another process may create it)."""
        if self._reader is not None and self._reader_pid == os.getpid():
            return self._reader
        if self.directory is None:
            return None
        with self._open_lock:
            if self._reader_pid != os.getpid():
                self._reader = None  # a forked child: its parent's connection is not its own
            if self._reader is not None:
                return self._reader
            path, db = self._database()
            try:
                if not db.exists():
                    return None
            except OSError as error:
                raise os_error(path, error, writing=False) from error
            reader = ReadOnlyDatabase(db, self._timeout_s)
            # A writing mode checked the file when it opened it for writing.
            problem = reader.quick_check() if self._writer is None else None
            if problem is not None:
                reader.close()
                raise CacheCorruptError(path, problem, file=db)
            self._reader, self._reader_pid = reader, os.getpid()
            return reader

    def _drop_reader(self) -> None:
        """Close the read-only connection (the caller holds `_open_lock`)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _open_writer(self, *, create: bool) -> Writer | None:
        """The diskcache, opened on first need; None while there is nothing to read.

        Without `create`, a missing directory or database is an empty cache and is left
        missing (it is checked again next time, since another process may create it).
        """
        if self._writer is not None:
            return self._writer
        if self.directory is None or self.mode in ("off", "replay"):
            return None
        with self._open_lock:
            if self._writer is not None:
                return self._writer
            path, db = self._database()
            try:
                if db.exists():
                    moved = move_aside(db, self._timeout_s)
                    if moved is not None:
                        self.recovered.append(moved)
                        self._drop_reader()  # it would read the file moved aside
                if not create and not db.exists():
                    return None
                writer = open_store(path, self._timeout_s)
            except sqlite3.Error as error:
                raise database_error(path, error, writing=True) from error
            except OSError as error:
                raise os_error(path, error, writing=True) from error
            self._writer = writer
            self._write_blocked = False
            return self._writer

    # -- reading and writing -------------------------------------------------------

    def _decode(self, key: str, value: object) -> tuple[CacheEntry | None, str]:
        """The entry stored as `value` under `key`, or None and why it is unusable."""
        if not isinstance(value, str):
            return None, "it is not stored as JSON text"
        try:
            entry = CacheEntry.model_validate_json(value)
        except ValidationError as error:
            return None, f"it is not a cache entry ({first_error(error)})"
        except ValueError:  # numbers too long for Python to read, and the like
            return None, "it is not a cache entry"
        if entry.key != key:
            return None, "it is stored under another entry's key"
        problem = entry_problem(entry)
        if problem is not None:
            return None, problem
        return entry, ""

    def get(self, key: str) -> CacheEntry | None:
        """The entry stored under `key`, or None on a miss.

        In a mode that does not read (refresh, off) this returns None and counts nothing.
        Raises `CacheCorruptError` when the database itself cannot be read, and in replay
        mode `CacheEntryCorruptError` for an entry that cannot be served.
        """
        if not self.reads:
            return None
        if self._pending:
            with self._pending_lock:
                waiting = self._pending.get(key) if self._pending else None
            if waiting is not None:
                self._count(hit=True)
                return waiting
        source = self._reads_from()
        value = source.get(key) if source is not None else None
        if value is None:
            self._count()
            return None
        entry, problem = self._decode(key, value)
        if entry is None:
            self._count(corrupt=True)
            if self.mode == "replay":
                assert self.directory is not None
                raise CacheEntryCorruptError(self.directory, key, problem)
            return None
        self._count(hit=True)
        return entry

    def put(self, entry: CacheEntry, *, checked: bool = False) -> None:
        """Store `entry` under its key, replacing any earlier answer; no-op unless `writes`.

        Raises ValueError if `entry.key` is not the hash of `entry.fields` (it could never
        be found again) or its stored answer is not what its raw text reads as (it would
        never be served); TimeoutError if another process holds the lock too long;
        `CacheFullError` when the disk is full. `checked=True` skips the checks, for an
        answer just parsed under a key just computed from its fields (`keyed_fields`).
        Under `deferred_writes` the entry is stored with the next batch.
        """
        if not self.writes:
            return
        if not checked:
            if not entry.is_consistent():
                raise ValueError(
                    f"cache entry key {entry.key} is not the hash of its fields; build it "
                    "with cache_key(fields) or CacheEntry.for_fields"
                )
            problem = entry_problem(entry)
            if problem is not None:
                raise ValueError(f"cache entry {entry.key[:16]} would never be served: {problem}")
        with self._pending_lock:
            pending = self._pending
            if pending is not None:
                pending[entry.key] = entry
        if pending is None:
            self._write([entry])
        elif len(pending) >= self._pending_max:
            self.flush()

    @contextmanager
    def deferred_writes(self, max_entries: int = 64) -> Iterator[None]:
        """Store written entries in batches of `max_entries`, one transaction each.

        A batch run writes hundreds of answers a second; one SQLite transaction per answer
        costs more CPU than the rest of the bookkeeping. Inside this block `put` keeps
        entries in memory (where `get` finds them too) until `max_entries` are waiting or
        `flush()` is called; leaving the block stores the rest, also on an exception. A
        process killed inside the block loses the answers not yet flushed (they are asked
        again next run), never an entry already stored. Any thread may `put` and `flush`;
        inside a block that is already on, this one changes nothing.
        """
        with self._pending_lock:
            nested = self._pending is not None
            if not nested:
                self._pending, self._pending_max = {}, max(1, max_entries)
        if nested:
            yield
            return
        try:
            yield
        finally:
            try:
                self.flush()
            finally:
                with self._pending_lock:
                    self._pending = None

    def flush(self) -> None:
        """Store the entries `deferred_writes` holds, in one transaction; no-op without."""
        with self._pending_lock:
            if not self._pending:
                return
            entries = list(self._pending.values())
            self._pending.clear()
        self._write(entries)

    def _write(self, entries: list[CacheEntry]) -> None:
        writer = self._open_writer(create=True)
        assert writer is not None  # a writing mode always has a directory
        texts = [(entry.key, entry.model_dump_json()) for entry in entries]
        with writer.errors(writing=True):
            writer.put_texts(texts)

    # -- inspection ------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of stored entries (0 in mode off or before anything was stored)."""
        source = self._reads_from()
        return source.count() if source is not None else 0

    def keys(self) -> Iterator[str]:
        """The stored keys, oldest first (none in mode off); any mode may inspect."""
        source = self._reads_from()
        if source is not None:
            yield from source.keys()

    def entries(self) -> Iterator[CacheEntry]:
        """The stored entries that can be served, oldest first; the others are skipped.

        For export and inspection: does not change `hits` or `misses`, but counts the
        corrupt entries it skips, and raises nothing for them, in any mode.
        """
        source = self._reads_from()
        if source is None:
            return
        for key in list(source.keys()):
            value = source.get(key)
            if value is None:  # removed by another process meanwhile
                continue
            entry, _ = self._decode(key, value)
            if entry is None:
                with self._count_lock:
                    self._corrupt += 1
                continue
            yield entry

    # -- maintenance -------------------------------------------------------------------

    def _maintained(self) -> Writer | None:
        if self.mode == "replay":
            raise ValueError("replay mode never changes the cache; open it in mode 'rw'")
        return self._open_writer(create=False)

    def delete(self, key: str) -> bool:
        """Remove the entry under `key`; whether there was one. A writing mode may."""
        writer = self._maintained()
        if writer is None:
            return False
        with writer.errors(writing=True):
            removed: bool = writer.store.delete(key, retry=True)
        return removed

    def clear(self) -> int:
        """Remove every entry; how many there were. The directory stays."""
        writer = self._maintained()
        if writer is None:
            return 0
        with writer.errors(writing=True):
            count: int = writer.store.clear(retry=True)
        return count

    def prune(self, older_than_s: float, *, now: float | None = None) -> int:
        """Remove entries created more than `older_than_s` seconds ago, and those that
        cannot be served. Returns how many were removed."""
        if self._maintained() is None:
            return 0
        source = self._reads_from()
        if source is None:
            return 0
        cutoff = (time.time() if now is None else now) - older_than_s
        removed = 0
        for key in list(source.keys()):
            value = source.get(key)
            if value is None:
                continue
            entry, _ = self._decode(key, value)
            if entry is None or entry.created_at < cutoff:
                removed += self.delete(key)
        return removed

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the database; the cache reopens by itself if used again."""
        with self._open_lock:
            writer, self._writer = self._writer, None
            reader, self._reader = self._reader, None
        if writer is not None:
            writer.store.close()
        if reader is not None:
            reader.close()

    def __enter__(self) -> JudgeCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
