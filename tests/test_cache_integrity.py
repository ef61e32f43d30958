"""A stored answer is served only when it is what its raw judge text reads as.

SQLite checks its pages, and the cache checks that an entry's key is the hash of its key
fields; neither notices a stored verdict edited in place. Every test here edits a real
cache: bytes of `cache.db`, or a value written with plain diskcache beside the cache.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache  # type: ignore[import-untyped]
import pytest
from cache_answers import (
    CRITERIA,
    grade_entry,
    mixed_entries,
    pass_entry,
    pass_text,
    rubric_entry,
    rubric_text,
)
from pydantic import ValidationError

from pytest_rubric_judge.cache import (
    CacheCorruptError,
    CacheEntry,
    JudgeCache,
    answer_problem,
    check_database,
)
from pytest_rubric_judge.errors import JudgeError
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

pytest_plugins = ["pytester"]


def store(directory: Path, *entries: CacheEntry) -> None:
    with JudgeCache(directory) as cache:
        for entry in entries:
            cache.put(entry)


def edit_file(db: Path, old: bytes, new: bytes) -> None:
    """Replace the one occurrence of `old` in `db` by `new` (same length), in place."""
    assert len(old) == len(new)
    data = db.read_bytes()
    assert data.count(old) == 1, data.count(old)
    with db.open("r+b") as handle:
        handle.seek(data.index(old))
        handle.write(new)


def store_value(directory: Path, key: str, value: str) -> None:
    """Write `value` under `key` with plain diskcache, as a hand edit would."""
    raw = diskcache.Cache(str(directory), disk_min_file_size=2**30)
    try:
        raw.set(key, value)
    finally:
        raw.close()


# -- one flipped byte in cache.db ---------------------------------------------------------

# The stored entry is pydantic's compact JSON; the raw pass answer is JSON with spaces,
# stored as an escaped string inside it. So each pattern is found exactly once.
FLIPS = {
    "label_in_parsed": (b'"preference":"B>A"', b'"preference":"A>B"'),
    "label_in_raw": (b'\\"preference\\": \\"B>A\\"', b'\\"preference\\": \\"A>B\\"'),
    "score_in_parsed": (b'"score_a":2', b'"score_a":4'),
    "score_in_raw": (b'\\"score_A\\": 2', b'\\"score_A\\": 4'),
}


@pytest.mark.parametrize("flip", FLIPS.values(), ids=FLIPS.keys())
def test_one_flipped_byte_in_cache_db_is_never_served(
    tmp_path: Path, flip: tuple[bytes, bytes]
) -> None:
    entry, other = (
        pass_entry(1),
        pass_entry(2, preference="A>B", scores={"accuracy": (5, 1), "clarity": (5, 1)}),
    )
    store(tmp_path, entry, other)
    db = tmp_path / "cache.db"
    edit_file(db, *flip)
    assert check_database(db) is None  # SQLite sees nothing wrong

    with JudgeCache(tmp_path, "replay") as replay:
        with pytest.raises(CacheCorruptError) as info:
            replay.get(entry.key)
        assert replay.get(other.key) == other
        assert list(replay.entries()) == [other]
    error = info.value
    assert isinstance(error, JudgeError) and error.kind == "cache_corrupt"
    message = str(error)
    assert entry.key[:12] in message and str(db) in message
    assert "raw text" in message and "--judge-cache=rw" in message

    with JudgeCache(tmp_path) as cache:
        assert cache.get(entry.key) is None  # a miss: the judge is asked again
        assert (cache.hits, cache.misses, cache.corrupt) == (0, 1, 1)
        cache.put(entry)  # and the fresh answer replaces the damaged one
        assert cache.get(entry.key) == entry


# -- stored answers that are wrong in other ways ---------------------------------------


def _set_parsed(path: list[object], value: object) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target: Any = data["parsed"]
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _drop_second_score(data: dict[str, Any]) -> None:
    data["parsed"]["scores"] = data["parsed"]["scores"][:1]


def _empty_parsed(data: dict[str, Any]) -> None:
    data["parsed"] = {}


def _raw(text: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["raw"] = text

    return change


def _extra_field(data: dict[str, Any]) -> None:
    data["parsed"]["verdict"] = "A>B"


PASS_TAMPERING: dict[str, Callable[[dict[str, Any]], None]] = {
    "empty_parsed": _empty_parsed,
    "score_out_of_range": _set_parsed(["scores", 0, "score_a"], 9),
    "score_as_text": _set_parsed(["scores", 0, "score_a"], "2"),
    "score_as_float": _set_parsed(["scores", 0, "score_a"], 2.0),
    "score_as_bool": _set_parsed(["scores", 0, "score_b"], True),
    "missing_criterion": _drop_second_score,
    "label_outside_the_four": _set_parsed(["preference"], "C>A"),
    "label_flipped": _set_parsed(["preference"], "A>B"),
    "justification_edited": _set_parsed(["overall_justification"], "A is better."),
    "warning_planted": _set_parsed(["warnings"], ["none"]),
    "unknown_field": _extra_field,
    "raw_flipped": _raw(pass_text("A>B")),
    "raw_missing_a_criterion": _raw(pass_text("B>A", {"accuracy": (2, 4)})),
    "raw_score_out_of_range": _raw(pass_text("B>A", {"accuracy": (2, 9), "clarity": (3, 5)})),
    "raw_empty": _raw(""),
    "raw_prose": _raw("B is better."),
    "raw_huge_number": _raw(pass_text().replace('"score_A": 2', '"score_A": ' + "9" * 5000)),
    "raw_lone_surrogate": _raw(pass_text("B>A").replace("B is more", "B \ud800 is more")),
}


@pytest.mark.parametrize("tamper", PASS_TAMPERING.values(), ids=PASS_TAMPERING.keys())
def test_a_pass_entry_that_does_not_read_back_is_refused(
    tmp_path: Path, tamper: Callable[[dict[str, Any]], None]
) -> None:
    entry = pass_entry(1)
    data = json.loads(entry.model_dump_json())
    tamper(data)
    bad = json.dumps(data, ensure_ascii=True)  # ASCII: a lone surrogate is kept as \\ud800
    assert answer_problem(entry) is None
    try:
        damaged = CacheEntry.model_validate_json(bad)
    except ValidationError:
        assert "\\ud800" in bad  # JSON with a lone surrogate is not even an entry
    else:
        assert damaged.is_consistent()  # the key still matches the fields
        assert answer_problem(damaged) is not None  # but the answer does not read back

    store(tmp_path, pass_entry(2))
    store_value(tmp_path, entry.key, bad)
    with JudgeCache(tmp_path) as cache:
        assert cache.get(entry.key) is None and cache.corrupt == 1
        assert [e.key for e in cache.entries()] == [pass_entry(2).key]
    with JudgeCache(tmp_path, "replay") as replay, pytest.raises(CacheCorruptError):
        replay.get(entry.key)


def test_rubric_entries_are_read_with_their_own_criteria_bounds(tmp_path: Path) -> None:
    one = [CRITERIA[0] | {"weight": 1.0}]
    narrow = rubric_entry(1, raw=rubric_text(one), criteria_count=(1, 3))
    assert answer_problem(narrow) is None
    # The same one-criterion answer stored under the default bounds (2 to 8) is refused.
    data = json.loads(rubric_entry(2).model_dump_json())
    data["raw"] = narrow.raw
    data["parsed"] = narrow.parsed
    wide = CacheEntry.model_validate(data)
    assert wide.is_consistent()
    problem = answer_problem(wide)
    assert problem is not None and "criteri" in problem

    # Bounds that are not two whole numbers, low <= high, are refused, not trusted.
    for bounds in ([3, 2], [2], "2-8", [2.5, 8], [True, 8]):
        fields = {**narrow.fields, "extra": {"criteria_count": bounds}}
        odd = CacheEntry.for_fields(fields, raw=narrow.raw, parsed=narrow.parsed)
        assert answer_problem(odd) is not None, bounds


def test_grade_entries_are_checked_too(tmp_path: Path) -> None:
    entry = grade_entry(1)
    assert answer_problem(entry) is None
    for change in (
        _set_parsed(["scores", 0, "score"], 6),
        _set_parsed(["scores", 0, "score"], 5),
        _empty_parsed,
        _raw(entry.raw.replace("score: 4", "score: 0")),
    ):
        data = json.loads(entry.model_dump_json())
        change(data)
        assert answer_problem(CacheEntry.model_validate(data)) is not None


def test_an_entry_whose_fields_hold_no_valid_rubric_is_refused() -> None:
    entry = pass_entry(1)
    for rubric in ([], [{"name": "Not Snake"}], "accuracy", [{**CRITERIA[0], "weight": 0}]):
        fields = {**entry.fields, "rubric": rubric}
        odd = CacheEntry.for_fields(fields, raw=entry.raw, parsed=entry.parsed)
        assert answer_problem(odd) is not None, rubric
    fields = {**entry.fields, "kind": "verdict"}
    assert answer_problem(CacheEntry.for_fields(fields, raw=entry.raw, parsed=entry.parsed))


def test_put_refuses_an_answer_that_does_not_read_back(tmp_path: Path) -> None:
    entry = pass_entry(1)
    forged = entry.model_copy(update={"parsed": {**entry.parsed, "preference": "A>B"}})
    with JudgeCache(tmp_path) as cache:
        with pytest.raises(ValueError, match="raw text"):
            cache.put(forged)
        assert len(cache) == 0
        cache.put(forged, checked=True)  # the judge's own answers are not read twice


def test_every_kind_round_trips_and_verifies(tmp_path: Path) -> None:
    entries = mixed_entries(9)
    store(tmp_path, *entries)
    with JudgeCache(tmp_path, "replay") as replay:
        assert [replay.get(e.key) for e in entries] == entries
        assert list(replay.entries()) == entries
        assert replay.corrupt == 0


# -- through the judge ----------------------------------------------------------------------


def checkpoint(db: Path) -> None:
    """Move everything from the write-ahead log into `db` itself, so that edits of the
    file's bytes reach every entry (a judge's worker threads may keep connections open)."""
    connection = sqlite3.connect(db)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        connection.close()


def flip_stored_labels(db: Path) -> int:
    """Swap B>A and A>B in every stored (parsed) pass answer of `db`, leaving the raw texts
    alone; how many labels were swapped."""
    swap = {
        b'"preference":"B>A"': b'"preference":"A>B"',
        b'"preference":"A>B"': b'"preference":"B>A"',
    }
    data = bytearray(db.read_bytes())
    found = list(re.finditer(rb'"preference":"(?:B>A|A>B)"', data))
    for match in found:
        data[match.start() : match.end()] = swap[match.group()]
    db.write_bytes(bytes(data))
    return len(found)


def test_the_judge_never_serves_a_flipped_verdict(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ask = ("Which?", "a plain answer", "a GOOD answer")
    with FakeJudge(ByResponsePolicy("GOOD")) as fake:
        with Judge(fake.url, fake.model, cache_dir=cache) as judge:
            before = judge.compare(*ask)
        assert before.preference == "B>A" and fake.request_count == 3
        db = cache / "cache.db"
        checkpoint(db)
        assert flip_stored_labels(db) == 2  # both passes; their raw texts are left alone
        assert check_database(db) is None

        with (
            Judge(None, fake.model, cache_dir=cache, cache_mode="replay") as judge,
            pytest.raises(CacheCorruptError, match="preference"),
        ):
            judge.compare(*ask)

        with Judge(fake.url, fake.model, cache_dir=cache) as judge:
            again = judge.compare(*ask)
        assert again.preference == "B>A"
        assert fake.request_count == 5  # both passes asked again; the rubric was intact
        with Judge(None, fake.model, cache_dir=cache, cache_mode="replay") as judge:
            replayed = judge.compare(*ask)
        assert (replayed.preference, replayed.margin) == (again.preference, again.margin)


DAMAGE_TEST = """
from pytest_rubric_judge import assert_preferred

def test_ok(judge):
    assert_preferred("GOOD", "plain", prompt="q")
"""


@pytest.mark.parametrize("damage", ["flipped_labels", "wrecked_pages"])
def test_a_damaged_replay_cache_is_a_judge_error_not_a_failure(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str], damage: str
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    pytester.makepyfile(DAMAGE_TEST)
    pytester.runpytest(*judge_args).assert_outcomes(passed=1)
    cache_arg = next(a for a in judge_args if a.startswith("--judge-cache-dir"))
    db = Path(cache_arg.split("=", 1)[1]) / "cache.db"
    if damage == "flipped_labels":
        assert flip_stored_labels(db) == 2
        assert check_database(db) is None
    else:
        with db.open("r+b") as handle:  # keep the header, wreck the pages after it
            handle.seek(4096)
            handle.write(b"\x00garbage\xff" * 800)
    replay = [cache_arg, f"--judge-model={fake_judge.model}", "--judge-cache=replay"]
    result = pytester.runpytest(*replay, "-p", "no:xdist")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*Cache*CorruptError*"])
    assert fake_judge.request_count == 3
