"""The judge-call cache: one entry per judge call, keyed by everything that shapes its answer.

A key is the SHA-256 of the canonical JSON of the call's *key fields* (SPEC, "Cache
keys"): kind, protocol version, template hash, judge model, sampling parameters, prompt,
reference and, for a pass, the canonical rubric and both responses in slot order. Two
calls with the same fields would send the same request, so the stored answer can stand in
for a new one. API keys and headers never enter a key or an entry.

Entries live in a diskcache (SQLite) directory, stored as JSON text rather than pickles,
so that a cache checked into a repository or shared between machines can be read with
any SQLite tool and loading it never runs code. SQLite's locking makes the directory safe
for several threads and several processes (pytest-xdist workers) at once.

Durability: every entry is written in one SQLite transaction, so a writer killed midway
(SIGKILL, a CI runner torn down) leaves the old entry or the new one, never part of one;
an entry is also checked against its key when read, so a damaged one is a miss, never an
answer. A cache file that SQLite cannot read is found when the cache opens (a quick
integrity check): in a writing mode it is moved aside to `cache.db.corrupt-<time>-<pid>`
and a fresh cache is started (`JudgeCache.recovered` says so); in replay mode, which must
not silently lose its answers, it is a `CacheCorruptError` naming the file and the fix.

Modes:

- ``rw``: read hits, write new answers (the default).
- ``replay``: read only; a miss is the caller's problem (usually a test error). The
  directory is never created or written by a lookup.
- ``refresh``: never read, always write: re-ask the judge and overwrite.
- ``off``: no disk access at all; the directory may be None.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal

import diskcache  # type: ignore[import-untyped]  # diskcache ships no type information
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .models import Usage

CacheMode = Literal["rw", "replay", "refresh", "off"]
CACHE_MODES: tuple[CacheMode, ...] = ("rw", "replay", "refresh", "off")

#: The SQLite file diskcache keeps inside the cache directory.
DB_NAME: Final = "cache.db"
#: Seconds a writer waits for another process's lock before giving up.
DEFAULT_TIMEOUT_S: Final = 60.0

#: Sampling parameters that are floats by nature: an int value (``temperature=0``) is
#: stored as a float so that ``0`` and ``0.0`` give the same key.
_FLOAT_PARAMS: Final = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})
#: Sampling parameter names that are known not to be credentials.
_PLAIN_SAMPLING: Final = (
    frozenset({"temperature", "top_p", "max_tokens", "seed", "structured_output"}) | _FLOAT_PARAMS
)
#: Name parts that mark a value as a credential (matched per snake_case word).
_SECRET_WORDS: Final = frozenset(
    "apikey auth authorization bearer cookie cookies credential credentials header headers "
    "passwd password secret token".split()
)
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")


class CacheCorruptError(ValueError):
    """The cache cannot be read as a cache (damaged, or not a cache at all).

    Raised in replay mode instead of silently starting over, because a damaged cache
    would otherwise look like a run where the judge was never asked anything; and for
    damage found after the cache was opened (the next run's integrity check moves the
    file aside). `path` is the cache directory, `file` the damaged file.
    """

    def __init__(self, path: Path, cause: BaseException | str, file: Path | None = None) -> None:
        self.path = path
        self.file = file if file is not None else path / DB_NAME
        why = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        message = (
            f"judge cache file {self.file} is unreadable or corrupted ({why}); delete it "
            "(a run with --judge-cache=rw starts a fresh cache and moves a damaged file "
            "aside by itself) or restore it with `rubric-judge cache import FILE.jsonl`; "
            "or run with --judge-cache=off"
        )
        super().__init__(message)


# -- keys ----------------------------------------------------------------------------


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


def canonical_json(value: object) -> str:
    """The one JSON spelling of `value` that keys are computed from.

    Sorted keys, no whitespace, UTF-8 kept as is, NaN and infinity refused: the same data
    always gives the same text, on every machine and Python version.
    Raises TypeError for values JSON cannot hold and ValueError for NaN or infinity.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def cache_key(fields: Mapping[str, object]) -> str:
    """The SHA-256 hex digest of the canonical JSON of `fields`."""
    return hashlib.sha256(canonical_json(dict(fields)).encode("utf-8")).hexdigest()


def _looks_secret(name: str) -> bool:
    """Whether a parameter name names a credential (``api_key``, ``Authorization``, ...).

    Matched per word so that ``max_tokens`` is not mistaken for a ``token``.
    """
    words = _WORD_SPLIT.split(_CAMEL_BOUNDARY.sub("_", name).lower())
    if any(word in _SECRET_WORDS for word in words):
        return True
    return "_api_key_" in "_" + "_".join(words) + "_"


def _refuse_secrets(where: str, value: object, path: str = "") -> None:
    """Raise ValueError if `value` holds a credential-like name or a bearer string."""
    if isinstance(value, Mapping):
        for name, item in value.items():
            dotted = f"{path}.{name}" if path else str(name)
            if _looks_secret(str(name)):
                raise ValueError(
                    f"{where} parameter {dotted!r} looks like a credential; API keys and "
                    "headers are never part of a cache key"
                )
            _refuse_secrets(where, item, dotted)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_secrets(where, item, f"{path}[{index}]")
    elif isinstance(value, str) and value[:7].lower() == "bearer ":
        raise ValueError(
            f"{where} parameter {path!r} holds a bearer token; credentials are never part "
            "of a cache key"
        )


def _sampling(sampling: Mapping[str, object]) -> dict[str, object]:
    """Sampling parameters with float-natured ints made floats (see `_FLOAT_PARAMS`)."""
    result: dict[str, object] = {}
    for name, value in sampling.items():
        if name in _FLOAT_PARAMS and isinstance(value, int) and not isinstance(value, bool):
            result[name] = float(value)
        else:
            result[name] = value
    return result


def key_fields(**fields: Any) -> dict[str, object]:
    """The key fields alone; see `keyed_fields` for the arguments."""
    return keyed_fields(**fields)[1]


def keyed_fields(
    *,
    kind: Literal["rubric", "pass", "grade"],
    protocol_version: str,
    template_hash: str,
    model: str,
    sampling: Mapping[str, object],
    prompt: str,
    reference: str | None,
    rubric: list[dict[str, object]] | None = None,
    response_slot_a: str | None = None,
    response_slot_b: str | None = None,
    extra: Mapping[str, object] | None = None,
) -> tuple[str, dict[str, object]]:
    """The cache key of one judge call and its fields: everything that shapes the answer,
    as plain JSON data (SPEC, "Cache keys"). The key is `cache_key(fields)`, computed from
    the same canonical text in one go.

    `sampling` holds temperature, max_tokens, top_p, seed and whether structured output
    is on. A rubric call never sees responses, so it takes no rubric or responses; a pass
    needs the canonical rubric (`Rubric.canonical()`) and both responses in slot order.
    `extra` holds fields added later (a sample index, rubric size limits); it appears
    under ``"extra"`` only when given, so existing keys stay valid.

    The fields are exactly what `json.loads(canonical_json(...))` gives back, so an entry
    read from disk hashes to the same key. Raises ValueError for a credential-looking
    parameter, a value JSON cannot hold, or a rubric/response that does not fit `kind`.
    """
    if kind == "rubric":
        if rubric is not None or response_slot_a is not None or response_slot_b is not None:
            raise ValueError(
                "a rubric call never sees a rubric or responses; pass them only for kind='pass'"
            )
    elif kind == "pass":
        if rubric is None or response_slot_a is None or response_slot_b is None:
            raise ValueError("a pass needs the rubric and both responses in slot order")
    elif kind == "grade":
        if rubric is None or response_slot_a is None or response_slot_b is not None:
            raise ValueError("a grade needs the rubric and exactly one response (slot A)")
    else:
        raise ValueError(f"invalid cache key kind {kind!r}: expected 'rubric', 'pass' or 'grade'")
    if not (
        sampling.keys() <= _PLAIN_SAMPLING
        and not any(isinstance(v, str) for v in sampling.values())
    ):
        _refuse_secrets("sampling", sampling)  # (the judge's own parameters need no scan)
    fields: dict[str, object] = {
        "kind": kind,
        "protocol_version": protocol_version,
        "template_hash": template_hash,
        "model": model,
        "sampling": _sampling(sampling),
        "prompt": prompt,
        "reference": reference,
    }
    if kind == "pass":
        fields["rubric"] = rubric
        fields["response_slot_a"] = response_slot_a
        fields["response_slot_b"] = response_slot_b
    elif kind == "grade":
        fields["rubric"] = rubric
        fields["response_slot_a"] = response_slot_a
    try:
        if extra is not None:
            _refuse_secrets("extra", extra)
            fields["extra"] = json.loads(canonical_json(dict(extra)))  # tuples become lists
        if rubric is not None and not _plain_rubric(rubric):
            fields["rubric"] = json.loads(canonical_json(rubric))
        if not _plain_rubric([fields["sampling"]]):
            fields["sampling"] = json.loads(canonical_json(fields["sampling"]))
        text = canonical_json(fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cache key fields must be finite JSON data: {exc}") from exc
    # Every value is now a str, None, a JSON scalar, or plain lists and dicts of them, so
    # `fields` equals json.loads(text) without reading it back.
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), fields


def _plain_rubric(rubric: object) -> bool:
    """Whether `rubric` is a list of dicts of str keys and JSON scalars (as `canonical()`
    gives), which JSON reads back as it is (also used for the sampling dict)."""
    return isinstance(rubric, list) and all(
        isinstance(item, dict)
        and all(
            isinstance(name, str) and (value is None or type(value) in _SCALARS)
            for name, value in item.items()
        )
        for item in rubric
    )


_SCALARS: Final = (str, int, float, bool)


# -- entries -------------------------------------------------------------------------


class CacheEntry(BaseModel):
    """One stored judge call: the raw answer, what it parsed to, and what it cost.

    `fields` are the key fields the entry was stored under, kept so that a cache can be
    inspected and so that a damaged entry is detected: `key` must be their hash.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=r"^[0-9a-f]{64}$")
    fields: dict[str, object]
    raw: str
    parsed: dict[str, object]
    usage: Usage = Usage()
    latency_s: float = 0.0
    created_at: float = Field(default_factory=time.time)
    model: str = ""

    @classmethod
    def for_fields(
        cls,
        fields: Mapping[str, object],
        *,
        raw: str,
        parsed: Mapping[str, object],
        usage: Usage | None = None,
        latency_s: float = 0.0,
        model: str = "",
    ) -> CacheEntry:
        """An entry whose key is computed from `fields`, stamped with the current time."""
        return cls(
            key=cache_key(fields),
            fields=dict(fields),
            raw=raw,
            parsed=dict(parsed),
            usage=usage if usage is not None else Usage(),
            latency_s=latency_s,
            model=model,
        )

    def is_consistent(self) -> bool:
        """Whether `key` is the hash of `fields`: false for a damaged or hand-edited entry."""
        try:
            return cache_key(self.fields) == self.key
        except (TypeError, ValueError):
            return False


# -- storage -------------------------------------------------------------------------


class _Foreign:
    """Marks a stored key or value that this cache did not write as text (e.g. a pickle)."""


_FOREIGN: Final = _Foreign()


class _TextDisk(diskcache.Disk):  # type: ignore[misc]  # diskcache.Disk is untyped
    """A diskcache serializer that only writes text and never unpickles.

    diskcache pickles anything that is not a str, int, float or bytes, and unpickles it on
    read; a cache directory from elsewhere could then run code. Here a non-text key or
    value reads back as `_FOREIGN`, which the cache treats as a corrupt entry.
    """

    def get(self, key: object, raw: bool) -> object:
        if not raw:
            return _FOREIGN
        return super().get(key, raw)

    def store(self, value: object, read: bool, key: object = diskcache.core.UNKNOWN) -> object:
        if read or not isinstance(value, str):
            raise TypeError("the judge cache stores JSON text only")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: object, read: bool) -> object:
        if read or mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_TEXT):
            return _FOREIGN
        return super().fetch(mode, filename, value, read)


def _is_lock_error(exc: BaseException) -> bool:
    """Whether an SQLite error means "busy", which is not damage."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def check_database(db: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> str | None:
    """None when the SQLite file `db` passes a quick integrity check, else what is wrong.

    A file that is busy (another process is writing) is not damaged: that counts as fine.
    """
    try:
        connection = sqlite3.connect(str(db), timeout=timeout_s)
    except sqlite3.DatabaseError as exc:
        return None if _is_lock_error(exc) else f"{type(exc).__name__}: {exc}"
    try:
        rows = connection.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return None if _is_lock_error(exc) else f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    problems = [str(row[0]) for row in rows if row and row[0] != "ok"]
    return "; ".join(problems[:3]) or None


class _DirectoryLock:
    """An advisory lock on a file in the cache directory, across processes (POSIX flock).

    Serializes the rare move-aside of a damaged file, so that two processes that find the
    same damage do not also move aside the fresh file the first one started. Where flock
    does not exist (Windows) it does nothing; the move-aside is then best effort.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def __enter__(self) -> _DirectoryLock:
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


class JudgeCache:
    """The judge-call cache of one directory, in one of the modes in `CACHE_MODES`.

    Nothing touches the disk until the first lookup or write: a `Judge` given a cache
    directory it never uses leaves no files. A lookup never creates the directory; the
    first write does (with its parents). Safe to share between threads; several processes
    may open the same directory.

    `hits`, `misses` and `corrupt` count lookups made through `get`. A corrupt entry (not
    JSON, not a valid `CacheEntry`, or stored under another key) counts as corrupt and as
    a miss, and is never served.
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
        self._store: diskcache.Cache | None = None
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

    def _open(self, *, create: bool) -> diskcache.Cache | None:
        """The diskcache, opened on first need; None while there is nothing to read.

        Without `create`, a missing directory or database is an empty cache and is left
        missing (it is checked again next time, since another process may create it).
        """
        if self._store is not None:
            return self._store
        if self.directory is None or self.mode == "off":
            return None
        with self._open_lock:
            if self._store is not None:
                return self._store
            path = self.directory
            if path.exists() and not path.is_dir():
                raise CacheCorruptError(path, NotADirectoryError("not a directory"), file=path)
            db = path / DB_NAME
            if db.exists():
                self._check_or_recover(db)
            if not create and not db.exists():
                return None
            try:
                store = diskcache.Cache(
                    str(path),
                    timeout=self._timeout_s,
                    disk=_TextDisk,
                    eviction_policy="none",
                    size_limit=2**40,
                    # Keep every entry inside SQLite, whose transactions make writes atomic.
                    disk_min_file_size=2**30,
                )
            except sqlite3.DatabaseError as exc:
                if _is_lock_error(exc):
                    raise TimeoutError(f"judge cache at {path} stayed locked: {exc}") from exc
                raise CacheCorruptError(path, exc) from exc
            except OSError as exc:
                raise CacheCorruptError(path, exc) from exc
            self._store = store
            return store

    def _check_or_recover(self, db: Path) -> None:
        """Make sure `db` is readable: move a damaged file aside (writing modes) or raise."""
        problem = check_database(db, self._timeout_s)
        if problem is None:
            return
        if not self.writes:
            raise CacheCorruptError(db.parent, problem, file=db)
        with _DirectoryLock(db.parent / "recovery.lock"):
            if not db.exists() or check_database(db, self._timeout_s) is None:
                return  # another process moved it aside and started afresh meanwhile
            stamp = time.strftime("%Y%m%d-%H%M%S")
            aside = db.with_name(f"{db.name}.corrupt-{stamp}-{os.getpid()}")
            os.replace(db, aside)
            for suffix in ("-wal", "-shm"):
                side = db.with_name(db.name + suffix)
                if side.exists():
                    os.replace(side, aside.with_name(aside.name + suffix))
        self.recovered.append(
            f"judge cache file {db} was damaged ({problem}); moved aside to {aside.name} "
            "and started a fresh cache"
        )

    def _db_error(self, exc: sqlite3.DatabaseError) -> Exception:
        """The exception to raise for an SQLite error met after opening."""
        assert self.directory is not None
        if _is_lock_error(exc):
            return TimeoutError(f"judge cache at {self.directory} stayed locked: {exc}")
        return CacheCorruptError(self.directory, exc)

    # -- reading and writing -------------------------------------------------------

    def _decode(self, key: str, value: object) -> CacheEntry | None:
        """The entry stored as `value` under `key`, or None if it is unusable."""
        if not isinstance(value, str):
            return None
        try:
            entry = CacheEntry.model_validate_json(value)
        except ValidationError:
            return None
        if entry.key != key or not entry.is_consistent():
            return None
        return entry

    def get(self, key: str) -> CacheEntry | None:
        """The entry stored under `key`, or None on a miss.

        In a mode that does not read (refresh, off) this returns None and counts nothing.
        Raises CacheCorruptError when the database itself cannot be read.
        """
        if not self.reads:
            return None
        if self._pending:
            with self._pending_lock:
                waiting = self._pending.get(key) if self._pending else None
            if waiting is not None:
                self._count(hit=True)
                return waiting
        store = self._open(create=False)
        if store is None:
            self._count()
            return None
        try:
            value = store.get(key, default=None, retry=True)
        except sqlite3.DatabaseError as exc:
            raise self._db_error(exc) from exc
        if value is None:
            self._count()
            return None
        entry = self._decode(key, value)
        if entry is None:
            self._count(corrupt=True)
            return None
        self._count(hit=True)
        return entry

    def put(self, entry: CacheEntry, *, checked: bool = False) -> None:
        """Store `entry` under its key, replacing any earlier answer; no-op unless `writes`.

        Raises ValueError if `entry.key` is not the hash of `entry.fields` (it could never
        be found again), and TimeoutError if another process holds the lock too long.
        `checked=True` skips that check, for a key just computed from the fields
        (`keyed_fields`). Under `deferred_writes` the entry is stored with the next batch.
        """
        if not self.writes:
            return
        if not checked and not entry.is_consistent():
            raise ValueError(
                f"cache entry key {entry.key} is not the hash of its fields; build it with "
                "cache_key(fields) or CacheEntry.for_fields"
            )
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
        store = self._open(create=True)
        assert store is not None  # a writing mode always has a directory
        try:
            with store.transact(retry=False):
                for entry in entries:
                    store.set(entry.key, entry.model_dump_json(), retry=False)
        except diskcache.Timeout as exc:
            raise TimeoutError(f"judge cache at {self.directory} stayed locked") from exc
        except sqlite3.DatabaseError as exc:
            raise self._db_error(exc) from exc

    # -- inspection ------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of stored entries (0 in mode off or before anything was stored)."""
        store = self._open(create=False)
        if store is None:
            return 0
        try:
            count: int = len(store)
        except sqlite3.DatabaseError as exc:
            raise self._db_error(exc) from exc
        return count

    def keys(self) -> Iterator[str]:
        """The stored keys, oldest first (none in mode off); any mode may inspect."""
        store = self._open(create=False)
        if store is None:
            return
        try:
            for key in store.iterkeys():
                if isinstance(key, str):
                    yield key
        except sqlite3.DatabaseError as exc:
            raise self._db_error(exc) from exc

    def entries(self) -> Iterator[CacheEntry]:
        """The stored entries that are intact, oldest first; corrupt ones are skipped.

        For export and inspection: does not change `hits` or `misses`, but counts the
        corrupt entries it skips.
        """
        store = self._open(create=False)
        if store is None:
            return
        for key in self.keys():
            try:
                value = store.get(key, default=None, retry=True)
            except sqlite3.DatabaseError as exc:
                raise self._db_error(exc) from exc
            if value is None:  # removed by another process meanwhile
                continue
            entry = self._decode(key, value)
            if entry is None:
                with self._count_lock:
                    self._corrupt += 1
                continue
            yield entry

    # -- maintenance -------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        """Remove the entry under `key`; whether there was one. Any mode but off may."""
        store = self._open(create=False)
        if store is None:
            return False
        try:
            removed: bool = store.delete(key, retry=True)
        except sqlite3.DatabaseError as exc:
            raise self._db_error(exc) from exc
        return removed

    def clear(self) -> int:
        """Remove every entry; how many there were. The directory stays."""
        store = self._open(create=False)
        if store is None:
            return 0
        try:
            count: int = store.clear(retry=True)
        except sqlite3.DatabaseError as exc:
            raise self._db_error(exc) from exc
        return count

    def prune(self, older_than_s: float, *, now: float | None = None) -> int:
        """Remove entries created more than `older_than_s` seconds ago (and damaged ones).

        Returns how many were removed.
        """
        store = self._open(create=False)
        if store is None:
            return 0
        cutoff = (time.time() if now is None else now) - older_than_s
        removed = 0
        for key in list(self.keys()):
            try:
                value = store.get(key, default=None, retry=True)
            except sqlite3.DatabaseError as exc:
                raise self._db_error(exc) from exc
            entry = self._decode(key, value) if value is not None else None
            if (value is not None and entry is None) or (
                entry is not None and entry.created_at < cutoff
            ):
                removed += self.delete(key)
        return removed

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the database; the cache reopens by itself if used again."""
        with self._open_lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    def __enter__(self) -> JudgeCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
