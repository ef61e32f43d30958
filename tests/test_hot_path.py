"""The shortcuts of the per-request path give what the general path gives.

Each shortcut (a batched cache write, the judge's own sampling parameters keyed without
the secret scan, free text without control characters, valid scale scores, texts without
fences, a scoring request's shared head) is checked against the path it stands for.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import diskcache  # type: ignore[import-untyped]
import pytest

from pytest_rubric_judge import prompts
from pytest_rubric_judge.cache import JudgeCache, canonical_json, keyed_fields
from pytest_rubric_judge.cache.database import connect_read_only
from pytest_rubric_judge.cache.writer import open_store
from pytest_rubric_judge.errors import ParseError
from pytest_rubric_judge.fences import fenced_blocks, fenced_spans
from pytest_rubric_judge.models import Criterion, Rubric
from pytest_rubric_judge.values import _UNSAFE_TEXT_RE, clean_text, coerce_score

JUDGE_SAMPLING: dict[str, object] = {
    "temperature": 0.0,
    "max_tokens": 2048,
    "top_p": None,
    "seed": None,
    "structured_output": "json_schema",
}


def _pass_fields(sampling: dict[str, object]) -> tuple[str, dict[str, object]]:
    return keyed_fields(
        kind="pass",
        protocol_version="1",
        template_hash="0123456789abcdef",
        model="judge",
        sampling=sampling,
        prompt="Which is the capital of France?",
        reference=None,
        rubric=[{"name": "accuracy", "description": "Facts.", "weight": 1.0, "type": "scale"}],
        response_slot_a="Paris.",
        response_slot_b="Lyon.",
    )


# -- keys ------------------------------------------------------------------------------


def test_the_judges_own_sampling_is_keyed_as_before() -> None:
    key, fields = _pass_fields(JUDGE_SAMPLING)
    assert fields["sampling"] == {**JUDGE_SAMPLING, "temperature": 0.0}
    text = json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    assert canonical_json(fields) == text
    assert json.loads(text) == fields
    # an int temperature is still keyed as a float, with or without the scan
    assert _pass_fields({**JUDGE_SAMPLING, "temperature": 0})[0] == key


@pytest.mark.parametrize(
    "sampling",
    [
        {**JUDGE_SAMPLING, "structured_output": "Bearer sk-123"},
        {**JUDGE_SAMPLING, "api_key": "sk-123"},
        {**JUDGE_SAMPLING, "seed": {"token": 1}},
    ],
)
def test_sampling_that_may_hold_a_secret_is_still_scanned(sampling: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"credential|bearer"):
        _pass_fields(sampling)


# -- batched writes --------------------------------------------------------------------


def test_a_batch_writes_the_rows_diskcache_set_writes(tmp_path: Path) -> None:
    writer = open_store(tmp_path, 10)
    writer.put_texts([("a" * 64, '{"a":1}'), ("b" * 64, '{"b":2}')])
    writer.store.set("c" * 64, '{"c":3}')  # diskcache's own write, for comparison
    columns = "raw, expire_time, access_count, tag, size, mode, filename, typeof(key)"
    rows = writer.store._con.execute(f"SELECT {columns} FROM Cache ORDER BY rowid").fetchall()
    assert rows[0] == rows[1] == rows[2]
    assert writer.store.get("a" * 64) == '{"a":1}' and len(writer.store) == 3
    # a key written again is updated in place: same row, new value, same count
    writer.put_texts([("a" * 64, '{"a":9}')])
    assert writer.store.get("a" * 64) == '{"a":9}' and len(writer.store) == 3
    writer.store.close()
    reader = connect_read_only(tmp_path / "cache.db", 10)
    assert reader.execute("SELECT count(*) FROM Cache").fetchall() == [(3,)]
    reader.close()


def test_a_batch_is_one_transaction(tmp_path: Path) -> None:
    writer = open_store(tmp_path, 10)
    with pytest.raises(TypeError):
        writer.put_texts([("a" * 64, '{"a":1}'), ("b" * 64, b"not text")])  # type: ignore[list-item]
    writer.store._con.execute(
        "CREATE TEMP TRIGGER refuse BEFORE INSERT ON Cache WHEN NEW.key = 'bbbb'"
        " BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    with pytest.raises(sqlite3.Error, match="refused"):
        writer.put_texts([("a" * 64, '{"a":1}'), ("bbbb", '{"b":2}')])
    assert len(writer.store) == 0  # the first row went with the second
    writer.put_texts([("a" * 64, '{"a":1}')])
    assert len(writer.store) == 1
    writer.store.close()


def test_a_value_another_writer_kept_in_a_file_is_replaced_and_its_file_removed(
    tmp_path: Path,
) -> None:
    other = diskcache.Cache(str(tmp_path), disk_min_file_size=0)
    other.set("f" * 64, "a text kept in a file")
    ((name,),) = other._con.execute("SELECT filename FROM Cache").fetchall()
    other.close()
    assert (tmp_path / name).exists()
    writer = open_store(tmp_path, 10)
    writer.put_texts([("f" * 64, '{"f":1}')])
    assert writer.store.get("f" * 64) == '{"f":1}'
    assert not (tmp_path / name).exists()
    writer.store.close()


def test_deferred_writes_read_back_through_the_cache(tmp_path: Path) -> None:
    from test_cache import make_entry

    entries = [make_entry(i) for i in range(5)]
    with JudgeCache(tmp_path) as cache, cache.deferred_writes(max_entries=2):
        for entry in entries:
            cache.put(entry)
    with JudgeCache(tmp_path, "replay") as replay:
        assert [replay.get(e.key) for e in entries] == entries


# -- values ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", range(128))
def test_ascii_free_text_is_cleaned_as_before(code: int) -> None:
    text = f" a{chr(code)}b "
    assert clean_text(text) == _UNSAFE_TEXT_RE.sub("", text).strip()


@pytest.mark.parametrize("value", [-1, 0, 1, 3, 5, 6, True, False, 2.0, "4"])
@pytest.mark.parametrize("kind", ["scale", "binary"])
def test_scores_are_read_and_normalized_as_before(value: object, kind: str) -> None:
    criterion = Criterion(name="accuracy", weight=1.0, type=kind)  # type: ignore[arg-type]
    try:
        score = coerce_score(criterion, value, field="score_A")
    except ParseError:
        assert kind == "binary" or value in (-1, 0, 6, True, False)
        return
    if kind == "scale":
        assert type(score) is int and score == int(value)  # type: ignore[call-overload]
        assert criterion.normalize(score) == (score - 1) / 4
    else:
        assert criterion.normalize(score) in (0.0, 1.0)
    with pytest.raises(ValueError):
        criterion.normalize(7 if kind == "scale" else 3)


# -- fences ----------------------------------------------------------------------------


def test_text_without_three_backticks_or_tildes_has_no_fence() -> None:
    text = 'line\n`` two\n~~ three\n{"scores": []}'
    assert fenced_blocks(text) == [] and list(fenced_spans(text)) == []
    fenced = "prose\n```yaml\npreference: A>B\n```\n~~~\nx\n~~~"
    assert [b.body for b in fenced_blocks(fenced)] == ["preference: A>B", "x"]
    assert next(s.body for s in fenced_spans(fenced)) == "preference: A>B"


# -- prompts ---------------------------------------------------------------------------


def test_scoring_heads_are_shared_only_by_the_same_request() -> None:
    first = Rubric.of([{"name": "accuracy", "weight": 0.6}, {"name": "clarity", "weight": 0.4}])
    other = Rubric.of([{"name": "accuracy", "weight": 0.5}, {"name": "clarity", "weight": 0.5}])

    def head(rubric: Rubric, prompt: str = "Q?", code: str = "c0de") -> str:
        return prompts.pass_messages(
            prompt, rubric, "A.", "B.", reference=None, context_code=code, response_code="r"
        )[1]["content"]

    assert head(first) == head(first)
    prompts._HEADS.clear()
    fresh = head(first)
    assert head(first) == fresh
    assert head(other) != fresh and "0.5" in head(other)
    assert head(first, prompt="Other?") != fresh and head(first, code="beef") != fresh
