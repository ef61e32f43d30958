"""Agreement statistics: a proportion with its Wilson interval, and Cohen's kappa.

Cohen's kappa corrects raw agreement for the agreement two raters would reach by chance
from their label frequencies alone:

    kappa = (p_o - p_e) / (1 - p_e),  p_o = sum_i p_ii,  p_e = sum_i p_i. * p_.i

where p_ij is the share of rows the first rater (the judge) labelled i and the second
(the gold file) labelled j. Its interval is the Wald interval kappa +- z * SE with the
large-sample standard error of Fleiss, Cohen & Everitt (1969), the one SAS's PROC FREQ
reports as "ASE", clipped to [-1, 1]:

    SE^2 = [ sum_i p_ii (1 - (p_i. + p_.i)(1 - kappa))^2
             + (1 - kappa)^2 sum_{i != j} p_ij (p_.i + p_j.)^2
             - (kappa - p_e (1 - kappa))^2 ] / (n (1 - p_e)^2)

Kappa is left undefined (None, with the reason) when there are no rows, or when the gold
labels are all one value: chance agreement then equals raw agreement whatever the judge
says, so kappa is 0 or 0/0 and tells nothing about the judge. A judge that gives one label
to every row gets kappa 0 exactly (no better than chance), with a zero-width interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .stats import DEFAULT_LEVEL, Interval, wilson_interval

__all__ = ["KAPPA_METHOD", "Kappa", "KappaInterval", "Rate", "cohen_kappa", "kappa_from_table"]

KAPPA_METHOD = "fleiss-cohen-everitt"
#: Label values as calibration compares them, and how a table's rows and columns read.
LABEL_NAMES: dict[int, str] = {1: "A>B", -1: "B>A", 0: "A=B"}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Rate(_Frozen):
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


class KappaInterval(_Frozen):
    """kappa +- z * se, clipped to [-1, 1]."""

    low: float
    high: float
    se: float
    method: Literal["fleiss-cohen-everitt"] = "fleiss-cohen-everitt"
    level: float
    n: int

    def describe(self) -> str:
        """`[0.214, 0.755] (95% Fleiss-Cohen-Everitt, n=19)`."""
        return (
            f"[{self.low:.3f}, {self.high:.3f}] ({self.level:.0%} Fleiss-Cohen-Everitt, n={self.n})"
        )


class Kappa(_Frozen):
    """Cohen's kappa with its raw (`observed`) and chance (`expected`) agreement.

    `value` and `interval` are None when kappa is undefined; `undefined` then says why."""

    value: float | None
    interval: KappaInterval | None
    observed: float | None
    expected: float | None
    n: int
    undefined: str | None = None

    def describe(self) -> str:
        """`0.484 [0.214, 0.755] (95% Fleiss-Cohen-Everitt, n=19); raw 0.684, chance 0.388`."""
        raw = "n/a" if self.observed is None else f"{self.observed:.3f}"
        chance = "n/a" if self.expected is None else f"{self.expected:.3f}"
        if self.value is None or self.interval is None:
            return f"undefined: {self.undefined} (raw {raw}, chance {chance}, n={self.n})"
        return f"{self.value:.3f} {self.interval.describe()}; raw {raw}, chance {chance}"


def kappa_from_table(
    table: Sequence[Sequence[int]],
    level: float = DEFAULT_LEVEL,
    *,
    constant_gold: str | None = None,
) -> Kappa:
    """Kappa of a square table of counts: rows are the first rater's labels, columns the
    second's, in the same category order. `constant_gold`, when given, is the reason kappa
    is undefined although the table has a value (the gold labels are all one value)."""
    size = len(table)
    if any(len(row) != size for row in table) or any(c < 0 for row in table for c in row):
        raise ValueError("need a square table of counts >= 0")
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1, e.g. 0.95")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    n = sum(sum(row) for row in table)
    if n == 0:
        return Kappa(
            value=None, interval=None, observed=None, expected=None, n=0, undefined="no rows"
        )
    p = [[count / n for count in row] for row in table]
    rows = [sum(row) for row in p]
    cols = [sum(p[i][j] for i in range(size)) for j in range(size)]
    observed = sum(p[i][i] for i in range(size))
    expected = sum(rows[i] * cols[i] for i in range(size))
    if constant_gold is not None or expected >= 1 - 1e-12:
        reason = constant_gold or "both raters give every row the same label"
        return Kappa(
            value=None,
            interval=None,
            observed=observed,
            expected=expected,
            n=n,
            undefined=reason,
        )
    kappa = (observed - expected) / (1 - expected)
    diagonal = sum(p[i][i] * (1 - (rows[i] + cols[i]) * (1 - kappa)) ** 2 for i in range(size))
    off = sum(
        p[i][j] * (cols[i] + rows[j]) ** 2 for i in range(size) for j in range(size) if i != j
    )
    variance = (diagonal + (1 - kappa) ** 2 * off - (kappa - expected * (1 - kappa)) ** 2) / (
        n * (1 - expected) ** 2
    )
    se = math.sqrt(max(0.0, variance))  # a rounding residue below 0 at kappa = 0 or 1
    interval = KappaInterval(
        low=max(-1.0, kappa - z * se), high=min(1.0, kappa + z * se), se=se, level=level, n=n
    )
    return Kappa(value=kappa, interval=interval, observed=observed, expected=expected, n=n)


def cohen_kappa(judge: Sequence[int], gold: Sequence[int], level: float = DEFAULT_LEVEL) -> Kappa:
    """Kappa between the judge's label values and the gold ones (+1, -1, 0), row by row."""
    if len(judge) != len(gold):
        raise ValueError("need one judge label per gold label")
    categories = sorted(set(judge) | set(gold), reverse=True)
    where = {value: i for i, value in enumerate(categories)}
    table = [[0] * len(categories) for _ in categories]
    for mine, theirs in zip(judge, gold, strict=True):
        table[where[mine]][where[theirs]] += 1
    constant = None
    if len(set(gold)) == 1:
        name = LABEL_NAMES.get(gold[0], str(gold[0]))
        constant = (
            f"every gold label is {name}, so chance agreement equals raw agreement "
            "whatever the judge says"
        )
    return kappa_from_table(table, level, constant_gold=constant)
