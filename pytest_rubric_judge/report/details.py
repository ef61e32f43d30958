"""One record per comparison: `details.jsonl`, and `details.parquet` with the `parquet` extra.

A record holds the inputs, the reconciled verdict with the article's field names
(`weighted_score_A`, `weighted_score_B`, `score_margin`), both passes (label, weighted
scores, overall justification, the judge's raw text and call bookkeeping) and, per
criterion, its weight, type, description and both passes' scores and justifications. It
holds everything a verdict is rebuilt from, so `rescore` and `show` need no judge.
A row the judge could not judge has `status: "error"` with the error's type and message,
and no scores; an input row that could not be read has `status: "invalid"` (its
`error_type` is `InvalidRow`): it never reached the judge.

Scores are written as the judge gave them: an integer 1-5 for a scale criterion, true or
false for a binary one (0/1 in Parquet, whose columns have one type).
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..files import keep_mode, replacing
from ..models import (
    CallInfo,
    Criterion,
    CriterionScore,
    PassResult,
    Rubric,
    Usage,
    Verdict,
)

__all__ = [
    "INVALID_ROW",
    "DetailsWriter",
    "is_invalid",
    "read_details",
    "record_of",
    "verdict_of",
    "write_parquet",
]

Record = dict[str, Any]

#: The `error_type` of an input row that could not be read (the batch runner's name for
#: it, kept here so that reading a details file does not load the runner).
INVALID_ROW = "InvalidRow"


def is_invalid(record: Mapping[str, Any]) -> bool:
    """Whether a record is an input row that could not be read (also in a details file
    written before such rows had their own status)."""
    return record.get("status") == "invalid" or record.get("error_type") == INVALID_ROW


def _pass_record(item: PassResult) -> Record:
    call = item.call
    return {
        "preference": item.preference,
        "weighted_score_A": item.weighted_a,
        "weighted_score_B": item.weighted_b,
        "score_margin": item.weighted_a - item.weighted_b,
        "overall_justification": item.overall_justification,
        "warnings": list(item.warnings),
        "raw": call.raw,
        "cached": call.cached,
        "repaired": call.repaired,
        "retries": call.retries,
        "latency_s": call.latency_s,
        "model": call.model,
        "prompt_tokens": call.usage.prompt_tokens,
        "completion_tokens": call.usage.completion_tokens,
    }


def _criterion_record(criterion: Criterion, verdict: Verdict) -> Record:
    record: Record = {
        "name": criterion.name,
        "description": criterion.description,
        "weight": criterion.weight,
        "type": criterion.type,
    }
    for item in verdict.passes:
        score = item.score(criterion.name)
        record[f"{item.order}_score_A"] = score.score_a if score else None
        record[f"{item.order}_score_B"] = score.score_b if score else None
        record[f"{item.order}_justification_A"] = score.justification_a if score else ""
        record[f"{item.order}_justification_B"] = score.justification_b if score else ""
    return record


def record_of(
    index: int,
    row_id: str,
    verdict: Verdict | None,
    *,
    prompt: str = "",
    response_a: str = "",
    response_b: str = "",
    reference: str | None = None,
    error_type: str | None = None,
    error: str | None = None,
) -> Record:
    """The details record of one comparison (a verdict, a judge error or an invalid row)."""
    if verdict is None:
        return {
            "index": index,
            "id": row_id,
            "status": "invalid" if error_type == INVALID_ROW else "error",
            "error_type": error_type or "Error",
            "error": error or "",
            "prompt": prompt,
            "reference": reference,
            "response_A": response_a,
            "response_B": response_b,
            "preference": None,
            "consistent": None,
            "a_wins": 0.0,
            "b_wins": 0.0,
            "weighted_score_A": None,
            "weighted_score_B": None,
            "score_margin": None,
            "judge_model": "",
            "cached": False,
            "warnings": [],
            "rubric_source": None,
            "rubric_warnings": [],
            "rescored_with": None,
            "forward": None,
            "reversed": None,
            "criteria": [],
        }
    return {
        "index": index,
        "id": row_id,
        "status": "ok",
        "error_type": None,
        "error": None,
        "prompt": verdict.prompt,
        "reference": verdict.reference,
        "response_A": verdict.response_a,
        "response_B": verdict.response_b,
        "preference": verdict.preference,
        "consistent": verdict.consistent,
        "a_wins": 1.0 if verdict.preference == "A>B" else 0.0,
        "b_wins": 1.0 if verdict.preference == "B>A" else 0.0,
        "weighted_score_A": verdict.weighted_a,
        "weighted_score_B": verdict.weighted_b,
        "score_margin": verdict.margin,
        "judge_model": verdict.judge_model,
        "cached": verdict.cached,
        "warnings": list(verdict.warnings),
        "rubric_source": verdict.rubric.source,
        "rubric_warnings": list(verdict.rubric.warnings),
        "rescored_with": verdict.rescored_with,
        "forward": _pass_record(verdict.forward),
        "reversed": _pass_record(verdict.reversed),
        "criteria": [_criterion_record(c, verdict) for c in verdict.rubric.criteria],
    }


def _pass_of(record: Record, order: str, criteria: list[Record]) -> PassResult:
    data = record[order]
    scores = tuple(
        CriterionScore(
            name=c["name"],
            score_a=c[f"{order}_score_A"],
            score_b=c[f"{order}_score_B"],
            justification_a=c.get(f"{order}_justification_A") or "",
            justification_b=c.get(f"{order}_justification_B") or "",
        )
        for c in criteria
        if c.get(f"{order}_score_A") is not None
    )
    usage = Usage(
        prompt_tokens=data.get("prompt_tokens", 0),
        completion_tokens=data.get("completion_tokens", 0),
        total_tokens=data.get("prompt_tokens", 0) + data.get("completion_tokens", 0),
    )
    return PassResult(
        order="forward" if order == "forward" else "reversed",
        scores=scores,
        preference=data["preference"],
        overall_justification=data.get("overall_justification", ""),
        weighted_a=data["weighted_score_A"],
        weighted_b=data["weighted_score_B"],
        warnings=tuple(data.get("warnings", ())),
        call=CallInfo(
            raw=data.get("raw", ""),
            usage=usage,
            latency_s=data.get("latency_s", 0.0),
            cached=data.get("cached", False),
            repaired=data.get("repaired", False),
            retries=data.get("retries", 0),
            model=data.get("model", ""),
        ),
    )


def _score_value(value: object, kind: str) -> object:
    # Parquet stores a binary score as 0/1; the model wants a bool back.
    if kind == "binary" and isinstance(value, int) and not isinstance(value, bool):
        return bool(value)
    return value


def verdict_of(record: Mapping[str, Any]) -> Verdict | None:
    """The verdict a details record was written from (None for an error row)."""
    if record.get("status") != "ok":
        return None
    criteria = [
        {
            **c,
            **{
                key: _score_value(c.get(key), c["type"])
                for key in (
                    "forward_score_A",
                    "forward_score_B",
                    "reversed_score_A",
                    "reversed_score_B",
                )
            },
        }
        for c in record["criteria"]
    ]
    rubric = Rubric(
        criteria=tuple(
            Criterion(
                name=c["name"],
                description=c.get("description", ""),
                weight=c["weight"],
                type=c["type"],
            )
            for c in criteria
        ),
        source=record.get("rubric_source") or "judge",
        warnings=tuple(record.get("rubric_warnings") or ()),
    )
    data = dict(record)
    return Verdict(
        preference=data["preference"],
        consistent=data["consistent"],
        weighted_a=data["weighted_score_A"],
        weighted_b=data["weighted_score_B"],
        margin=data["weighted_score_A"] - data["weighted_score_B"],
        rubric=rubric,
        forward=_pass_of(data, "forward", criteria),
        reversed=_pass_of(data, "reversed", criteria),
        warnings=tuple(data.get("warnings") or ()),
        cached=bool(data.get("cached")),
        prompt=data.get("prompt", ""),
        reference=data.get("reference"),
        response_a=data.get("response_A", ""),
        response_b=data.get("response_B", ""),
        judge_model=data.get("judge_model", ""),
        rescored_with=data.get("rescored_with"),
    )


class DetailsWriter:
    """Writes `details.jsonl` in input order while records arrive in any order.

    Records are appended to a scratch file as they come, with only each one's byte
    offset kept in memory; `close()` copies them into `details.jsonl` sorted by index,
    through a temporary file renamed into place.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._scratch = tempfile.TemporaryFile(dir=path.parent)
        self._offsets: dict[int, tuple[int, int]] = {}

    def write(self, record: Mapping[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        start = self._scratch.tell()
        self._scratch.write(line)
        self._offsets[int(record["index"])] = (start, len(line))

    def __len__(self) -> int:
        return len(self._offsets)

    def close(self) -> None:
        """Write the sorted file (what has arrived so far, also after an interruption)."""
        if self._scratch.closed:
            return
        self._scratch.flush()
        try:
            with replacing(self.path) as out:
                for index in sorted(self._offsets):
                    start, length = self._offsets[index]
                    self._scratch.seek(start)
                    out.write(self._scratch.read(length))
        finally:
            self._scratch.close()


def read_details(path: Path) -> Iterator[Record]:
    """The records of a `details.jsonl`, one at a time."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}, line {number}: not JSON ({exc})") from None


def _parquet_schema() -> Any:
    pa = importlib.import_module("pyarrow")

    pass_type = pa.struct(
        [
            ("preference", pa.string()),
            ("weighted_score_A", pa.float64()),
            ("weighted_score_B", pa.float64()),
            ("score_margin", pa.float64()),
            ("overall_justification", pa.string()),
            ("warnings", pa.list_(pa.string())),
            ("raw", pa.string()),
            ("cached", pa.bool_()),
            ("repaired", pa.bool_()),
            ("retries", pa.int64()),
            ("latency_s", pa.float64()),
            ("model", pa.string()),
            ("prompt_tokens", pa.int64()),
            ("completion_tokens", pa.int64()),
        ]
    )
    criterion_type = pa.struct(
        [
            ("name", pa.string()),
            ("description", pa.string()),
            ("weight", pa.float64()),
            ("type", pa.string()),
            ("forward_score_A", pa.int64()),
            ("forward_score_B", pa.int64()),
            ("reversed_score_A", pa.int64()),
            ("reversed_score_B", pa.int64()),
            ("forward_justification_A", pa.string()),
            ("forward_justification_B", pa.string()),
            ("reversed_justification_A", pa.string()),
            ("reversed_justification_B", pa.string()),
        ]
    )
    return pa.schema(
        [
            ("index", pa.int64()),
            ("id", pa.string()),
            ("status", pa.string()),
            ("error_type", pa.string()),
            ("error", pa.string()),
            ("prompt", pa.string()),
            ("reference", pa.string()),
            ("response_A", pa.string()),
            ("response_B", pa.string()),
            ("preference", pa.string()),
            ("consistent", pa.bool_()),
            ("a_wins", pa.float64()),
            ("b_wins", pa.float64()),
            ("weighted_score_A", pa.float64()),
            ("weighted_score_B", pa.float64()),
            ("score_margin", pa.float64()),
            ("judge_model", pa.string()),
            ("cached", pa.bool_()),
            ("warnings", pa.list_(pa.string())),
            ("rubric_source", pa.string()),
            ("rubric_warnings", pa.list_(pa.string())),
            ("rescored_with", pa.string()),  # JSON text: its shape varies
            ("forward", pass_type),
            ("reversed", pass_type),
            ("criteria", pa.list_(criterion_type)),
        ]
    )


def _parquet_row(record: Mapping[str, Any]) -> Record:
    row = dict(record)
    if row.get("rescored_with") is not None:
        row["rescored_with"] = json.dumps(row["rescored_with"], sort_keys=True)
    row["criteria"] = [
        {
            key: (int(value) if isinstance(value, bool) else value)
            for key, value in criterion.items()
        }
        for criterion in row.get("criteria") or ()
    ]
    return row


def write_parquet(records: Iterable[Mapping[str, Any]], path: Path, *, batch: int = 2000) -> bool:
    """Write `details.parquet` from records, streaming in batches; False without pyarrow."""
    try:
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        return False
    schema = _parquet_schema()
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with pq.ParquetWriter(temporary, schema) as writer:
            rows: list[Record] = []
            for record in records:
                rows.append(_parquet_row(record))
                if len(rows) >= batch:
                    writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                    rows = []
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
        keep_mode(temporary, path)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return True
