"""Suite-level gates: thresholds over every comparison of a run (`--judge-fail-under`).

A single judged assertion is noisy; a team often decides on the whole prompt set instead.
A gate is `key=threshold`:

- ``winrate``: the candidate's (response B, the `new` argument) share of the decisive
  comparisons against its baseline, b / (a + b), must be at least the threshold;
- ``winrate_lower``: the lower end of that rate's Wilson interval must be at least it;
- ``consistency``: the share of comparisons whose two passes agree must be at least it;
- ``errors``: at most this many judge errors.

Gates are evaluated over `stats.Aggregates`, so the numbers printed are the ones the
reports carry. A gate with nothing to measure (no decisive comparison for a win rate, no
comparison for consistency) fails: a gate that cannot be checked has not been met.
Plain Python, no pytest: the plugin parses, evaluates and prints, nothing more.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .stats import Aggregates

GateKey = Literal["winrate", "winrate_lower", "consistency", "errors"]
GATE_KEYS: tuple[GateKey, ...] = ("winrate", "winrate_lower", "consistency", "errors")

_DESCRIPTIONS: dict[GateKey, str] = {
    "winrate": "win rate of new over baseline on decisive comparisons",
    "winrate_lower": "lower end of the win rate's interval",
    "consistency": "share of comparisons consistent in both orders",
    "errors": "judge errors",
}


class Gate(BaseModel):
    """One threshold: `winrate=0.5` means "fail when the win rate is under 0.5"."""

    model_config = ConfigDict(frozen=True)

    key: GateKey
    threshold: float

    @property
    def spelling(self) -> str:
        """The gate as the user writes it: `winrate=0.5`, `errors=0`."""
        value = str(int(self.threshold)) if self.key == "errors" else f"{self.threshold:g}"
        return f"{self.key}={value}"

    @property
    def condition(self) -> str:
        """What must hold: `winrate >= 0.5`, `errors <= 0`."""
        if self.key == "errors":
            return f"errors <= {int(self.threshold)}"
        return f"{self.key} >= {self.threshold:g}"


class GateResult(BaseModel):
    """A gate, the value measured for it, and whether the run met it."""

    model_config = ConfigDict(frozen=True)

    gate: Gate
    value: float | None
    passed: bool
    detail: str

    def line(self) -> str:
        """`gate winrate >= 0.5: PASSED (0.750 = 6/8 decisive comparisons)`."""
        return (
            f"gate {self.gate.condition}: {'PASSED' if self.passed else 'FAILED'} ({self.detail})"
        )


def _accepted() -> str:
    return (
        "accepted keys: winrate=RATE, winrate_lower=RATE, consistency=RATE (RATE between 0 "
        "and 1) and errors=N (N a whole number >= 0); separate several with commas"
    )


def parse_gate(text: str) -> Gate:
    """One `key=threshold` expression; ValueError naming the accepted keys otherwise."""
    key, sep, value = text.strip().partition("=")
    key, value = key.strip().lower(), value.strip()
    if not sep or not key or not value:
        raise ValueError(f"{text.strip()!r} is not a gate of the form key=threshold; {_accepted()}")
    if key not in GATE_KEYS:
        raise ValueError(f"unknown gate key {key!r}; {_accepted()}")
    if key == "errors":
        try:
            count = int(value)
        except ValueError:
            raise ValueError(f"errors={value} is not a whole number; {_accepted()}") from None
        if count < 0:
            raise ValueError(f"errors={value} must be 0 or more; {_accepted()}")
        return Gate(key="errors", threshold=float(count))
    try:
        rate = float(value)
    except ValueError:
        raise ValueError(f"{key}={value} is not a number; {_accepted()}") from None
    if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
        raise ValueError(f"{key}={value} must be between 0 and 1; {_accepted()}")
    for known in GATE_KEYS:
        if known == key:
            return Gate(key=known, threshold=rate)
    raise AssertionError("unreachable")  # pragma: no cover


def parse_gates(text: str) -> tuple[Gate, ...]:
    """Comma-separated gates: `winrate=0.5,errors=0`. An empty text is no gate."""
    return tuple(parse_gate(part) for part in text.split(",") if part.strip())


def gates_argument(text: str) -> tuple[Gate, ...]:
    """`parse_gates` for argparse `type=`: a bad expression is a usage error."""
    try:
        gates = parse_gates(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not gates:
        raise argparse.ArgumentTypeError(f"no gate given; {_accepted()}")
    return gates


def _rate_detail(value: float | None, successes: int, n: int, what: str) -> str:
    if value is None:
        return f"no {what} to measure"
    return f"{value:.3f} = {successes}/{n} {what}"


def evaluate(gates: Iterable[Gate], aggregates: Aggregates) -> list[GateResult]:
    """Each gate against the run's aggregates, in the order given."""
    results: list[GateResult] = []
    reconciled = aggregates.reconciled
    judged = aggregates.comparisons - reconciled.errors
    for gate in gates:
        value: float | None
        if gate.key == "winrate":
            value = aggregates.winrate
            detail = _rate_detail(
                value, reconciled.b_wins, reconciled.decisive, "decisive comparisons won by new"
            )
        elif gate.key == "winrate_lower":
            interval = aggregates.wilson
            value = interval.low if interval.n else None
            detail = (
                "no decisive comparisons to measure"
                if value is None
                else f"{value:.3f}, win rate interval {interval.describe()}"
            )
        elif gate.key == "consistency":
            value = aggregates.consistency_rate
            consistent = round(value * judged) if value is not None else 0
            detail = _rate_detail(value, consistent, judged, "comparisons consistent")
        else:
            value = float(reconciled.errors)
            detail = f"{reconciled.errors} judge errors"
        if gate.key == "errors":
            passed = value is not None and value <= gate.threshold
        else:
            # A rate printed as 0.500 must meet a 0.5 gate: compare with a tiny tolerance.
            passed = value is not None and value >= gate.threshold - 1e-12
        results.append(GateResult(gate=gate, value=value, passed=passed, detail=detail))
    return results


def failed(results: Sequence[GateResult]) -> list[GateResult]:
    return [result for result in results if not result.passed]


def describe_gate_key(key: GateKey) -> str:
    return _DESCRIPTIONS[key]


__all__ = [
    "GATE_KEYS",
    "Gate",
    "GateKey",
    "GateResult",
    "evaluate",
    "failed",
    "gates_argument",
    "parse_gate",
    "parse_gates",
]
