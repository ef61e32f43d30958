"""Aggregates over a set of comparisons: counts, win rates, intervals, mean scores.

Conventions (the protocol's): response A is the baseline, response B the candidate. The
win rate is B's share of decisive reconciled comparisons, b / (a + b); its 95% interval is
always the Wilson score interval, and a seeded percentile bootstrap over comparisons is
offered beside it. Every interval carries its method and level so a report can print them.

`Aggregator` is incremental (add one verdict at a time, in any order), so a run over 100k
rows keeps only a few numbers per comparison in memory; its results depend on the rows and
the seed, never on the order in which comparisons finished.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from .models import LABELS, Label, Verdict

DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0


class Interval(BaseModel):
    """A confidence interval with the facts needed to read it."""

    model_config = ConfigDict(frozen=True)

    low: float
    high: float
    method: Literal["wilson", "bootstrap"]
    level: float
    n: int
    resamples: int | None = None
    seed: int | None = None

    def describe(self) -> str:
        """`[0.397, 0.892] (95% Wilson, n=10)`."""
        what = (
            "Wilson"
            if self.method == "wilson"
            else (f"percentile bootstrap, {self.resamples} resamples, seed {self.seed}")
        )
        return f"[{self.low:.3f}, {self.high:.3f}] ({self.level:.0%} {what}, n={self.n})"


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1, e.g. 0.95")
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson_interval(successes: int, n: int, level: float = DEFAULT_LEVEL) -> Interval:
    """Wilson score interval for a binomial proportion; [0, 1] when n is 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError("need 0 <= successes <= n")
    if n == 0:
        return Interval(low=0.0, high=1.0, method="wilson", level=level, n=0)
    z = _z(level)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 or n successes the bound is exactly 0 or 1; avoid a rounding residue there.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(low=low, high=high, method="wilson", level=level, n=n)


def bootstrap_interval(
    outcomes: Sequence[float] | np.ndarray,
    level: float = DEFAULT_LEVEL,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """Percentile bootstrap of the mean of `outcomes` (1.0 = B won, 0.0 = A won).

    Resamples comparisons with replacement, `resamples` times, from a seeded generator,
    so the same input and seed always give the same interval.
    """
    values = np.asarray(outcomes, dtype=float)
    n = int(values.size)
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    if n == 0:
        return Interval(
            low=0.0, high=1.0, method="bootstrap", level=level, n=0, resamples=resamples, seed=seed
        )
    _z(level)  # validates the level
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // n)  # bounded memory for large n
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        picks = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[picks].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(
        low=float(low),
        high=float(high),
        method="bootstrap",
        level=level,
        n=n,
        resamples=resamples,
        seed=seed,
    )


def mean_stderr(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and its standard error (sample standard deviation / sqrt(n)); stderr 0 for n < 2."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return 0.0, 0.0
    mean = float(array.mean())
    if array.size < 2:
        return mean, 0.0
    return mean, float(array.std(ddof=1) / math.sqrt(array.size))


class Estimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    mean: float
    stderr: float
    n: int


class Counts(BaseModel):
    """Outcome counts, in the protocol's terms (A = baseline, B = candidate)."""

    model_config = ConfigDict(frozen=True)

    a_wins: int = 0
    b_wins: int = 0
    ties: int = 0
    bothbad: int = 0
    errors: int = 0

    @property
    def decisive(self) -> int:
        return self.a_wins + self.b_wins

    @property
    def total(self) -> int:
        return self.a_wins + self.b_wins + self.ties + self.bothbad + self.errors


class Aggregates(BaseModel):
    """Everything the protocol asks of a set of comparisons.

    `comparisons` counts the rows that reached the judge (judged or a judge error);
    `invalid_rows` the input rows that could not be read, which never count as judge
    errors; `rows` is both together.
    """

    model_config = ConfigDict(frozen=True)

    comparisons: int
    invalid_rows: int = 0
    passes: Counts
    reconciled: Counts
    consistency_rate: float | None
    winrate: float | None
    tie_aware_winrate: float | None
    wilson: Interval
    bootstrap: Interval | None
    weighted_a: Estimate
    weighted_b: Estimate
    margin: Estimate
    criteria: dict[str, dict[str, float]]

    @property
    def rows(self) -> int:
        return self.comparisons + self.invalid_rows


def _count(counts: dict[str, int], label: Label) -> None:
    key = {"A>B": "a_wins", "B>A": "b_wins", "A=B": "ties", "A=B (bothbad)": "bothbad"}[label]
    counts[key] += 1


@dataclass(frozen=True)
class _Judged:
    """What one judged comparison contributes to the aggregates that involve floats."""

    outcome: float | None  # 1.0 B won, 0.0 A won, None otherwise
    weighted_a: float
    weighted_b: float
    #: (criterion, sum of A's normalized scores, sum of B's, passes) per criterion.
    criteria: tuple[tuple[str, float, float, int], ...]


def _judged(verdict: Verdict) -> _Judged:
    criteria: list[tuple[str, float, float, int]] = []
    for criterion in verdict.rubric.criteria:
        sum_a = sum_b = 0.0
        n = 0
        for item in verdict.passes:
            score = item.score(criterion.name)
            if score is not None:
                sum_a += criterion.normalize(score.score_a)
                sum_b += criterion.normalize(score.score_b)
                n += 1
        criteria.append((criterion.name, sum_a, sum_b, n))
    outcome = {"B>A": 1.0, "A>B": 0.0}.get(verdict.preference)
    return _Judged(outcome, verdict.weighted_a, verdict.weighted_b, tuple(criteria))


class Aggregator:
    """Collects verdicts one at a time, in any order; `result()` computes the aggregates.

    Give each comparison its row `index`: the float aggregates (means, criterion means and
    the seeded bootstrap) are computed over the comparisons sorted by index, so the same
    rows give the same bytes whatever order they finished in (a concurrent run, a cached
    rerun, a rescore). Without an index a comparison takes its arrival position.
    """

    def __init__(
        self,
        *,
        level: float = DEFAULT_LEVEL,
        resamples: int | None = DEFAULT_RESAMPLES,
        seed: int = DEFAULT_SEED,
    ) -> None:
        _z(level)
        self.level = level
        self.resamples = resamples
        self.seed = seed
        self._passes = dict.fromkeys(("a_wins", "b_wins", "ties", "bothbad", "errors"), 0)
        self._reconciled = dict(self._passes)
        self._consistent = 0
        self._invalid = 0
        self._arrivals = 0
        #: ((index, arrival), contribution) per judged comparison, sorted in `result()`.
        self._judged: list[tuple[tuple[int, int], _Judged]] = []

    def _key(self, index: int | None) -> tuple[int, int]:
        arrival = self._arrivals
        self._arrivals += 1
        return (arrival if index is None else index, arrival)

    def add(self, verdict: Verdict, index: int | None = None) -> None:
        """A judged comparison, `index` being its row's position in the input."""
        key = self._key(index)
        for item in verdict.passes:
            _count(self._passes, item.preference)
        _count(self._reconciled, verdict.preference)
        self._consistent += verdict.consistent
        self._judged.append((key, _judged(verdict)))

    def add_error(self, index: int | None = None) -> None:
        """A comparison whose judge call failed: counted, never a win for either side."""
        self._key(index)
        self._passes["errors"] += 2
        self._reconciled["errors"] += 1

    def add_invalid(self, index: int | None = None) -> None:
        """An input row that could not be read: no comparison, and no judge error."""
        self._key(index)
        self._invalid += 1

    def extend(self, verdicts: Iterable[Verdict | None]) -> Aggregator:
        for verdict in verdicts:
            if verdict is None:
                self.add_error()
            else:
                self.add(verdict)
        return self

    def result(self) -> Aggregates:
        reconciled = Counts(**self._reconciled)
        a, b = reconciled.a_wins, reconciled.b_wins
        ties = reconciled.ties + reconciled.bothbad
        decisive_plus_ties = a + b + ties
        judged = [item for _, item in sorted(self._judged, key=lambda pair: pair[0])]
        outcomes = [item.outcome for item in judged if item.outcome is not None]
        weighted_a = [item.weighted_a for item in judged]
        weighted_b = [item.weighted_b for item in judged]
        margins = np.asarray(weighted_a) - np.asarray(weighted_b)
        sums: dict[str, list[float]] = {}
        for item in judged:
            for name, sum_a, sum_b, n in item.criteria:
                total = sums.setdefault(name, [0.0, 0.0, 0.0])
                total[0] += sum_a
                total[1] += sum_b
                total[2] += n
        return Aggregates(
            comparisons=len(judged) + reconciled.errors,
            invalid_rows=self._invalid,
            passes=Counts(**self._passes),
            reconciled=reconciled,
            consistency_rate=self._consistent / len(judged) if judged else None,
            winrate=b / (a + b) if a + b else None,
            tie_aware_winrate=(b + ties / 2) / decisive_plus_ties if decisive_plus_ties else None,
            wilson=wilson_interval(b, a + b, self.level),
            bootstrap=(
                bootstrap_interval(outcomes, self.level, resamples=self.resamples, seed=self.seed)
                if self.resamples
                else None
            ),
            weighted_a=_estimate(weighted_a),
            weighted_b=_estimate(weighted_b),
            margin=_estimate(margins),
            criteria={
                name: {"mean_a": s[0] / s[2], "mean_b": s[1] / s[2], "n_passes": s[2]}
                for name, s in sums.items()
                if s[2]
            },
        )


def _estimate(values: Sequence[float] | np.ndarray) -> Estimate:
    mean, stderr = mean_stderr(values)
    return Estimate(mean=mean, stderr=stderr, n=len(values))


def aggregate(
    verdicts: Iterable[Verdict | None],
    *,
    level: float = DEFAULT_LEVEL,
    resamples: int | None = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Aggregates:
    """Aggregates of `verdicts`; a None stands for a comparison that ended in a judge error."""
    return Aggregator(level=level, resamples=resamples, seed=seed).extend(verdicts).result()


__all__ = [
    "LABELS",
    "Aggregates",
    "Aggregator",
    "Counts",
    "Estimate",
    "Interval",
    "aggregate",
    "bootstrap_interval",
    "fleiss_kappa",
    "mean_stderr",
    "wilson_interval",
]


def fleiss_kappa(ratings: Sequence[Sequence[Label]]) -> float | None:
    """Fleiss' kappa for several raters (judges) labelling the same subjects (comparisons).

    Each row holds one subject's labels, one per rater, every row the same length (3 or
    more raters is the usual use). Ties and both-bad count as one category. None when it
    is undefined: no subjects, fewer than 2 raters, or every rating in one category.
    """
    rows = [[{"A>B": "A", "B>A": "B"}.get(label, "tie") for label in row] for row in ratings]
    if not rows or len({len(row) for row in rows}) != 1 or len(rows[0]) < 2:
        return None
    raters = len(rows[0])
    categories = ("A", "B", "tie")
    counts = np.array([[row.count(c) for c in categories] for row in rows], dtype=float)
    agreement = ((counts * (counts - 1)).sum(axis=1) / (raters * (raters - 1))).mean()
    shares = counts.sum(axis=0) / counts.sum()
    expected = float((shares**2).sum())
    if expected >= 1.0:
        return None
    return float((agreement - expected) / (1 - expected))
