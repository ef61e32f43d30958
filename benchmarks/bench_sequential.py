"""Error rates of sequential judging, by simulation: a synthetic judge of known win rate.

Not part of the test suite (a fast version of it is: `tests/test_sequential.py`). Pure
Python: no judge, no server. Each run draws up to `max_samples` sample outcomes, each a
win with probability p, and hands them to the decision function the assertions use,
`pytest_rubric_judge.sequential.SequentialTest.decide`. Beside it, on the same outcomes,
two fixed-N votes:

- a plain majority of N = max_samples samples (pass above N/2, fail below, else
  undecided): the usual "run it 16 times and take the majority". At p = 1/2 it passes
  about 40% of the time whatever N, so it cannot match any small false-pass rate;
- a fixed-N threshold vote (pass with at least k wins of N, fail with at most N - k), the
  fixed-N test that can: k is the smallest count whose exact false-pass rate at p = 1/2,
  P(Binomial(N, 1/2) >= k), is at most the sequential test's own exact false-pass rate
  at p = 1/2 (not the bound 1 - confidence, which the sequential test does not use up),
  and N is the smallest whose exact pass rate at p = p1 (0.8, the rate the sequential
  test is built for) is at least the sequential test's. The same error rate at p = 1/2
  and the same power at p1: the samples it uses are what a fixed-N gate as good as the
  sequential test costs.

    python benchmarks/bench_sequential.py [--runs 20000] [--seed 20240611]
        [--confidence 0.95] [--max-samples 16] [--json PATH]

prints a Markdown table (and, with --json, writes the numbers). The exact false-pass rate
at p = 1/2, by dynamic programming over (wins, losses), is printed too: the simulation
must agree with it.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pytest_rubric_judge.sequential import METHOD, SequentialTest

WIN_RATES = (0.5, 0.6, 0.7, 0.8, 0.95)
DEFAULT_RUNS = 20_000
DEFAULT_SEED = 20240611


@dataclass(frozen=True)
class Rates:
    """Outcome rates of one method at one win probability."""

    method: str
    p: float
    passed: float
    failed: float
    undecided: float
    mean_samples: float
    #: Samples drawn (whole batches for the sequential test; N for a fixed vote).
    mean_drawn: float


def binomial_tail(n: int, k: int, p: float) -> float:
    """P(Binomial(n, p) >= k)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1))


def threshold(n: int, alpha: float) -> int:
    """The smallest k with P(Binomial(n, 1/2) >= k) <= alpha (n + 1 when none is)."""
    k = n // 2 + 1
    while k <= n and binomial_tail(n, k, 0.5) > alpha:
        k += 1
    return k


def exact(test: SequentialTest, p: float) -> tuple[float, float, float, float]:
    """(pass, fail, undecided, mean samples) of the sequential test, exactly."""
    alive = {(0, 0): 1.0}
    passed = failed = used = 0.0
    for n in range(1, test.max_samples + 1):
        after: dict[tuple[int, int], float] = {}
        for (wins, losses), chance in alive.items():
            for state, step in (((wins + 1, losses), p), ((wins, losses + 1), 1 - p)):
                mass = chance * step
                outcome = test.status(*state)
                if outcome == "pass":
                    passed, used = passed + mass, used + mass * n
                elif outcome == "fail":
                    failed, used = failed + mass, used + mass * n
                else:
                    after[state] = after.get(state, 0.0) + mass
        alive = after
    undecided = sum(alive.values())
    return passed, failed, undecided, used + undecided * test.max_samples


def matched_fixed_n(test: SequentialTest) -> tuple[int, int]:
    """(N, k) of the fixed-N threshold vote matched to `test` (see the module docstring)."""
    error = exact(test, 0.5)[0]
    power = exact(test, test.design)[0]
    for n in range(1, 10 * test.max_samples):
        k = threshold(n, error)
        if k <= n and binomial_tail(n, k, test.design) >= power:
            return n, k
    raise ValueError("no fixed N reaches the sequential test's power")


def simulate(
    test: SequentialTest, p: float, runs: int, seed: int, fixed: tuple[int, int]
) -> list[Rates]:
    """Sequential test, matched threshold vote and plain majority on the same outcomes."""
    rng = random.Random(f"{seed}:{p}")
    n_fixed, k_fixed = fixed
    horizon = max(test.max_samples, n_fixed)
    majority_n = test.max_samples
    counts = {name: [0, 0, 0, 0, 0] for name in ("sequential", "threshold", "majority")}
    for _ in range(runs):
        outcomes = [rng.random() < p for _ in range(horizon)]
        decision = test.decide(outcomes)
        assert decision is not None  # max_samples outcomes always decide or give up
        drawn = min(math.ceil(decision.samples / test.batch) * test.batch, test.max_samples)
        row = counts["sequential"]
        row[("pass", "fail", "undecided").index(decision.outcome)] += 1
        row[3] += decision.samples
        row[4] += drawn
        wins = sum(outcomes[:n_fixed])
        row = counts["threshold"]
        row[0 if wins >= k_fixed else 1 if wins <= n_fixed - k_fixed else 2] += 1
        row[3] += n_fixed
        row[4] += n_fixed
        wins = sum(outcomes[:majority_n])
        row = counts["majority"]
        row[0 if 2 * wins > majority_n else 1 if 2 * wins < majority_n else 2] += 1
        row[3] += majority_n
        row[4] += majority_n
    names = {
        "sequential": f"sequential ({METHOD}, at most {test.max_samples})",
        "threshold": f"fixed N={n_fixed}: pass at >= {k_fixed} wins",
        "majority": f"fixed N={majority_n}: plain majority",
    }
    return [Rates(names[key], p, *(value / runs for value in row)) for key, row in counts.items()]


def run(
    runs: int = DEFAULT_RUNS,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
    max_samples: int = 16,
    win_rates: Sequence[float] = WIN_RATES,
) -> tuple[SequentialTest, tuple[int, int], list[Rates]]:
    """Every method at every win rate."""
    test = SequentialTest(confidence=confidence, max_samples=max_samples)
    fixed = matched_fixed_n(test)
    rows = [rate for p in win_rates for rate in simulate(test, p, runs, seed, fixed)]
    return test, fixed, rows


def table(rows: Sequence[Rates]) -> list[str]:
    lines = [
        "| p | method | pass | fail | undecided | mean samples used | mean samples drawn |",
        "|---|---|---|---|---|---|---|",
    ]
    for rate in rows:
        lines.append(
            f"| {rate.p:g} | {rate.method} | {rate.passed:.4f} | {rate.failed:.4f} | "
            f"{rate.undecided:.4f} | {rate.mean_samples:.2f} | {rate.mean_drawn:.2f} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--max-samples", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    test, (n, k), rows = run(args.runs, args.seed, args.confidence, args.max_samples)
    false_pass, power = exact(test, 0.5)[0], exact(test, test.design)[0]
    print(
        f"{args.runs} runs per win rate, seed {args.seed}; confidence {test.confidence}, "
        f"max_samples {test.max_samples}, batches of {test.batch}, p1 = {test.design}"
    )
    print(
        f"exact false-pass rate at p = 0.5: sequential {false_pass:.4f}, fixed N={n} "
        f"(>= {k} wins) {binomial_tail(n, k, 0.5):.4f}, plain majority of "
        f"{test.max_samples} {binomial_tail(test.max_samples, test.max_samples // 2 + 1, 0.5):.4f}"
        f"; bound {test.alpha:.4f}"
    )
    print(
        f"exact pass rate at p = {test.design}: sequential {power:.4f}, fixed N={n} "
        f"{binomial_tail(n, k, test.design):.4f}"
    )
    print()
    print("\n".join(table(rows)))
    if args.json is not None:
        data = {
            "runs": args.runs,
            "seed": args.seed,
            "confidence": test.confidence,
            "max_samples": test.max_samples,
            "fixed": {"n": n, "k": k},
            "exact_false_pass": false_pass,
            "exact_pass_at_design": power,
            "rows": [asdict(rate) for rate in rows],
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
