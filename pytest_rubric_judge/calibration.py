"""Judging the judge: agreement, position bias and calibration on labelled preferences.

    from pytest_rubric_judge.calibration import read_gold, run_calibration

    gold = read_gold("judgebench.jsonl")              # format detected from the fields
    report = run_calibration(judge, gold, concurrency=16)
    print(summary_text(report))

Three input formats are read (one JSON object a line):

- ``project``: ``prompt``, ``response_A``, ``response_B``, ``label`` (``A>B``, ``B>A``, ``A=B``);
- ``judgebench``: ``question``, ``response_A``, ``response_B``, ``label`` (``pair_id`` is the id);
- ``rewardbench``: ``prompt``, ``chosen``, ``rejected``; the chosen response goes to slot A
  for about half the rows and to slot B for the rest, decided by a hash of the row's id (its
  index when it has none), so the placement is the same on every run.

Every metric is computed from the two oriented passes of each verdict (see docs/calibration.md
for how to read them). Each rate is a `Rate`: successes, n, and its Wilson interval.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from .models import Label, Verdict
from .scoring import LABEL_VALUE
from .stats import DEFAULT_LEVEL, Interval, wilson_interval

if TYPE_CHECKING:
    from .judge import Judge

__all__ = [
    "FORMATS",
    "MARGIN_EDGES",
    "CalibrationReport",
    "GoldFormatError",
    "GoldRow",
    "Rate",
    "compute_report",
    "detect_format",
    "read_gold",
    "run_calibration",
    "summary_text",
]

GoldFormat = Literal["project", "judgebench", "rewardbench"]
FORMATS: tuple[GoldFormat, ...] = ("project", "judgebench", "rewardbench")
#: Fields each format requires, in the order the error message lists them.
REQUIRED: dict[GoldFormat, tuple[str, ...]] = {
    "project": ("prompt", "response_A", "response_B", "label"),
    "judgebench": ("question", "response_A", "response_B", "label"),
    "rewardbench": ("prompt", "chosen", "rejected"),
}
GOLD_LABELS: dict[str, int] = {"A>B": 1, "B>A": -1, "A=B": 0, "A=B (bothbad)": 0}
#: Bucket edges on |margin| (mean weighted score of A minus B, over both passes).
MARGIN_EDGES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)


class GoldFormatError(ValueError):
    """A gold file that cannot be read: names the line and the fields expected."""


@dataclass(frozen=True)
class GoldRow:
    """One labelled pair. `label` is +1 (A is better), -1 (B is better) or 0 (a tie)."""

    index: int
    id: str
    prompt: str
    response_a: str
    response_b: str
    label: int
    chosen_in: Literal["A", "B"] | None = None  # RewardBench only: where `chosen` went


# -- reading ----------------------------------------------------------------------------


def detect_format(row: Mapping[str, object]) -> GoldFormat:
    """The format a row's fields say it is in; GoldFormatError when none fits."""
    keys = set(row)
    if {"chosen", "rejected"} <= keys:
        return "rewardbench"
    if "question" in keys and "prompt" not in keys:
        return "judgebench"
    if "prompt" in keys and ("response_A" in keys or "label" in keys):
        return "project"
    expected = "; ".join(f"{name}: {', '.join(fields)}" for name, fields in REQUIRED.items())
    raise GoldFormatError(
        f"cannot tell the format from the fields {sorted(keys)}; expected one of {expected}"
    )


def _slot_a_for_chosen(key: str) -> bool:
    """True when RewardBench's chosen response goes to slot A (about half the rows)."""
    return hashlib.sha256(key.encode("utf-8")).digest()[0] % 2 == 0


def _text(row: Mapping[str, object], name: str, where: str, fmt: GoldFormat) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        what = "missing" if value is None else f"a {type(value).__name__}, not a string"
        raise GoldFormatError(
            f"{where}: field {name!r} is {what}; the {fmt} format expects "
            f"{', '.join(REQUIRED[fmt])}"
        )
    return value


def gold_row(index: int, row: object, fmt: GoldFormat, where: str | None = None) -> GoldRow:
    """Read one JSON object in format `fmt`; GoldFormatError names the row and fields."""
    where = where or f"row {index + 1}"
    if not isinstance(row, Mapping):
        raise GoldFormatError(f"{where}: expected a JSON object, got {type(row).__name__}")
    raw_id = row.get("pair_id", row.get("id")) if fmt == "judgebench" else row.get("id")
    row_id = str(index) if raw_id is None else str(raw_id)
    if fmt == "rewardbench":
        prompt = _text(row, "prompt", where, fmt)
        chosen = _text(row, "chosen", where, fmt)
        rejected = _text(row, "rejected", where, fmt)
        if _slot_a_for_chosen(row_id):
            return GoldRow(index, row_id, prompt, chosen, rejected, 1, "A")
        return GoldRow(index, row_id, prompt, rejected, chosen, -1, "B")
    prompt = _text(row, "prompt" if fmt == "project" else "question", where, fmt)
    response_a = _text(row, "response_A", where, fmt)
    response_b = _text(row, "response_B", where, fmt)
    label = _text(row, "label", where, fmt).strip()
    if label not in GOLD_LABELS:
        raise GoldFormatError(
            f"{where}: label {label!r} is not one of {', '.join(GOLD_LABELS)}; the {fmt} "
            f"format expects {', '.join(REQUIRED[fmt])}"
        )
    return GoldRow(index, row_id, prompt, response_a, response_b, GOLD_LABELS[label])


def parse_gold(lines: Iterable[str], fmt: GoldFormat | Literal["auto"] = "auto") -> list[GoldRow]:
    """Read JSON lines; with "auto" the first row's fields choose the format for all."""
    rows: list[GoldRow] = []
    chosen: GoldFormat | None = None if fmt == "auto" else fmt
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise GoldFormatError(f"{where}: not valid JSON ({error.msg})") from None
        if chosen is None:
            if not isinstance(data, Mapping):
                raise GoldFormatError(f"{where}: expected a JSON object")
            try:
                chosen = detect_format(data)
            except GoldFormatError as error:
                raise GoldFormatError(f"{where}: {error}") from None
        rows.append(gold_row(len(rows), data, chosen, where))
    if not rows:
        raise GoldFormatError("the gold file has no rows")
    return rows


def read_gold(path: str | Path, fmt: GoldFormat | Literal["auto"] = "auto") -> list[GoldRow]:
    with Path(path).open(encoding="utf-8") as handle:
        return parse_gold(handle, fmt)


# -- metrics ----------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Rate(_Out):
    """A proportion with its n and Wilson interval."""

    successes: int
    n: int
    rate: float | None
    interval: Interval

    @classmethod
    def of(cls, successes: int, n: int, level: float = DEFAULT_LEVEL) -> Rate:
        return cls(
            successes=successes,
            n=n,
            rate=successes / n if n else None,
            interval=wilson_interval(successes, n, level),
        )

    def describe(self) -> str:
        value = "n/a" if self.rate is None else f"{self.rate:.3f}"
        return f"{value} {self.interval.describe()}"


class Bucket(_Out):
    low: float
    high: float
    confidence: float | None  # 0.5 + mean |margin| / 2 of its rows; None when it has none
    mean_abs_margin: float | None
    accuracy: Rate


class CriterionScores(_Out):
    type: str
    counts: dict[str, int]  # "1".."5" for scale, "true"/"false" for binary
    mean: float | None
    sd: float | None


class CalibrationReport(_Out):
    rows: int
    judged: int
    errors: list[dict[str, str]]
    forward_agreement: Rate
    reversed_agreement: Rate
    reconciled_agreement: Rate
    judgebench_score: Rate
    consistent_agreement: Rate
    position_consistency: Rate
    flips_favouring_slot_a: Rate
    calibration: list[Bucket]
    expected_calibration_error: float | None
    score_distributions: dict[str, CriterionScores]
    length_probe: dict[str, Rate]
    notes: list[str]


def _value(label: Label) -> int:
    return LABEL_VALUE[label]


def judgebench_correct(label: int, forward: int, reversed_: int) -> bool:
    """JudgeBench's rule for a decisive label: each order's decision scores +1 when it
    matches the label, -1 when it is the opposite, 0 for a tie; correct when the sum is > 0
    (both right, or one right and one tie)."""
    total = sum(1 if d == label else (-1 if d == -label else 0) for d in (forward, reversed_))
    return total > 0


def _bucket_index(value: float, edges: Sequence[float]) -> int:
    for i in range(len(edges) - 1):
        if value < edges[i + 1] or i == len(edges) - 2:
            return i
    return len(edges) - 2


def compute_report(
    pairs: Sequence[tuple[GoldRow, Verdict]],
    errors: Sequence[dict[str, str]] = (),
    *,
    rows: int | None = None,
    edges: Sequence[float] = MARGIN_EDGES,
    level: float = DEFAULT_LEVEL,
) -> CalibrationReport:
    """Every metric from labelled rows and the judge's verdicts on them."""
    n = len(pairs)
    fwd = rev = rec = cons = cons_ok = jb = jb_n = flips = flips_a = 0
    bucket_ok = [0] * (len(edges) - 1)
    bucket_n = [0] * (len(edges) - 1)
    bucket_margin = [0.0] * (len(edges) - 1)
    length_ok = {"longer_is_winner": 0, "shorter_is_winner": 0}
    length_n = {"longer_is_winner": 0, "shorter_is_winner": 0}
    scores: dict[str, dict[str, Any]] = {}
    for gold, verdict in pairs:
        f, r = _value(verdict.forward.preference), _value(verdict.reversed.preference)
        fwd += f == gold.label
        rev += r == gold.label
        reconciled = f == r == gold.label
        rec += reconciled
        if f == r:
            cons += 1
            cons_ok += f == gold.label
        elif f > r:  # forward leans to original A (slot A), reversed to original B (slot A)
            flips += 1
            flips_a += 1
        else:
            flips += 1
        if gold.label != 0:
            jb_n += 1
            jb += judgebench_correct(gold.label, f, r)
            if len(gold.response_a) != len(gold.response_b):
                longer = 1 if len(gold.response_a) > len(gold.response_b) else -1
                key = "longer_is_winner" if longer == gold.label else "shorter_is_winner"
                length_n[key] += 1
                length_ok[key] += reconciled
        b = _bucket_index(abs(verdict.margin), edges)
        bucket_n[b] += 1
        bucket_ok[b] += reconciled
        bucket_margin[b] += abs(verdict.margin)
        for pass_ in verdict.passes:
            for item in pass_.scores:
                criterion = verdict.rubric.get(item.name)
                kind = criterion.type if criterion is not None else "scale"
                entry = scores.setdefault(item.name, {"type": kind, "values": []})
                entry["values"].extend((item.score_a, item.score_b))
    buckets: list[Bucket] = []
    ece = 0.0
    for i in range(len(edges) - 1):
        mean = bucket_margin[i] / bucket_n[i] if bucket_n[i] else None
        confidence = None if mean is None else 0.5 + mean / 2
        buckets.append(
            Bucket(
                low=edges[i],
                high=edges[i + 1],
                confidence=confidence,
                mean_abs_margin=mean,
                accuracy=Rate.of(bucket_ok[i], bucket_n[i], level),
            )
        )
        if confidence is not None:
            ece += bucket_n[i] / n * abs(bucket_ok[i] / bucket_n[i] - confidence)
    return CalibrationReport(
        rows=n + len(errors) if rows is None else rows,
        judged=n,
        errors=list(errors),
        forward_agreement=Rate.of(fwd, n, level),
        reversed_agreement=Rate.of(rev, n, level),
        reconciled_agreement=Rate.of(rec, n, level),
        judgebench_score=Rate.of(jb, jb_n, level),
        consistent_agreement=Rate.of(cons_ok, cons, level),
        position_consistency=Rate.of(cons, n, level),
        flips_favouring_slot_a=Rate.of(flips_a, flips, level),
        calibration=buckets,
        expected_calibration_error=ece if n else None,
        score_distributions={
            name: _distribution(entry["type"], entry["values"]) for name, entry in scores.items()
        },
        length_probe={k: Rate.of(length_ok[k], length_n[k], level) for k in length_n},
        notes=[
            "reconciled agreement: both orders give the gold label",
            "judgebench_score: decisive labels only; each order +1 right, -1 opposite, 0 tie; "
            "correct when the sum is positive",
            "calibration confidence = 0.5 + |margin| / 2; accuracy is reconciled agreement",
        ],
    )


def _distribution(kind: str, values: list[Any]) -> CriterionScores:
    if kind == "binary":
        counts = {"true": sum(1 for v in values if v is True)}
        counts["false"] = len(values) - counts["true"]
        numbers = [1.0 if v else 0.0 for v in values]
    else:
        counts = {str(s): sum(1 for v in values if v == s) for s in range(1, 6)}
        numbers = [float(v) for v in values]
    mean = sum(numbers) / len(numbers) if numbers else None
    sd = (
        math.sqrt(sum((x - mean) ** 2 for x in numbers) / len(numbers))
        if numbers and mean is not None
        else None
    )
    return CriterionScores(type=kind, counts=counts, mean=mean, sd=sd)


# -- running ----------------------------------------------------------------------------


def _job(row: GoldRow) -> dict[str, object]:
    return {
        "id": row.id,
        "prompt": row.prompt,
        "response_A": row.response_a,
        "response_B": row.response_b,
    }


def judge_gold(
    judge: Judge, gold: Sequence[GoldRow], *, concurrency: int = 16
) -> Iterator[tuple[GoldRow, Verdict | None, str | None]]:
    """Each gold row with the judge's verdict (or an error message), as rows finish."""
    for result in judge.compare_many((_job(row) for row in gold), concurrency=concurrency):
        row = gold[result.index]
        if result.verdict is None:
            yield row, None, f"{result.error_type}: {result.error}"
        else:
            yield row, result.verdict, None


def run_calibration(
    judge: Judge, gold: Sequence[GoldRow], *, concurrency: int = 16, level: float = DEFAULT_LEVEL
) -> CalibrationReport:
    pairs: list[tuple[GoldRow, Verdict]] = []
    errors: list[dict[str, str]] = []
    for row, verdict, error in judge_gold(judge, gold, concurrency=concurrency):
        if verdict is None:
            errors.append({"id": row.id, "error": error or ""})
        else:
            pairs.append((row, verdict))
    pairs.sort(key=lambda item: item[0].index)
    return compute_report(pairs, errors, rows=len(gold), level=level)


# -- output -----------------------------------------------------------------------------


def most_common_error(report: CalibrationReport) -> str | None:
    """`in 5 rows: JudgeUnavailableError: ...`: the most frequent error type, with the
    message of its first row; None without errors."""
    groups: dict[str, list[str]] = {}
    for error in report.errors:
        message = " ".join(error.get("error", "").split())
        groups.setdefault(message.split(":", 1)[0], []).append(message)
    if not groups:
        return None
    kind, messages = max(groups.items(), key=lambda item: len(item[1]))
    count = len(messages)
    return f"in {count} row{'' if count == 1 else 's'}: {messages[0] or kind}"


def summary_text(report: CalibrationReport) -> str:
    lines = [f"judged {report.judged} of {report.rows} rows ({len(report.errors)} errors)"]
    cause = most_common_error(report)
    if cause is not None:
        lead = "no pair was judged; the cause" if not report.judged else "most common error"
        lines.append(f"  {lead}, {cause}")
    for title, rate in (
        ("forward agreement", report.forward_agreement),
        ("reversed agreement", report.reversed_agreement),
        ("reconciled agreement", report.reconciled_agreement),
        ("JudgeBench score", report.judgebench_score),
        ("agreement when consistent", report.consistent_agreement),
        ("position consistency", report.position_consistency),
        ("flips favouring slot A", report.flips_favouring_slot_a),
        ("longer response wins: agreement", report.length_probe["longer_is_winner"]),
        ("shorter response wins: agreement", report.length_probe["shorter_is_winner"]),
    ):
        lines.append(f"  {title:<34} {rate.describe()}")
    lines.append("calibration by |margin| (accuracy = reconciled agreement):")
    for i, bucket in enumerate(report.calibration):
        close = "]" if i == len(report.calibration) - 1 else ")"
        confidence = "-" if bucket.confidence is None else f"{bucket.confidence:.3f}"
        lines.append(
            f"  [{bucket.low:.2f}, {bucket.high:.2f}{close}  conf {confidence:>5}  "
            f"acc {bucket.accuracy.describe()}"
        )
    ece = report.expected_calibration_error
    lines.append(f"  expected calibration error: {'n/a' if ece is None else f'{ece:.3f}'}")
    lines.append("score distributions:")
    for name, dist in sorted(report.score_distributions.items()):
        counts = " ".join(f"{k}:{v}" for k, v in dist.counts.items())
        mean = "n/a" if dist.mean is None else f"{dist.mean:.2f}"
        sd = "n/a" if dist.sd is None else f"{dist.sd:.2f}"
        lines.append(f"  {name} ({dist.type}) {counts}  mean {mean} sd {sd}")
    return "\n".join(lines)


def write_json(report: CalibrationReport, path: Path) -> None:
    path.write_text(json.dumps(report.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")


def plot_reliability(report: CalibrationReport, path: Path) -> None:
    """reliability.png: accuracy per |margin| bucket against confidence, with intervals.

    Raises `report.plot.PlotUnavailable` without matplotlib."""
    from .report.plot import pyplot

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 5))
    try:
        xs, ys, lows, highs = [], [], [], []
        for bucket in report.calibration:
            if bucket.accuracy.rate is None or bucket.confidence is None:
                continue
            xs.append(bucket.confidence)
            ys.append(bucket.accuracy.rate)
            lows.append(bucket.accuracy.rate - bucket.accuracy.interval.low)
            highs.append(bucket.accuracy.interval.high - bucket.accuracy.rate)
        axes.plot([0.5, 1.0], [0.5, 1.0], linestyle="--", color="grey", label="perfect")
        axes.errorbar(xs, ys, yerr=[lows, highs], marker="o", capsize=3, label="judge")
        axes.set_xlabel("confidence (0.5 + |margin| / 2)")
        axes.set_ylabel("reconciled agreement")
        axes.set_ylim(0, 1.02)
        axes.set_title("Reliability by |margin| bucket")
        axes.legend()
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
