"""Judging the judge: agreement, kappa, position bias and calibration on labelled preferences.

    from pytest_rubric_judge.calibration import read_gold, run_calibration

    gold = read_gold("judgebench.jsonl")              # format detected from the fields
    report = run_calibration(judge, gold, concurrency=16)
    print(summary_text(report))

The gold formats are read by `gold` (re-exported here); Cohen's kappa and `Rate` live in
`agreement`, the plain-versus-Markdown probe in `format_probe`, model families and the
self-preference warning in `families`.

Every metric is computed from the two oriented passes of each verdict (see docs/calibration.md
for how to read them). Each rate is a `Rate`: successes, n, and its Wilson interval.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from .agreement import Kappa, Rate, cohen_kappa
from .families import self_preference_warning
from .format_probe import DEFAULT_FORMAT_PROBE, FormatProbe, run_format_probe
from .gold import (
    FORMATS,
    GOLD_LABELS,
    REQUIRED,
    GoldFormat,
    GoldFormatError,
    GoldRow,
    detect_format,
    gold_row,
    parse_gold,
    read_gold,
)
from .models import Label, Verdict
from .scoring import LABEL_VALUE
from .stats import DEFAULT_LEVEL

if TYPE_CHECKING:
    from .judge import Judge

__all__ = [
    "DEFAULT_FORMAT_PROBE",
    "FORMATS",
    "GOLD_LABELS",
    "MARGIN_EDGES",
    "REQUIRED",
    "CalibrationReport",
    "FormatProbe",
    "GoldFormat",
    "GoldFormatError",
    "GoldRow",
    "Kappa",
    "Rate",
    "compute_report",
    "detect_format",
    "gold_row",
    "parse_gold",
    "read_gold",
    "run_calibration",
    "summary_text",
]

#: Bucket edges on |margin| (mean weighted score of A minus B, over both passes).
MARGIN_EDGES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)


# -- metrics ----------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


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
    #: Cohen's kappa against the gold labels: "reconciled" (the verdict's label), "forward"
    #: and "reversed" (each pass's label, oriented to the original A and B).
    kappa: dict[str, Kappa]
    format_probe: FormatProbe | None = None
    judge_model: str | None = None
    warnings: list[str] = []


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
    format_probe: FormatProbe | None = None,
    judge_model: str | None = None,
) -> CalibrationReport:
    """Every metric from labelled rows and the judge's verdicts on them.

    `judge_model` defaults to the model most verdicts name; it and the rows' generators
    decide the self-preference warning."""
    n = len(pairs)
    labels: dict[str, list[int]] = {"gold": [], "reconciled": [], "forward": [], "reversed": []}
    fwd = rev = rec = cons = cons_ok = jb = jb_n = flips = flips_a = 0
    bucket_ok = [0] * (len(edges) - 1)
    bucket_n = [0] * (len(edges) - 1)
    bucket_margin = [0.0] * (len(edges) - 1)
    length_ok = {"longer_is_winner": 0, "shorter_is_winner": 0}
    length_n = {"longer_is_winner": 0, "shorter_is_winner": 0}
    scores: dict[str, dict[str, Any]] = {}
    for gold, verdict in pairs:
        f, r = _value(verdict.forward.preference), _value(verdict.reversed.preference)
        for key, value in (
            ("gold", gold.label),
            ("reconciled", _value(verdict.preference)),
            ("forward", f),
            ("reversed", r),
        ):
            labels[key].append(value)
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
            length_a, length_b = (_length(response) for response in gold.responses)
            if length_a != length_b:
                longer = 1 if length_a > length_b else -1
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
    if judge_model is None:
        named = Counter(verdict.judge_model for _, verdict in pairs if verdict.judge_model)
        judge_model = named.most_common(1)[0][0] if named else None
    warning = judge_model and self_preference_warning(
        judge_model, (gold.generators for gold, _ in pairs)
    )
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
            "kappa: Cohen's, judge label against gold label; interval kappa +- z * SE with "
            "the large-sample SE of Fleiss, Cohen & Everitt (1969), clipped to [-1, 1]",
        ],
        kappa={
            key: cohen_kappa(labels[key], labels["gold"], level)
            for key in ("reconciled", "forward", "reversed")
        },
        format_probe=format_probe,
        judge_model=judge_model,
        warnings=[warning] if warning else [],
    )


def _length(response: object) -> int:
    """The characters of a response's text; of a list of messages, their text contents and
    tool calls' arguments (headers, roles, ids and images do not count)."""
    if isinstance(response, str):
        return len(response)
    if isinstance(response, Mapping):
        total = 0
        for key, value in response.items():
            if key in ("arguments", "args") and not isinstance(value, str):
                total += len(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))
            elif key in ("content", "text", "arguments", "args", "function", "tool_calls"):
                total += _length(value)
        return total
    if isinstance(response, Sequence) and not isinstance(response, bytes | bytearray):
        return sum(_length(item) for item in response)
    return 0


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
    response_a, response_b = row.responses
    return {
        "id": row.id,
        "prompt": row.prompt,
        "response_A": response_a,
        "response_B": response_b,
        "context": row.context,
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
    judge: Judge,
    gold: Sequence[GoldRow],
    *,
    concurrency: int = 16,
    level: float = DEFAULT_LEVEL,
    format_probe: int = DEFAULT_FORMAT_PROBE,
) -> CalibrationReport:
    """Judge every gold row in both orders, then `format_probe` plain-vs-Markdown pairs
    (0 skips the probe; so does a run in which no gold row was judged)."""
    pairs: list[tuple[GoldRow, Verdict]] = []
    errors: list[dict[str, str]] = []
    for row, verdict, error in judge_gold(judge, gold, concurrency=concurrency):
        if verdict is None:
            errors.append({"id": row.id, "error": error or ""})
        else:
            pairs.append((row, verdict))
    pairs.sort(key=lambda item: item[0].index)
    probe = None
    if format_probe > 0 and pairs:
        probe = run_format_probe(judge, gold, format_probe, concurrency=concurrency, level=level)
    return compute_report(pairs, errors, rows=len(gold), level=level, format_probe=probe)


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
    lines.append(
        "Cohen's kappa against the gold labels (chance-corrected agreement; 1 perfect, 0 chance):"
    )
    for title, key in (
        ("forward pass", "forward"),
        ("reversed pass", "reversed"),
        ("reconciled label", "reconciled"),
    ):
        lines.append(f"  {title:<34} {report.kappa[key].describe()}")
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
    if report.format_probe is not None:
        lines.extend(report.format_probe.summary_lines())
    lines.extend(f"warning: {warning}" for warning in report.warnings)
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
