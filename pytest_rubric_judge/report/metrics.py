"""`metrics.json`: the protocol's aggregates, with the article's field names beside them.

Users who migrate from the article's SageMaker job find its fields at the top level:
`a_scores`, `b_scores`, `ties`, `inference_error` (counts of reconciled comparisons),
`winrate` (B's share of decisive comparisons), `lower_rate` and `upper_rate` (the Wilson
interval, as `interval_method` says), and `weighted_score_A`, `weighted_score_B`,
`score_margin`, each with a `_stderr`. The rest is this project's: per-pass and
per-comparison counts, the consistency rate, both interval methods with their level,
resample count and seed, per-criterion mean normalized scores, the input rows that could
not be read (`invalid_rows`, never counted as judge errors) and whether the run judged
what it was given (`status`, `complete`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..stats import Aggregates, Interval, bootstrap_interval, wilson_interval

__all__ = [
    "ARTICLE_COUNTS",
    "STATUSES",
    "article_reproduction",
    "metrics_of",
    "run_status",
    "summary_rows",
]

#: What `status` says of a run, and how the summary table shows it.
STATUSES = {
    "ok": "complete",
    "interrupted": "INTERRUPTED: covers the rows finished so far",
    "nothing_judged": "FAILED: no row was judged",
    "too_many_errors": "FAILED: judge errors above the allowed share",
}

#: The article's example job: 3 A wins, 7 B wins, no tie, 1 inference error of 11 rows.
ARTICLE_COUNTS = {"a": 3, "b": 7, "ties": 0, "errors": 1}
#: What the article printed for it (a bootstrap with an undocumented seed).
ARTICLE_INTERVAL = (0.400, 0.909)


def _interval(interval: Interval | None) -> dict[str, Any] | None:
    if interval is None:
        return None
    return {
        "method": interval.method,
        "level": interval.level,
        "low": interval.low,
        "high": interval.high,
        "n": interval.n,
        "resamples": interval.resamples,
        "seed": interval.seed,
        "text": interval.describe(),
    }


def run_status(
    aggregates: Aggregates, *, interrupted: bool = False, max_error_rate: float | None = None
) -> str:
    """`interrupted`, `nothing_judged` (no row judged, an empty input included),
    `too_many_errors` (the judge-error share of comparisons above `max_error_rate`) or
    `ok`. Invalid input rows are not judge errors and never count toward the share."""
    if interrupted:
        return "interrupted"
    errors = aggregates.reconciled.errors
    if aggregates.comparisons - errors == 0:
        return "nothing_judged"
    if max_error_rate is not None and errors / aggregates.comparisons > max_error_rate:
        return "too_many_errors"
    return "ok"


def metrics_of(
    aggregates: Aggregates,
    *,
    run: Mapping[str, Any] | None = None,
    interrupted: bool = False,
    max_error_rate: float | None = None,
    judge_error_causes: Sequence[Mapping[str, Any]] = (),
    invalid_row_causes: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The `metrics.json` document for a set of comparisons.

    `interrupted` and `max_error_rate` decide `status` (see `run_status`); the causes are
    the judge errors and the invalid rows grouped by cause, most frequent first.
    """
    reconciled, passes = aggregates.reconciled, aggregates.passes
    wilson = aggregates.wilson
    status = run_status(aggregates, interrupted=interrupted, max_error_rate=max_error_rate)
    document: dict[str, Any] = {
        # The article's fields (A = baseline, B = candidate).
        "a_scores": reconciled.a_wins,
        "b_scores": reconciled.b_wins,
        "ties": reconciled.ties + reconciled.bothbad,
        "inference_error": reconciled.errors,
        "winrate": aggregates.winrate,
        "lower_rate": wilson.low,
        "upper_rate": wilson.high,
        "interval_method": f"{wilson.level:.0%} Wilson score interval on b / (a + b)",
        "weighted_score_A": aggregates.weighted_a.mean,
        "weighted_score_A_stderr": aggregates.weighted_a.stderr,
        "weighted_score_B": aggregates.weighted_b.mean,
        "weighted_score_B_stderr": aggregates.weighted_b.stderr,
        "score_margin": aggregates.margin.mean,
        "score_margin_stderr": aggregates.margin.stderr,
        # This project's.
        "status": status,
        "complete": not interrupted,
        "max_error_rate": max_error_rate,
        "rows": aggregates.rows,
        "invalid_rows": aggregates.invalid_rows,
        "comparisons": aggregates.comparisons,
        "judged": aggregates.comparisons - reconciled.errors,
        "error_rate": (
            reconciled.errors / aggregates.comparisons if aggregates.comparisons else None
        ),
        "consistency_rate": aggregates.consistency_rate,
        "tie_aware_winrate": aggregates.tie_aware_winrate,
        "judge_error_causes": [dict(cause) for cause in judge_error_causes],
        "invalid_row_causes": [dict(cause) for cause in invalid_row_causes],
        "intervals": {
            "wilson": _interval(aggregates.wilson),
            "bootstrap": _interval(aggregates.bootstrap),
        },
        "reconciled": {**reconciled.model_dump(), "decisive": reconciled.decisive},
        "passes": {**passes.model_dump(), "decisive": passes.decisive},
        "criteria": {
            name: {
                "mean_A": values["mean_a"],
                "mean_B": values["mean_b"],
                "difference_B_minus_A": values["mean_b"] - values["mean_a"],
                "n_passes": int(values["n_passes"]),
            }
            for name, values in sorted(aggregates.criteria.items())
        },
        "conventions": {
            "A": "response_A, the baseline",
            "comparisons": "rows that reached the judge: judged, or a judge error",
            "invalid_rows": "input rows that could not be read; not judge errors",
            "B": "response_B, the candidate",
            "winrate": "B wins / (A wins + B wins), over reconciled comparisons",
            "score_margin": "weighted_score_A - weighted_score_B (negative favours B)",
            "criteria": "mean normalized score in [0, 1] over both passes",
        },
    }
    if run:
        document["run"] = dict(run)
    return document


def summary_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The summary table (label, value) shared by the dashboard, the HTML and the CLI."""

    def number(value: object, digits: int = 3) -> str:
        return "n/a" if value is None else f"{float(value):.{digits}f}"  # type: ignore[arg-type]

    def share(value: object) -> str:
        return "n/a" if value is None else f"{float(value):.1%}"  # type: ignore[arg-type]

    wilson = metrics["intervals"]["wilson"]
    bootstrap = metrics["intervals"].get("bootstrap")
    rows: list[tuple[str, str]] = []
    status = metrics.get("status")
    if status is not None:
        shown = STATUSES.get(str(status), str(status))
        limit = metrics.get("max_error_rate")
        if status == "too_many_errors" and limit is not None:
            shown = f"FAILED: judge errors above --max-error-rate {float(limit):.1%}"
        rows.append(("status", shown))
    rows.append(("comparisons", str(metrics["comparisons"])))
    if metrics.get("invalid_rows"):
        rows.append(("invalid input rows", str(metrics["invalid_rows"])))
    rows += [
        (
            "judge errors",
            f"{metrics['inference_error']} ({share(metrics['error_rate'])})",
        ),
        (
            "A wins / B wins / ties",
            f"{metrics['a_scores']} / {metrics['b_scores']} / {metrics['ties']}",
        ),
        ("win rate of B", share(metrics["winrate"])),
        ("interval (Wilson)", wilson["text"]),
    ]
    if bootstrap:
        rows.append(("interval (bootstrap)", bootstrap["text"]))
    rows.extend(
        [
            ("consistency rate", share(metrics["consistency_rate"])),
            (
                "weighted score A",
                f"{number(metrics['weighted_score_A'])} ± "
                f"{number(metrics['weighted_score_A_stderr'])}",
            ),
            (
                "weighted score B",
                f"{number(metrics['weighted_score_B'])} ± "
                f"{number(metrics['weighted_score_B_stderr'])}",
            ),
            (
                "margin A - B",
                f"{number(metrics['score_margin'])} ± {number(metrics['score_margin_stderr'])}",
            ),
        ]
    )
    return rows


def article_reproduction(
    *, resamples: int = 1000, seeds: int = 200, level: float = 0.95
) -> dict[str, Any]:
    """The article's summary recomputed from its counts, and why its interval differs.

    Wilson on 7 of 10 decisive comparisons gives [0.397, 0.892]. The article printed
    [0.400, 0.909], a bootstrap: 0.909 is 10/11, a rate no resample of the 10 decisive
    comparisons can produce (their means are multiples of 0.1), so that job resampled all
    11 rows, the error included, and took b / (a + b) of each resample. Over `seeds`
    seeds of that procedure its interval varies; the tally shows how often each occurs.
    """
    a, b, errors = ARTICLE_COUNTS["a"], ARTICLE_COUNTS["b"], ARTICLE_COUNTS["errors"]
    wilson = wilson_interval(b, a + b, level)
    decisive_bootstrap = bootstrap_interval([1.0] * b + [0.0] * a, level, resamples=resamples)
    rows = np.array([1] * b + [0] * a + [-1] * errors)
    tally: dict[str, int] = {}
    tail = (1 - level) / 2 * 100
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        picks = rows[rng.integers(0, rows.size, size=(resamples, rows.size))]
        wins_b, wins_a = (picks == 1).sum(axis=1), (picks == 0).sum(axis=1)
        rates = wins_b / np.maximum(wins_a + wins_b, 1)
        low, high = np.percentile(rates, [tail, 100 - tail])
        key = f"[{low:.3f}, {high:.3f}]"
        tally[key] = tally.get(key, 0) + 1
    return {
        "counts": dict(ARTICLE_COUNTS),
        "comparisons": a + b + errors,
        "winrate": b / (a + b),
        "error_rate": errors / (a + b + errors),
        "wilson": _interval(wilson),
        "bootstrap_decisive_only": _interval(decisive_bootstrap),
        "article_interval": list(ARTICLE_INTERVAL),
        "all_rows_bootstrap": {
            "resamples": resamples,
            "seeds": seeds,
            "intervals": dict(sorted(tally.items(), key=lambda item: -item[1])),
        },
    }
