"""Fuzzing the cache's trust boundaries: export files given to `import`, and `cache.db` bytes.

An export file is untrusted input (it comes from a repository, a CI artifact, a colleague):
whatever it holds, `rubric-judge cache import` either refuses it with a message and imports
nothing, or imports only entries whose stored answers read back from their raw texts; the
entries already in the cache are never lost, and no exception escapes. A damaged
`cache.db` is read the same way: an entry is served only with the answer its raw text
gives, or not at all. Fixed Hypothesis profile: derandomized, so every run tries the same
cases.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cache_answers import grade_entry, mixed_entries, pass_entry, rubric_entry
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pytest_rubric_judge.cache import (
    CacheEntry,
    CacheError,
    JudgeCache,
    answer_problem,
    canonical_json,
)
from pytest_rubric_judge.cli import main

FUZZ = settings(
    derandomize=True,
    database=None,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

EXPORTED = [rubric_entry(1), pass_entry(2), grade_entry(3), pass_entry(4, preference="A=B")]
EXISTING = [rubric_entry(11), pass_entry(12), grade_entry(13)]
LINES = [canonical_json(entry.model_dump(mode="json")) for entry in EXPORTED]

# -- corruptions of one exported line ------------------------------------------------------

SURROGATES = st.sampled_from(["\ud800", "\udfff", "\udc80x"])
#: Number literals written into the JSON text as they are: longer than Python reads by
#: default (4,300 digits), past float range, past 64 bits.
HUGE = st.sampled_from(["1" + "0" * 5000, "-" + "9" * 4400, "1e999", "-1e400", "2" * 20, "1e308"])
_HUGE_MARK = "\x00huge\x00"
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10, max_value=10),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["A>B", "B>A", "A=B", "A=B (bothbad)", "", "scale", "binary"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every path to a value inside `value` (dict keys and list indexes)."""
    found: list[tuple[object, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for name, item in value.items():
            found += _paths(item, (*prefix, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _parent(data: Any, path: tuple[object, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


@st.composite
def edited_line(draw: st.DrawFn, line: str) -> bytes:
    """`line` with one value changed, removed, or a character in a text flipped."""
    data = json.loads(line)
    path = draw(st.sampled_from(_paths(data)))
    parent, last = _parent(data, path), path[-1]
    action = draw(st.sampled_from(["replace", "delete", "flip_char", "surrogate", "huge"]))
    current = parent[last]
    if action == "delete" and isinstance(parent, dict):
        del parent[last]
    elif action == "flip_char" and isinstance(current, str) and current:
        at = draw(st.integers(0, len(current) - 1))
        char = draw(st.characters(codec="utf-8") | st.sampled_from("AB<>=0123456789 \n:-"))
        parent[last] = current[:at] + char + current[at + 1 :]
    elif action == "surrogate" and isinstance(current, str):
        at = draw(st.integers(0, len(current)))
        parent[last] = current[:at] + draw(SURROGATES) + current[at:]
    elif action == "huge":
        parent[last] = _HUGE_MARK
    else:
        parent[last] = draw(VALUES)
    if draw(st.booleans()):
        text = json.dumps(data, ensure_ascii=True)  # surrogates as \\udXXX escapes
    else:
        text = json.dumps(data, ensure_ascii=False)
    text = text.replace(json.dumps(_HUGE_MARK, ensure_ascii=False), draw(HUGE))
    text = text.replace(json.dumps(_HUGE_MARK, ensure_ascii=True), draw(HUGE))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def flipped_bytes(draw: st.DrawFn, line: str) -> bytes:
    raw = bytearray(line.encode("utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    return bytes(raw)


@st.composite
def swapped(draw: st.DrawFn, line: str) -> bytes:
    """The raw text or the stored answer of another entry of the same kind, or its own
    answer re-labelled."""
    data = json.loads(line)
    other = json.loads(draw(st.sampled_from(LINES)))
    field = draw(st.sampled_from(["raw", "parsed"]))
    data[field] = other[field]
    return json.dumps(data).encode()


@st.composite
def benign(draw: st.DrawFn, line: str) -> bytes:
    """A change that leaves the entry valid: its cost, time or model, or spacing."""
    data = json.loads(line)
    field = draw(st.sampled_from(["usage", "latency_s", "created_at", "model"]))
    if field == "usage":
        data["usage"]["prompt_tokens"] = draw(st.integers(0, 10**6))
    elif field == "model":
        data["model"] = draw(st.text(max_size=10))
    else:
        data[field] = draw(st.floats(0, 2e9))
    return json.dumps(data, indent=draw(st.sampled_from([None, 1]))).replace("\n", " ").encode()


@st.composite
def export_file(draw: st.DrawFn) -> bytes:
    lines = [line.encode("utf-8") for line in LINES]
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        source = LINES[index]
        corruption: Callable[[str], st.SearchStrategy[bytes]] = draw(
            st.sampled_from([edited_line, edited_line, flipped_bytes, swapped, benign])
        )
        lines[index] = draw(corruption(source))
    ending = draw(st.sampled_from(["whole", "truncated", "duplicated"]))
    if ending == "truncated":
        cut = draw(st.integers(0, len(lines) - 1))
        lines[cut] = lines[cut][: draw(st.integers(0, len(lines[cut])))]
    elif ending == "duplicated":
        lines.append(draw(st.sampled_from(lines)))
    return b"\n".join(lines) + b"\n"


def _state(directory: Path) -> dict[str, CacheEntry]:
    with JudgeCache(directory, "replay") as cache:
        entries = {entry.key: entry for entry in cache.entries()}
        assert cache.corrupt == 0
    return entries


@FUZZ
@given(content=export_file())
def test_import_refuses_or_imports_only_entries_that_read_back(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        directory = root / "cache"
        with JudgeCache(directory) as cache:
            for entry in EXISTING:
                cache.put(entry)
        dump = root / "verdicts.jsonl"
        dump.write_bytes(content)
        with pytest.MonkeyPatch.context() as patch:
            messages: list[str] = []
            patch.setattr("sys.stderr", _Lines(messages))
            status = main(["cache", "import", str(dump), f"--judge-cache-dir={directory}"])
        after = _state(directory)
        for entry in EXISTING:  # nothing lost
            assert after[entry.key] == entry
        if status == 2:
            text = "".join(messages)
            assert text.startswith("rubric-judge: error: ") and str(dump) in text
            assert "Traceback" not in text
            assert set(after) == {entry.key for entry in EXISTING}  # nothing imported
            event("refused, nothing imported: " + _kind_of_refusal(text))
        else:
            assert status == 0
            for entry in after.values():
                assert entry.is_consistent() and answer_problem(entry) is None
            imported = set(after) - {entry.key for entry in EXISTING}
            assert imported <= {entry.key for entry in EXPORTED}
            event("imported: every entry reads back")


def _kind_of_refusal(text: str) -> str:
    for kind in ("not UTF-8", "not a cache export", "entries refused"):
        if kind in text:
            return kind
    return text[:40]


class _Lines:
    """A stand-in for stderr that keeps what is written."""

    def __init__(self, into: list[str]) -> None:
        self.into = into

    def write(self, text: str) -> int:
        self.into.append(text)
        return len(text)

    def flush(self) -> None:
        pass


# -- bytes of cache.db ----------------------------------------------------------------------

STORED = mixed_entries(6)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, int]]]:
    """A cache file holding `STORED`, and where each stored entry's JSON text lies in it
    (a path: a failing example does not print the file's bytes)."""
    directory = tmp_path_factory.mktemp("pristine")
    with JudgeCache(directory) as cache:
        for entry in STORED:
            cache.put(entry)
    db = directory / "cache.db"
    spans = [m.span() for m in re.finditer(rb'\{"key":.*?"model":"judge-model"\}', db.read_bytes())]
    assert len(spans) == len(STORED)
    return db, spans


def _answers(entry: CacheEntry) -> tuple[object, str]:
    return entry.fields["kind"], canonical_json(entry.parsed)


@FUZZ
@given(data=st.data())
def test_flipped_bytes_in_cache_db_never_change_a_served_answer(
    pristine: tuple[Path, list[tuple[int, int]]], data: st.DataObject
) -> None:
    db, spans = pristine
    damaged = bytearray(db.read_bytes())
    # Most flips land in a stored entry's text, some anywhere in the file.
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        low, high = data.draw(st.sampled_from([*spans, *spans, (0, len(damaged))]), label="span")
        at = data.draw(st.integers(low, high - 1), label="offset")
        damaged[at] = data.draw(st.integers(0, 255), label="byte")
    expected = {entry.key: _answers(entry) for entry in STORED}
    with tempfile.TemporaryDirectory() as scratch:
        for mode in ("replay", "rw"):
            directory = Path(scratch) / mode
            directory.mkdir()
            (directory / "cache.db").write_bytes(bytes(damaged))
            try:
                with JudgeCache(directory, mode) as cache:  # type: ignore[arg-type]
                    for key, answer in expected.items():
                        try:
                            found = cache.get(key)
                        except CacheError:
                            event(f"{mode}: an entry refused with an error")
                            continue
                        if found is None:
                            event(f"{mode}: an entry refused as a miss")
                        else:
                            assert _answers(found) == answer
                            event(f"{mode}: an entry served with its own answer")
                    for entry in cache.entries():
                        assert expected.get(entry.key) == _answers(entry)
            except CacheError:
                event(f"{mode}: the file refused as damaged")
            shutil.rmtree(directory)
