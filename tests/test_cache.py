"""The judge-call cache: key stability, modes, persistence, concurrency and damage.

Every test uses a real SQLite-backed cache in `tmp_path`; nothing is mocked.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache  # type: ignore[import-untyped]
import pytest
from cache_answers import pass_text, rubric_of

from pytest_rubric_judge.cache import (
    CACHE_MODES,
    CacheCorruptError,
    CacheEntry,
    CacheMode,
    JudgeCache,
    cache_key,
    canonical_json,
    key_fields,
    keyed_fields,
    validate_mode,
)
from pytest_rubric_judge.errors import JudgeError
from pytest_rubric_judge.models import Usage
from pytest_rubric_judge.parsing import parse_pass

RUBRIC: list[dict[str, object]] = [
    {"name": "accuracy", "description": "Facts are right.", "weight": 0.6, "type": "scale"},
    {"name": "clarity", "description": "Easy to read.", "weight": 0.4, "type": "scale"},
]


def pass_kwargs() -> dict[str, Any]:
    """Keyword arguments of `key_fields` for a typical pass."""
    return {
        "kind": "pass",
        "protocol_version": "1",
        "template_hash": "0123456789abcdef",
        "model": "judge-model",
        "sampling": {
            "temperature": 0.0,
            "max_tokens": 1024,
            "top_p": 1.0,
            "seed": 1234,
            "structured_output": False,
        },
        "prompt": "How many student newspapers are there?",
        "reference": "It varies.",
        "rubric": [dict(c) for c in RUBRIC],
        "response_slot_a": "Three.",
        "response_slot_b": "It depends on the university.",
    }


def make_entry(index: int = 0, *, note: str | None = None, **changes: Any) -> CacheEntry:
    """A consistent entry for the pass on prompt number `index`, whose raw answer (with
    `note` as its overall justification) reads back as its stored answer."""
    kwargs = pass_kwargs()
    kwargs["prompt"] = f"prompt {index}"
    kwargs.update(changes)
    fields = key_fields(**kwargs)
    raw = pass_text("A>B", {"accuracy": (4, 2), "clarity": (4, 3)}, overall=note or f"#{index}")
    return CacheEntry.for_fields(
        fields,
        raw=raw,
        parsed=parse_pass(raw, rubric_of(RUBRIC)).model_dump(mode="json"),
        usage=Usage(prompt_tokens=100, completion_tokens=20, total_tokens=120),
        latency_s=0.25,
        model="judge-model",
    )


def note_of(entry: CacheEntry | None) -> object:
    """The overall justification of a stored pass (None for no entry)."""
    return entry.parsed["overall_justification"] if entry is not None else None


# -- keys ----------------------------------------------------------------------------

GOLDEN_JSON = (
    '{"kind":"pass","model":"judge-1","prompt":"Combien de journaux étudiants ?",'
    '"protocol_version":"1","reference":null,"response_slot_a":"Deux.",'
    '"response_slot_b":"Trois.","rubric":[{"description":"Facts.","name":"accuracy",'
    '"type":"scale","weight":1.0}],"sampling":{"max_tokens":512,"seed":7,'
    '"structured_output":false,"temperature":0.0,"top_p":1.0},'
    '"template_hash":"0123456789abcdef"}'
)
GOLDEN_KEY = "0ff52fb4816cc8090e5cbc18c988982371db12f82ed42cb0a355f095cbffad7f"


def golden_fields() -> dict[str, object]:
    return key_fields(
        kind="pass",
        protocol_version="1",
        template_hash="0123456789abcdef",
        model="judge-1",
        sampling={
            "top_p": 1.0,
            "temperature": 0,
            "seed": 7,
            "max_tokens": 512,
            "structured_output": False,
        },
        prompt="Combien de journaux étudiants ?",
        reference=None,
        rubric=[{"name": "accuracy", "description": "Facts.", "weight": 1.0, "type": "scale"}],
        response_slot_a="Deux.",
        response_slot_b="Trois.",
    )


def test_golden_key_is_sha256_of_hand_written_canonical_json() -> None:
    fields = golden_fields()
    assert canonical_json(fields) == GOLDEN_JSON
    assert hashlib.sha256(GOLDEN_JSON.encode("utf-8")).hexdigest() == GOLDEN_KEY
    assert cache_key(fields) == GOLDEN_KEY


def test_keyed_fields_gives_the_key_of_its_fields() -> None:
    key, fields = keyed_fields(**pass_kwargs())
    assert fields == key_fields(**pass_kwargs())
    assert key == cache_key(fields)


def test_key_ignores_dict_order() -> None:
    fields = key_fields(**pass_kwargs())
    sampling = fields["sampling"]
    assert isinstance(sampling, dict)
    reordered = {name: fields[name] for name in reversed(list(fields))}
    reordered["sampling"] = {name: sampling[name] for name in reversed(list(sampling))}
    assert list(reordered) != list(fields)
    assert cache_key(reordered) == cache_key(fields)

    kwargs = pass_kwargs()
    kwargs["sampling"] = dict(reversed(list(kwargs["sampling"].items())))
    kwargs["rubric"] = [dict(reversed(list(c.items()))) for c in RUBRIC]
    assert cache_key(key_fields(**kwargs)) == cache_key(fields)


def test_int_and_float_temperature_give_one_key() -> None:
    as_int = pass_kwargs()
    as_int["sampling"] = {**as_int["sampling"], "temperature": 0, "top_p": 1}
    assert cache_key(key_fields(**as_int)) == cache_key(key_fields(**pass_kwargs()))


def _set(name: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(kwargs: dict[str, Any]) -> None:
        kwargs[name] = value

    return change


def _sample(name: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(kwargs: dict[str, Any]) -> None:
        kwargs["sampling"] = {**kwargs["sampling"], name: value}

    return change


def _criterion(name: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(kwargs: dict[str, Any]) -> None:
        kwargs["rubric"][0][name] = value

    return change


def _swap(kwargs: dict[str, Any]) -> None:
    kwargs["response_slot_a"], kwargs["response_slot_b"] = (
        kwargs["response_slot_b"],
        kwargs["response_slot_a"],
    )


def _extra(kwargs: dict[str, Any]) -> None:
    kwargs["extra"] = {"sample": 1}


KEY_CHANGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "prompt": _set("prompt", "How many student newspapers are there? "),
    "reference": _set("reference", "It varies a lot."),
    "reference_none": _set("reference", None),
    "model": _set("model", "other-judge"),
    "temperature": _sample("temperature", 0.7),
    "max_tokens": _sample("max_tokens", 2048),
    "top_p": _sample("top_p", 0.9),
    "seed": _sample("seed", 1235),
    "structured": _sample("structured_output", True),
    "rubric_weight": _criterion("weight", 0.5),
    "rubric_description": _criterion("description", "Facts are correct."),
    "response_swap": _swap,
    "response_a": _set("response_slot_a", "Four."),
    "response_b": _set("response_slot_b", "Four."),
    "template_hash": _set("template_hash", "fedcba9876543210"),
    "protocol_version": _set("protocol_version", "2"),
    "extra": _extra,
}


@pytest.mark.parametrize("change", KEY_CHANGES.values(), ids=KEY_CHANGES.keys())
def test_key_changes_with_each_field(change: Callable[[dict[str, Any]], None]) -> None:
    base = cache_key(key_fields(**pass_kwargs()))
    kwargs = pass_kwargs()
    change(kwargs)
    assert cache_key(key_fields(**kwargs)) != base


def test_rubric_call_key_differs_from_pass_and_has_no_responses() -> None:
    kwargs = pass_kwargs()
    for name in ("rubric", "response_slot_a", "response_slot_b"):
        del kwargs[name]
    fields = key_fields(**{**kwargs, "kind": "rubric"})
    assert set(fields) == {
        "kind",
        "protocol_version",
        "template_hash",
        "model",
        "sampling",
        "prompt",
        "reference",
    }
    assert cache_key(fields) != cache_key(key_fields(**pass_kwargs()))


@pytest.mark.parametrize(
    "kwargs_change",
    [
        {"kind": "rubric"},  # a rubric call given responses
        {"rubric": None},
        {"response_slot_b": None},
        {"kind": "other"},
    ],
)
def test_key_fields_refuses_a_shape_that_does_not_fit_kind(kwargs_change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        key_fields(**{**pass_kwargs(), **kwargs_change})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1, 2}])
def test_key_fields_refuses_values_json_cannot_hold(value: object) -> None:
    with pytest.raises(ValueError, match="JSON"):
        key_fields(**{**pass_kwargs(), "sampling": {"temperature": value}})


@pytest.mark.parametrize(
    "secret",
    [
        {"api_key": "sk-123"},
        {"apiKey": "sk-123"},
        {"x-api-key": "sk-123"},
        {"Authorization": "Bearer sk-123"},
        {"headers": {"X-Trace": "1"}},
        {"extra_headers": {}},
        {"access_token": "abc"},
        {"token": "abc"},
        {"client": {"password": "hunter2"}},
        {"note": "Bearer sk-123"},
    ],
)
@pytest.mark.parametrize("where", ["sampling", "extra"])
def test_secrets_are_refused(where: str, secret: dict[str, object]) -> None:
    kwargs = pass_kwargs()
    if where == "sampling":
        kwargs["sampling"] = {**kwargs["sampling"], **secret}
    else:
        kwargs["extra"] = secret
    with pytest.raises(ValueError, match=r"credential|bearer"):
        key_fields(**kwargs)


def test_token_counts_are_not_mistaken_for_secrets() -> None:
    kwargs = pass_kwargs()
    kwargs["sampling"] = {**kwargs["sampling"], "maxTokens": 5, "max_completion_tokens": 5}
    kwargs["extra"] = {"author": "me", "keyboard": "qwerty"}
    sampling = key_fields(**kwargs)["sampling"]
    assert isinstance(sampling, dict) and "max_completion_tokens" in sampling


# -- modes -----------------------------------------------------------------------------


def test_modes_and_validation() -> None:
    assert CACHE_MODES == ("rw", "replay", "refresh", "off")
    assert validate_mode("replay") == "replay"
    with pytest.raises(ValueError, match="rw, replay, refresh, off"):
        validate_mode("read")
    with pytest.raises(ValueError, match="rw, replay, refresh, off"):
        JudgeCache("somewhere", "readwrite")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="directory"):
        JudgeCache(None, "rw")


@pytest.mark.parametrize(
    ("mode", "reads", "writes"),
    [("rw", True, True), ("replay", True, False), ("refresh", False, True), ("off", False, False)],
)
def test_reads_and_writes_per_mode(
    mode: CacheMode, reads: bool, writes: bool, tmp_path: Path
) -> None:
    cache = JudgeCache(tmp_path / "c", mode)
    assert (cache.reads, cache.writes) == (reads, writes)


def test_rw_reads_and_writes(tmp_path: Path) -> None:
    entry = make_entry()
    with JudgeCache(tmp_path / "c") as cache:
        assert cache.get(entry.key) is None
        cache.put(entry)
        assert cache.get(entry.key) == entry
        assert (cache.hits, cache.misses, cache.corrupt) == (1, 1, 0)
        assert len(cache) == 1
        assert list(cache.keys()) == [entry.key]
        assert list(cache.entries()) == [entry]


def test_replay_reads_only(tmp_path: Path) -> None:
    stored, new = make_entry(1), make_entry(2)
    with JudgeCache(tmp_path / "c", "rw") as cache:
        cache.put(stored)
    with JudgeCache(tmp_path / "c", "replay") as replay:
        assert replay.get(stored.key) == stored
        replay.put(new)
        assert replay.get(new.key) is None
        assert (replay.hits, replay.misses) == (1, 1)
    with JudgeCache(tmp_path / "c", "rw") as cache:
        assert list(cache.keys()) == [stored.key]


def test_replay_never_creates_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "missing" / "cache"
    with JudgeCache(directory, "replay") as replay:
        assert replay.get(make_entry().key) is None
        replay.put(make_entry())
        assert len(replay) == 0
        assert list(replay.entries()) == []
        assert replay.misses == 1
    assert not (tmp_path / "missing").exists()


def test_replay_sees_a_cache_created_after_it_first_looked(tmp_path: Path) -> None:
    entry = make_entry()
    replay = JudgeCache(tmp_path / "c", "replay")
    assert replay.get(entry.key) is None
    with JudgeCache(tmp_path / "c", "rw") as writer:
        writer.put(entry)
    assert replay.get(entry.key) == entry
    replay.close()


def test_refresh_writes_but_never_reads(tmp_path: Path) -> None:
    old = make_entry(note="old answer")
    new = make_entry(note="new answer")
    assert old.key == new.key
    with JudgeCache(tmp_path / "c", "rw") as cache:
        cache.put(old)
    with JudgeCache(tmp_path / "c", "refresh") as refresh:
        assert refresh.get(old.key) is None
        refresh.put(new)
        assert (refresh.hits, refresh.misses) == (0, 0)
    with JudgeCache(tmp_path / "c", "rw") as cache:
        stored = cache.get(old.key)
        assert note_of(stored) == "new answer"
        assert len(cache) == 1


def test_off_neither_reads_nor_writes(tmp_path: Path) -> None:
    entry = make_entry()
    for cache in (JudgeCache(None, "off"), JudgeCache(tmp_path / "c", "off")):
        cache.put(entry)
        assert cache.get(entry.key) is None
        assert len(cache) == 0
        assert list(cache.keys()) == []
        cache.close()
    assert not (tmp_path / "c").exists()


# -- persistence and storage -------------------------------------------------------------


def test_lazy_creation(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "cache"
    cache = JudgeCache(directory)
    assert cache.directory == directory
    assert cache.get(make_entry().key) is None
    assert len(cache) == 0
    assert not (tmp_path / "a").exists()
    cache.put(make_entry())
    assert (directory / "cache.db").is_file()
    cache.close()


def test_survives_reopen(tmp_path: Path) -> None:
    entry = make_entry()
    first = JudgeCache(tmp_path / "c")
    first.put(entry)
    first.close()
    with JudgeCache(str(tmp_path / "c")) as second:
        back = second.get(entry.key)
    assert back == entry
    assert (
        back is not None and back.usage.total_tokens == 120 and back.created_at == entry.created_at
    )


def test_entries_are_json_text_kept_inside_sqlite(tmp_path: Path) -> None:
    big = make_entry(note="x" * 90_000)
    with JudgeCache(tmp_path / "c") as cache:
        cache.put(big)
    stored = diskcache.Cache(str(tmp_path / "c"))
    try:
        assert CacheEntry.model_validate_json(stored.get(big.key)) == big
    finally:
        stored.close()
    names = {p.name for p in (tmp_path / "c").rglob("*") if p.is_file()}
    assert names <= {"cache.db", "cache.db-wal", "cache.db-shm"}


def test_put_refuses_an_entry_whose_key_is_not_its_fields_hash(tmp_path: Path) -> None:
    entry = make_entry()
    wrong = entry.model_copy(update={"key": make_entry(9).key})
    with JudgeCache(tmp_path / "c") as cache, pytest.raises(ValueError, match="hash"):
        cache.put(wrong)


def test_threads_share_one_cache(tmp_path: Path) -> None:
    entries = [make_entry(i) for i in range(20)]
    cache = JudgeCache(tmp_path / "c")
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for entry in entries[offset::4]:
                cache.put(entry)
            for entry in entries:
                cache.get(entry.key)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.hits + cache.misses == 80
    assert all(cache.get(entry.key) == entry for entry in entries)
    assert len(cache) == 20
    cache.close()


WORKERS = 4
PER_WORKER = 50
SHARED = 10


def _write_entries(directory: str, worker: int, barrier: Any) -> None:
    """One process of the concurrency test: 40 entries of its own, 10 shared with the others."""
    cache = JudgeCache(directory)
    barrier.wait(timeout=60)  # start writing together, so that the writes really overlap
    for i in range(PER_WORKER):
        index = i if i < SHARED else 1000 * (worker + 1) + i
        cache.put(make_entry(index, note=f"worker {worker} entry {i}"))
    cache.close()


def test_concurrent_writers_from_several_processes(tmp_path: Path) -> None:
    directory = str(tmp_path / "shared-cache")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    processes = [
        context.Process(target=_write_entries, args=(directory, worker, barrier))
        for worker in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    for process in processes:
        if process.is_alive():  # pragma: no cover - only when the test is about to fail
            process.terminate()
            process.join()
    assert [p.exitcode for p in processes] == [0] * WORKERS

    expected = WORKERS * (PER_WORKER - SHARED) + SHARED
    with JudgeCache(directory, "replay") as cache:
        assert len(cache) == expected
        assert len(list(cache.entries())) == expected
        for i in range(SHARED):
            shared = cache.get(make_entry(i).key)
            assert shared is not None
            assert note_of(shared) in {f"worker {w} entry {i}" for w in range(WORKERS)}
        for worker in range(WORKERS):
            for i in range(SHARED, PER_WORKER):
                own = cache.get(make_entry(1000 * (worker + 1) + i).key)
                assert note_of(own) == f"worker {worker} entry {i}"
        assert cache.corrupt == 0


# -- damage ----------------------------------------------------------------------------


class _Exploit:
    """Unpickling this creates a directory: proof that a pickle was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return (os.mkdir, (self.path,))


def _store_raw(directory: Path, key: str, value: object) -> None:
    """Write `value` under `key` with plain diskcache, bypassing JudgeCache."""
    raw = diskcache.Cache(str(directory))
    try:
        raw.set(key, value)
    finally:
        raw.close()


@pytest.mark.parametrize(
    "bad_value",
    [
        "not json at all",
        '{"key": "abc"}',
        "other entry",  # a valid entry, but stored under another key
        "edited fields",  # a valid entry whose fields no longer hash to its key
        b"\x00bytes",
        "pickle",
    ],
)
def test_corrupt_entry_is_a_miss(tmp_path: Path, bad_value: object) -> None:
    directory = tmp_path / "c"
    entry, intact = make_entry(), make_entry(5)
    with JudgeCache(directory) as cache:
        cache.put(intact)
    value: object = bad_value
    if bad_value == "other entry":
        value = intact.model_dump_json()
    elif bad_value == "edited fields":
        value = entry.model_copy(
            update={"fields": {**entry.fields, "prompt": "x"}}
        ).model_dump_json()
    elif bad_value == "pickle":
        value = {"exploit": _Exploit(str(tmp_path / "pwned"))}
        pickle.dumps(value)  # the exploit is a real pickle
    _store_raw(directory, entry.key, value)

    with JudgeCache(directory) as cache:
        assert cache.get(entry.key) is None
        assert (cache.hits, cache.misses, cache.corrupt) == (0, 1, 1)
        assert list(cache.entries()) == [intact]
        assert cache.corrupt == 2
        assert cache.get(intact.key) == intact
        cache.put(entry)  # a fresh answer replaces the damaged one
        assert cache.get(entry.key) == entry
    assert not (tmp_path / "pwned").exists()


def test_corrupt_database_in_replay_raises_with_file_and_fix(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "cache.db").write_bytes(b"this is not an sqlite database\n" * 200)
    cache = JudgeCache(directory, "replay")
    with pytest.raises(CacheCorruptError) as info:
        cache.get(make_entry().key)
    message = str(info.value)
    assert str(directory / "cache.db") in message
    assert "delete it" in message and "--judge-cache=off" in message
    assert info.value.path == directory and info.value.file == directory / "cache.db"
    assert isinstance(info.value, ValueError)  # as before it became a judge error
    assert isinstance(info.value, JudgeError) and info.value.kind == "cache_corrupt"


def test_replay_never_changes_the_cache(tmp_path: Path) -> None:
    entry = make_entry()
    with JudgeCache(tmp_path) as cache:
        cache.put(entry)
    with JudgeCache(tmp_path, "replay") as replay:
        for change in (lambda: replay.delete(entry.key), replay.clear, lambda: replay.prune(0)):
            with pytest.raises(ValueError, match="replay mode never changes the cache"):
                change()
        assert replay.get(entry.key) == entry


@pytest.mark.parametrize("mode", ["rw", "refresh"])
def test_corrupt_database_in_a_writing_mode_is_moved_aside(tmp_path: Path, mode: CacheMode) -> None:
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "cache.db").write_bytes(b"this is not an sqlite database\n" * 200)
    cache = JudgeCache(directory, mode)
    cache.put(make_entry())
    assert len(cache.recovered) == 1 and "moved aside" in cache.recovered[0]
    assert len(list(directory.glob("cache.db.corrupt-*"))) == 1
    cache.close()


def test_a_file_where_the_directory_should_be_raises(tmp_path: Path) -> None:
    path = tmp_path / "c"
    path.write_text("not a directory")
    with pytest.raises(CacheCorruptError, match="--judge-cache=off"):
        JudgeCache(path).put(make_entry())
    with pytest.raises(CacheCorruptError):
        JudgeCache(path, "replay").get(make_entry().key)


# -- deferred writes -----------------------------------------------------------------


def test_deferred_writes_are_found_at_once_and_stored_in_batches(tmp_path: Path) -> None:
    writer, reader = JudgeCache(tmp_path), JudgeCache(tmp_path)
    entries = [make_entry(i) for i in range(7)]
    with writer.deferred_writes(max_entries=3):
        for entry in entries[:2]:
            writer.put(entry)
        # Waiting in memory: this cache serves them, another process would not see them yet.
        assert writer.get(entries[0].key) == entries[0]
        assert reader.get(entries[0].key) is None
        writer.put(entries[2])  # the third fills a batch: stored in one transaction
        assert [reader.get(e.key) for e in entries[:3]] == entries[:3]
        writer.put(entries[3])
        writer.flush()
        assert reader.get(entries[3].key) == entries[3]
        for entry in entries[4:6]:
            writer.put(entry)
        assert reader.get(entries[5].key) is None
        writer.put(entries[6])
        assert reader.get(entries[6].key) == entries[6]
    # Leaving the block stores the rest; later puts are written at once.
    assert [reader.get(e.key) for e in entries] == entries
    late = make_entry(99)
    writer.put(late)
    assert reader.get(late.key) == late


def test_deferred_writes_are_stored_when_the_block_raises(tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path)
    entry = make_entry(1)
    with pytest.raises(KeyError), cache.deferred_writes():
        cache.put(entry)
        raise KeyError("stop")
    assert JudgeCache(tmp_path).get(entry.key) == entry


def test_a_put_still_checks_the_key_unless_told_it_was_just_computed(tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path)
    entry = make_entry(1)
    forged = entry.model_copy(update={"key": make_entry(2).key})
    with pytest.raises(ValueError, match="not the hash of its fields"):
        cache.put(forged)
    with cache.deferred_writes(), pytest.raises(ValueError, match="not the hash"):
        cache.put(forged)
    assert len(cache) == 0
