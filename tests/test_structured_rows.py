"""Rows of `compare_many`, `rubric-judge compare` and `rubric-judge calibrate` with chat
messages, agent trajectories and retrieved context, and the rows that cannot be read."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pytest_rubric_judge.batch import INVALID_ROW, Comparison, compare_many
from pytest_rubric_judge.calibration import GoldFormatError, parse_gold
from pytest_rubric_judge.cli import main
from pytest_rubric_judge.cli.compare import read_rows
from pytest_rubric_judge.format_probe import probe_pairs
from pytest_rubric_judge.gold import checked_input
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.report.details import record_of
from pytest_rubric_judge.shards import shard_of_record
from pytest_rubric_judge.testing import FakeJudge

CONVERSATION = [
    {"role": "system", "content": "You are a travel assistant."},
    {"role": "user", "content": "I want to visit Paris."},
    {"role": "assistant", "content": "Great, when?"},
    {"role": "user", "content": "In May. What is the weather like?"},
]
TRAJECTORY = [
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "Paris in May: 17 C, some rain."},
    {"role": "assistant", "content": "Paris in May averages 17 C; pack a light jacket."},
]
CONTEXT = [
    "The Eiffel Tower is 330 metres tall.",
    {"content": "It was finished in 1889.", "source": "toureiffel.paris"},
]
GOOD = [
    {
        "id": "conversation",
        "prompt": CONVERSATION,
        "response_A": "It is warm.",
        "response_B": "About 17 C on average, with some rain.",
    },
    {
        "id": "trajectory",
        "prompt": "What is the weather in Paris in May?",
        "response_A": "Warm.",
        "response_B": TRAJECTORY,
    },
    {
        "id": "context",
        "prompt": "How tall is the Eiffel Tower?",
        "response_A": "330 metres.",
        "response_B": "About 100 metres.",
        "context": CONTEXT,
    },
]
#: Malformed rows, each with the field its error must name.
BAD = [
    ({"id": "robot", "prompt": [{"role": "robot", "content": "hi"}], "response_A": "a",
      "response_B": "b"}, "prompt", "role 'robot'"),
    ({"id": "number", "prompt": "p", "response_A": [{"role": "assistant", "content": 7}],
      "response_B": "b"}, "response_A", "content of type int"),
    ({"id": "loose", "prompt": "p", "response_A": "a", "response_B": "b",
      "context": "one document"}, "context", "must be a list of retrieved documents"),
]  # fmt: skip


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _flags(url: str, model: str, cache: Path) -> list[str]:
    return [
        *("--judge-url", url, "--judge-model", model),
        *("--judge-cache-dir", str(cache), "--judge-max-retries", "0"),
        *("--progress", "never", "--no-plot", "--no-html", "--no-parquet"),
    ]


def _details(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "details.jsonl").read_text("utf-8").splitlines()]


# -- rubric-judge compare ---------------------------------------------------------------


def test_compare_judges_structured_rows_and_names_bad_ones(
    fake_judge: FakeJudge, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [GOOD[0], BAD[0][0], GOOD[1], BAD[1][0], GOOD[2], BAD[2][0]]
    data = _write(tmp_path / "data.jsonl", rows)
    flags = _flags(fake_judge.url, fake_judge.model, tmp_path / "cache")
    out = tmp_path / "out"
    assert main(["compare", str(data), "--out", str(out), *flags]) == 0
    err = capsys.readouterr().err
    assert "3 invalid input rows" in err
    # Three distinct prompts: three rubrics, and both orders of each row.
    assert fake_judge.request_count == 3 + 3 * 2
    records = _details(out)
    assert [r["id"] for r in records] == [r["id"] for r in rows]
    by_id = {r["id"]: r for r in records}
    for row in GOOD:
        record = by_id[row["id"]]
        assert record["status"] == "ok" and record["preference"] in ("A>B", "B>A", "A=B")
    # details.jsonl holds what the judge read: the rendering, not the raw lists.
    assert by_id["conversation"]["prompt"].startswith("<<message 1 system ")
    assert "In May. What is the weather like?" in by_id["conversation"]["prompt"]
    assert "<<tool call 1 of message 1: get_weather" in by_id["trajectory"]["response_B"]
    assert "(source: toureiffel.paris)" in by_id["context"]["prompt"]
    sent = json.dumps([request.body for request in fake_judge.requests])
    assert "It was finished in 1889." in sent and "get_weather" in sent
    for (row, field, detail), line in zip(BAD, (2, 4, 6), strict=True):
        record = by_id[row["id"]]
        assert record["status"] == "invalid" and record["error_type"] == INVALID_ROW
        assert record["error"].startswith(f"line {line}: field '{field}'"), record["error"]
        assert detail in record["error"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["comparisons"] == 3 and metrics["invalid_rows"] == 3

    # The same command again: every answer comes from the cache.
    fake_judge.reset()
    assert main(["compare", str(data), "--out", str(out), *flags]) == 0
    assert fake_judge.request_count == 0
    assert "0 judge requests" in capsys.readouterr().out
    assert [r["preference"] for r in _details(out)] == [r["preference"] for r in records]


def test_python_rows_stream_and_bad_rows_do_not_stop_the_others(fake_judge: FakeJudge) -> None:
    rows: list[Any] = [GOOD[1], *(bad for bad, _, _ in BAD), GOOD[2], ["not", "an", "object"]]
    with Judge(fake_judge.url, fake_judge.model, cache_mode="off") as judge:
        results = sorted(compare_many(judge, rows, concurrency=2), key=lambda r: r.index)
    assert [r.ok for r in results] == [True, False, False, False, True, False]
    assert all(r.invalid for r in results if not r.ok)
    for result, (_, field, _) in zip(results[1:4], BAD, strict=True):
        assert result.error is not None and result.error.startswith(f"field '{field}'")
    assert "<<the responses are agent trajectories" in results[0].prompt
    assert results[4].verdict is not None and "(source: toureiffel.paris)" in results[4].prompt


def test_a_comparison_is_checked_when_made() -> None:
    with pytest.raises(ValueError, match=r"field 'response_B': message 1 is a user message"):
        Comparison(0, "0", "p", "a", [{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match=r"field 'prompt': prompt is an empty list"):
        Comparison(0, "0", [], "a", "b")
    with pytest.raises(ValueError, match=r"field 'context': context document 1 is a int"):
        Comparison(0, "0", "p", "a", "b", context=[3])
    assert Comparison(0, "0", CONVERSATION, TRAJECTORY, "b", context=CONTEXT).plain is False


def test_sharded_structured_rows_merge_even_when_the_judge_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shard is chosen by the prompt its details record holds (the rendering, text that
    UTF-8 cannot carry made sendable), so judge-error rows merge too."""
    rows = [*GOOD, {"prompt": "a lone \ud800 surrogate", "response_A": "x", "response_B": "y"}]
    data = _write(tmp_path / "data.jsonl", rows)
    flags = _flags("http://127.0.0.1:9/v1", "m", tmp_path / "cache")
    folders = []
    for k in (1, 2, 3):
        folder = tmp_path / f"shard-{k}"
        main(["compare", str(data), "--out", str(folder), "--shard", f"{k}/3", *flags])
        folders.append(folder)
        for record in _details(folder):
            assert record["status"] == "error"
            assert shard_of_record(record, 3) == k
    capsys.readouterr()
    main(["merge", *map(str, folders), "--out", str(tmp_path / "merged"), "--no-plot"])
    err = capsys.readouterr().err
    assert "belongs to shard" not in err and "Traceback" not in err
    merged = _details(tmp_path / "merged")
    assert len(merged) == 4 and merged[0]["prompt"].startswith("<<message 1 system ")
    assert merged[3]["prompt"] == "a lone \ufffd surrogate"


# -- rubric-judge calibrate -------------------------------------------------------------


GOLD = [
    {**GOOD[0], "label": "B>A"},
    {**GOOD[1], "label": "B>A"},
    {**GOOD[2], "label": "A>B"},
    {"prompt": "Name a prime.", "response_A": "Seven is prime.", "response_B": "Nine.",
     "label": "A>B"},
]  # fmt: skip


def test_calibrate_reads_structured_gold_rows(
    fake_judge: FakeJudge, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gold = _write(tmp_path / "gold.jsonl", GOLD)
    out = tmp_path / "out"
    flags = _flags(fake_judge.url, fake_judge.model, tmp_path / "cache")[:-5]
    assert main(["calibrate", str(gold), "--out", str(out), "--no-plot", *flags]) == 0
    report = json.loads((out / "calibration.json").read_text())
    assert report["rows"] == 4 and report["judged"] == 4 and report["errors"] == []
    assert "judged 4 of 4 rows" in capsys.readouterr().out
    sent = json.dumps([request.body for request in fake_judge.requests])
    assert "It was finished in 1889." in sent and "get_weather" in sent


def test_gold_rows_keep_messages_and_the_format_probe_takes_only_text() -> None:
    rows = parse_gold(json.dumps(row) for row in GOLD)
    assert rows[0].prompt == CONVERSATION and rows[2].context == CONTEXT
    assert rows[1].messages_b == TRAJECTORY and rows[1].response_b == ""
    assert rows[1].responses == ("Warm.", TRAJECTORY)
    # An id UTF-8 cannot carry is hashed (RewardBench's slot) and written with U+FFFD.
    (odd,) = parse_gold(
        [json.dumps({"id": "a\ud800", "prompt": "p", "chosen": "c", "rejected": "r"})]
    )
    assert odd.id == "a\ufffd"
    for pair in probe_pairs(rows, 10):
        assert isinstance(pair.plain, str) and pair.plain.strip()
        assert pair.plain in (pair.row.response_a, pair.row.response_b)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (BAD[0][0], r"line 1: field 'prompt': message 1 has role 'robot'"),
        (BAD[1][0], r"line 1: field 'response_A': message 1 has content of type int"),
        (BAD[2][0], r"line 1: field 'context' must be a list of retrieved documents"),
        ({"prompt": "p", "chosen": 3, "rejected": "r"}, r"line 1: field 'chosen' must be a str"),
    ],
)
def test_a_bad_gold_row_names_its_line_and_field(row: dict[str, Any], message: str) -> None:
    row = {**row, "label": "A>B"}
    with pytest.raises(GoldFormatError, match=message + r".*format expects"):
        parse_gold([json.dumps(row)])


def test_calibrate_names_a_bad_gold_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold = _write(tmp_path / "gold.jsonl", [GOLD[0], {**BAD[1][0], "label": "A>B"}])
    flags = _flags("http://127.0.0.1:9/v1", "m", tmp_path / "cache")[:-5]
    assert main(["calibrate", str(gold), "--out", str(tmp_path / "out"), *flags]) == 2
    err = capsys.readouterr().err
    assert "line 2: field 'response_A': message 1 has content of type int" in err


# -- any JSON value --------------------------------------------------------------------

FIELDS = ("prompt", "response_A", "response_B", "context")
_text = st.text(st.characters(exclude_categories=()), max_size=6)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_call = st.fixed_dictionaries(
    {},
    optional={
        "id": _json,
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {}, optional={"name": _text | _json, "arguments": _text | _json}
        )
        | _json,
    },
)
_part = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "input_text", "audio"]) | _json},
    optional={"text": _text | _json, "image_url": st.fixed_dictionaries({"url": _text}) | _json},
)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "robot"]) | _json},
    optional={
        "content": _text | st.lists(_part, max_size=2) | _json,
        "tool_calls": st.lists(_call, max_size=2) | _json,
        "tool_call_id": _text | _json,
    },
)
_document = _text | st.fixed_dictionaries({"content": _text | _json}, optional={"source": _json})
#: Any JSON value for each field, or something shaped like what the field takes.
_wild = {
    "prompt": st.lists(_message, max_size=3) | _json,
    "response_A": st.lists(_message, max_size=3) | _json,
    "response_B": st.lists(_message, max_size=3) | _json,
    "context": st.lists(_document, max_size=3) | _json,
}
#: Rows the judge can read: text, a conversation, a trajectory, a context.
_turn = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": _text}
)
_step = st.fixed_dictionaries({"role": st.just("assistant"), "content": _text | st.none()}) | (
    st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": _text, "content": _text})
)
_valid = st.fixed_dictionaries(
    {
        "prompt": _text | st.lists(_turn, min_size=1, max_size=3),
        "response_A": _text | st.lists(_step, min_size=1, max_size=3),
        "response_B": _text | st.lists(_step, min_size=1, max_size=3),
    },
    optional={"context": st.lists(_text | st.fixed_dictionaries({"content": _text}), max_size=2)},
)


@st.composite
def _rows(draw: st.DrawFn) -> dict[str, Any]:
    """A readable row with none, one or every field replaced by any JSON value, or removed."""
    row = dict(draw(_valid))
    changed = draw(st.sampled_from([(), *((name,) for name in FIELDS), FIELDS]))
    for name in changed:
        value = draw(st.none() | _wild[name])
        if value is None and draw(st.booleans()):
            row.pop(name, None)
        else:
            row[name] = value
    return row


@pytest.fixture(scope="module")
def shared_judge() -> Iterator[Judge]:
    with FakeJudge() as fake, Judge(fake.url, fake.model, cache_mode="off") as judge:
        yield judge


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=_rows())
def test_any_json_in_the_fields_is_judged_or_a_clear_row_error(
    shared_judge: Judge, row: dict[str, Any]
) -> None:
    line = json.dumps({**row, "id": "r"})
    (result,) = list(compare_many(shared_judge, read_rows([line])))
    event("judged" if result.ok else "row error")
    if result.ok:
        assert all(name in row for name in FIELDS[:3])
    else:
        assert result.invalid, (result.error_type, result.error)
        assert result.error is not None
        assert re.match(r"line 1: (missing )?field '(prompt|response_A|response_B|context)'",
                        result.error), result.error  # fmt: skip
        assert "Traceback" not in result.error
        for name in FIELDS:
            if f"field '{name}'" in result.error and name != "context":
                assert name not in row or not isinstance(row[name], str)
    # Whatever came of it can be written to details.jsonl as UTF-8 JSON.
    record = record_of(
        result.index,
        result.id,
        result.verdict,
        prompt=result.prompt,
        response_a=result.response_a,
        response_b=result.response_b,
        reference=result.reference,
        error_type=result.error_type,
        error=result.error,
    )
    json.loads(json.dumps(record, ensure_ascii=False).encode("utf-8"))


@given(value=_json | st.lists(_message, max_size=3) | st.lists(_document, max_size=3))
def test_checked_input_raises_only_value_error(value: Any) -> None:
    for kind, field in (("prompt", "prompt"), ("response", "response_A"), ("context", "context")):
        try:
            checked_input(value, field, kind)  # type: ignore[arg-type]
        except ValueError as error:
            assert str(error).startswith(f"field '{field}'")
