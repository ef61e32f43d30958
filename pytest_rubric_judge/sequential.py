"""Sequential judging: when to stop drawing samples, and what the samples showed.

Pure Python (no other module of the package, nothing but the standard library), so that
`benchmarks/bench_sequential.py` simulates exactly the function the assertions use.

Each sample of a judged assertion is a *win* or not (for `assert_preferred`: the sample's
reconciled verdict prefers new, in both orders, by at least `min_margin`). Let p be the
probability that a sample wins. The test decides between "p > 1/2" (pass) and "p < 1/2"
(fail) with two one-sided sequential probability ratio tests (Wald's SPRT, open-ended),
truncated at `max_samples` (undecided):

- pass test: H0 p <= 1/2 against H1 p = p1 (`design`, 0.8 by default). Its statistic is
  the likelihood ratio LR+ = (2 p1)^wins (2 (1 - p1))^losses; pass when LR+ >= 1/alpha,
  with alpha = 1 - confidence.
- fail test: the mirror image, H0 p >= 1/2 against p = 1 - p1; fail when
  LR- = (2 p1)^losses (2 (1 - p1))^wins >= 1/alpha.

Under any p <= 1/2, LR+ is a non-negative supermartingale that starts at 1, so by Ville's
inequality the chance that it *ever* reaches 1/alpha is at most alpha: the false-pass
rate is at most 1 - confidence whatever the stopping rule (batches, cache hits, a later
rerun with a larger `max_samples`). The same holds for false fails under p >= 1/2. The
two boundaries cannot both be crossed (LR+ x LR- = (4 p1 (1 - p1))^n < 1). Between
1 - p1 and p1 (the indifference region) the test is built to say little: there it
usually ends undecided.

The interval on p is the same family of tests inverted: the lower bound is the smallest
p0 that a likelihood ratio test of "p = p0" against "p = p0 + theta (1 - p0)" (theta =
2 p1 - 1, so 0.8 against 1/2) has not rejected, the upper bound its mirror image. Each
bound holds at level `confidence` at every sample count at once (Ville again), so it is
valid at the data-dependent stop; the two together cover p with probability at least
2 confidence - 1. A pass is exactly "the lower bound reached 1/2", a fail "the upper
bound fell to 1/2": the interval and the decision never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_DESIGN",
    "DEFAULT_MAX_SAMPLES",
    "METHOD",
    "Decision",
    "Flakiness",
    "Outcome",
    "SequentialTest",
    "flakiness",
]

Outcome = Literal["pass", "fail", "undecided"]
Flakiness = Literal["stable_pass", "stable_fail", "flaky"]

DEFAULT_CONFIDENCE = 0.95
DEFAULT_MAX_SAMPLES = 16
#: Samples drawn at once (each sample is both orders: 2 passes, or 1 grading).
DEFAULT_BATCH = 4
#: The win probability p1 the pass test is built to detect (the fail test: 1 - p1).
DEFAULT_DESIGN = 0.8
#: How the method is named in reports.
METHOD = "SPRT"


@dataclass(frozen=True)
class Decision:
    """What a sequential test decided, and on what evidence."""

    outcome: Outcome
    #: Samples the decision used: the count at which a boundary was first crossed, or
    #: `max_samples` when none was.
    samples: int
    wins: int
    confidence: float
    max_samples: int
    #: The interval on the win probability: `low` and `high` are each an anytime-valid
    #: bound at level `confidence` (see the module's docstring).
    low: float
    high: float
    #: Samples drawn (whole batches), at least `samples`; the rest are cached, unused.
    drawn: int = 0
    design: float = DEFAULT_DESIGN
    method: str = METHOD

    @property
    def losses(self) -> int:
        return self.samples - self.wins

    @property
    def split(self) -> str:
        """`7-1`: samples won against samples lost."""
        return f"{self.wins}-{self.losses}"

    @property
    def interval(self) -> str:
        """`[0.552, 1.000]`."""
        return f"[{self.low:.3f}, {self.high:.3f}]"

    def describe(self) -> str:
        """One line: outcome, evidence, interval and method."""
        verb = {"pass": "passed", "fail": "failed", "undecided": "undecided"}[self.outcome]
        return (
            f"sequential test {verb} after {self.samples} of at most {self.max_samples} "
            f"samples: {self.wins} won, {self.losses} lost; win probability in "
            f"{self.interval} ({self.method} p1={self.design:g}, "
            f"{self.confidence * 100:.4g}% anytime-valid bounds)"
        )


def flakiness(wins: int | None, total: int | None) -> Flakiness | None:
    """Across the samples of one assertion: every one won, none won, or both seen.

    None when there are fewer than two samples: one sample shows no flakiness.
    """
    if wins is None or total is None or total < 2:
        return None
    if wins == total:
        return "stable_pass"
    if wins == 0:
        return "stable_fail"
    return "flaky"


@dataclass(frozen=True)
class SequentialTest:
    """Two one-sided SPRTs on the win probability of a judged assertion's samples."""

    confidence: float = DEFAULT_CONFIDENCE
    max_samples: int = DEFAULT_MAX_SAMPLES
    design: float = DEFAULT_DESIGN
    batch: int = DEFAULT_BATCH

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be above 0.5 and below 1, not {self.confidence}")
        if isinstance(self.max_samples, bool) or self.max_samples < 1:
            raise ValueError(f"max_samples must be 1 or more, not {self.max_samples}")
        if not 0.5 < self.design < 1:
            raise ValueError(f"design must be above 0.5 and below 1, not {self.design}")
        if self.batch < 1:
            raise ValueError(f"batch must be 1 or more, not {self.batch}")

    @property
    def alpha(self) -> float:
        """The bound on the false-pass (and the false-fail) rate: 1 - confidence."""
        return 1.0 - self.confidence

    @property
    def _threshold(self) -> float:
        return math.log(1.0 / self.alpha)

    def log_ratio(self, wins: int, losses: int) -> float:
        """log LR+: the evidence for p = p1 against p = 1/2 (LR- swaps wins and losses)."""
        return wins * math.log(2 * self.design) + losses * math.log(2 * (1 - self.design))

    def status(self, wins: int, losses: int) -> Outcome | None:
        """`pass` or `fail` when a boundary is crossed at these counts, else None."""
        if self.log_ratio(wins, losses) >= self._threshold:
            return "pass"
        if self.log_ratio(losses, wins) >= self._threshold:
            return "fail"
        return None

    def _lower(self, wins: int, losses: int) -> float:
        """The smallest p0 not rejected against p0 + theta (1 - p0)."""
        if wins == 0:
            return 0.0
        theta = 2 * self.design - 1
        exponent = (self._threshold - losses * math.log(1 - theta)) / wins
        if exponent > 700:  # exp would overflow: the bound is 0 to every printed digit
            return 0.0
        return theta / (math.exp(exponent) - (1 - theta))

    def interval(self, wins: int, losses: int) -> tuple[float, float]:
        """(low, high): anytime-valid bounds on the win probability, each at `confidence`."""
        return self._lower(wins, losses), 1.0 - self._lower(losses, wins)

    def min_samples(self) -> int:
        """The fewest samples on which the test can decide (all of them wins, or losses)."""
        n = 1
        while self.status(n, 0) is None:
            n += 1
        return n

    def next_batch(self, drawn: int) -> range:
        """The indices of the next samples to draw, `drawn` having been drawn."""
        return range(drawn, min(drawn + self.batch, self.max_samples))

    def decide(self, outcomes: Iterable[bool]) -> Decision | None:
        """The decision on these sample outcomes (True: a win), taken in order.

        The test stops at the first sample at which a boundary is crossed, so the
        decision does not depend on how the samples were drawn (batch size, cache). None
        when no boundary is crossed and fewer than `max_samples` outcomes are given;
        outcomes past `max_samples` are ignored.
        """
        wins = losses = 0
        drawn = 0
        for won in outcomes:
            if drawn == self.max_samples:
                break
            drawn += 1
            wins, losses = wins + bool(won), losses + (not won)
            outcome = self.status(wins, losses)
            if outcome is not None:
                return self._decision(outcome, wins, losses)
        if drawn < self.max_samples:
            return None
        return self._decision("undecided", wins, losses)

    def _decision(self, outcome: Outcome, wins: int, losses: int) -> Decision:
        low, high = self.interval(wins, losses)
        return Decision(
            outcome=outcome,
            samples=wins + losses,
            wins=wins,
            confidence=self.confidence,
            max_samples=self.max_samples,
            low=low,
            high=high,
            drawn=wins + losses,
            design=self.design,
        )
