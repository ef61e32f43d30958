"""Two runs compared: what changed between an old and a new `--judge-report`.

Matching. A judged assertion is matched by its test's node id (parameters included, so
`test_answer[greeting]` matches only itself) and, within one test, by its position: the
k-th judged assertion of a test in the old run against the k-th in the new run.

Sides. As in the protocol's aggregates and in every judgment's `names`, response A is the
baseline and response B the candidate (`new`): a verdict's `B>A` means the candidate won.
Margins here are the candidate's lead, weighted B minus weighted A (the run summary's
`margin new-baseline`), in [-1, 1].

A regression is either of:

- `outcome`: the judged assertion held in the old run and fails in the new one (a failure
  the test caught with `pytest.raises` is what it expected, and is none);
- `preference`: both runs judged the pair, the new verdict is consistent (the same in both
  orders, or decided by its samples or panel) and ranks the candidate lower than the old
  verdict did, on candidate preferred (B>A) > tie (A=B, A=B (bothbad)) > baseline
  preferred (A>B).

The suite's win rate here is the share of judged comparisons (verdicts, caught failures
left out) whose reconciled preference is the candidate, in each run; the change between
the runs carries Newcombe's hybrid score interval (`newcombe_interval`).

Reports are a trust boundary: `read_report` (`report.reading`) makes every unreadable
file one `ReportError` line naming it, and the diff never trusts a score to fit its
rubric.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from .models import Grade, Label, Verdict
from .report.reading import ReportError, one_line, parse_report, read_report
from .report.run_json import JudgmentRecord, RunReport
from .stats import DEFAULT_LEVEL, wilson_interval

__all__ = [
    "DIFF_FORMAT",
    "DIFF_VERSION",
    "CriterionChange",
    "CriterionShare",
    "DifferenceInterval",
    "ErrorChange",
    "JudgmentChange",
    "Rate",
    "RateChange",
    "ReportError",
    "RunDiff",
    "Side",
    "diff_reports",
    "newcombe_interval",
    "parse_report",
    "read_report",
]

DIFF_FORMAT = "pytest-rubric-judge/diff"
DIFF_VERSION = 1
#: Changes smaller than this (the third decimal printed) are no change.
EPSILON = 0.0005
#: How a label ranks for the candidate (B).
RANK: dict[str, int] = {"B>A": 1, "A=B": 0, "A=B (bothbad)": 0, "A>B": -1}

Outcome = Literal["passed", "failed", "caught"]
Status = Literal["regressed", "changed", "unchanged", "added", "removed", "error"]


# -- the interval ----------------------------------------------------------------------


@dataclass(frozen=True)
class DifferenceInterval:
    """A difference of two proportions, p_new - p_old, with its confidence interval."""

    difference: float
    low: float
    high: float
    level: float
    method: str = "newcombe"

    def describe(self) -> str:
        """`[-0.512, 0.089] (95% Newcombe hybrid score, from Wilson intervals)`."""
        return (
            f"[{self.low:+.3f}, {self.high:+.3f}] ({self.level:.0%} Newcombe hybrid score, "
            "from Wilson intervals)"
        )


def newcombe_interval(
    successes_new: int, n_new: int, successes_old: int, n_old: int, level: float = DEFAULT_LEVEL
) -> DifferenceInterval:
    """Newcombe's hybrid score interval for p_new - p_old, two independent proportions.

    Method 10 of Newcombe (1998), "Interval estimation for the difference between
    independent proportions: comparison of eleven methods", Statistics in Medicine 17,
    873-890: with (l, u) each proportion's Wilson score interval at `level`,
    low = d - sqrt((p_new - l_new)^2 + (u_old - p_old)^2) and
    high = d + sqrt((u_new - p_new)^2 + (p_old - l_old)^2). Raises ValueError when a run
    has no trials or counts are out of range.
    """
    if n_new < 1 or n_old < 1:
        raise ValueError("each proportion needs at least one trial")
    new = wilson_interval(successes_new, n_new, level)
    old = wilson_interval(successes_old, n_old, level)
    p_new, p_old = successes_new / n_new, successes_old / n_old
    difference = p_new - p_old
    low = difference - math.hypot(p_new - new.low, old.high - p_old)
    high = difference + math.hypot(new.high - p_new, p_old - old.low)
    return DifferenceInterval(difference, max(-1.0, low), min(1.0, high), level)


# -- what one run says of one judged assertion -----------------------------------------


@dataclass(frozen=True)
class CriterionShare:
    """One criterion's part of the weighted scores: weight times the mean normalized score
    over both passes. A pointwise grade's response is `new`; its `baseline` is None."""

    baseline: float | None
    new: float | None


@dataclass(frozen=True)
class Side:
    """One judged assertion as one run recorded it."""

    assertion: str
    outcome: Outcome
    suite: bool
    names: tuple[str, str]
    preference: Label | None = None
    consistent: bool | None = None
    weighted_baseline: float | None = None
    weighted_new: float | None = None
    #: weighted_new - weighted_baseline (pairwise).
    margin: float | None = None
    #: The weighted score of a pointwise grade.
    score: float | None = None
    criteria: Mapping[str, CriterionShare] = field(default_factory=dict)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _pairwise_shares(verdict: Verdict) -> dict[str, CriterionShare]:
    try:
        criteria = verdict.rubric.normalized().criteria
    except ValueError:
        return {}
    shares: dict[str, CriterionShare] = {}
    for criterion in criteria:
        sum_a = sum_b = 0.0
        n = 0
        for item in verdict.passes:
            score = item.score(criterion.name)
            if score is None:
                continue
            try:
                a, b = criterion.normalize(score.score_a), criterion.normalize(score.score_b)
            except ValueError:  # a score that does not fit its criterion
                continue
            sum_a, sum_b, n = sum_a + a, sum_b + b, n + 1
        if n:
            shares[criterion.name] = CriterionShare(
                _finite(criterion.weight * sum_a / n), _finite(criterion.weight * sum_b / n)
            )
    return shares


def _grade_shares(grade: Grade) -> dict[str, CriterionShare]:
    try:
        criteria = grade.rubric.normalized().criteria
    except ValueError:
        return {}
    shares: dict[str, CriterionShare] = {}
    for criterion in criteria:
        score = grade.score_of(criterion.name)
        if score is None:
            continue
        try:
            value = criterion.normalize(score.score)
        except ValueError:
            continue
        shares[criterion.name] = CriterionShare(None, _finite(criterion.weight * value))
    return shares


def side_of(record: JudgmentRecord) -> Side:
    """What `record` says, in the diff's terms."""
    outcome: Outcome = "passed" if record.passed else "caught" if record.caught else "failed"
    side = Side(record.assertion, outcome, record.suite, record.names)
    verdict, grade = record.verdict, record.grade
    if verdict is not None:
        a, b = _finite(verdict.weighted_a), _finite(verdict.weighted_b)
        return replace(
            side,
            preference=verdict.preference,
            consistent=verdict.consistent,
            weighted_baseline=a,
            weighted_new=b,
            margin=_finite(b - a) if a is not None and b is not None else None,
            criteria=_pairwise_shares(verdict),
        )
    if grade is not None:
        return replace(side, score=_finite(grade.score), criteria=_grade_shares(grade))
    return side


# -- what changed ----------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionChange:
    """One criterion's shares (weighted scores) of both responses, in both runs."""

    name: str
    baseline_old: float | None
    baseline_new: float | None
    new_old: float | None
    new_new: float | None

    @property
    def changed(self) -> bool:
        return _moved(self.baseline_old, self.baseline_new) or _moved(self.new_old, self.new_new)


def _moved(before: float | None, after: float | None) -> bool:
    if before is None or after is None:
        return (before is None) != (after is None)
    return abs(after - before) >= EPSILON


def _change(before: float | None, after: float | None) -> float | None:
    if before is None or after is None:
        return None
    return _finite(after - before)


@dataclass(frozen=True)
class JudgmentChange:
    """One judged assertion in both runs (or one of them)."""

    nodeid: str
    #: Its position among its test's judged assertions, from 1.
    ordinal: int
    status: Status
    old: Side | None
    new: Side | None
    #: Why it is a regression: "outcome", "preference"; empty when it is none.
    reasons: tuple[str, ...] = ()
    #: The preference moved to another rank (candidate, tie, baseline).
    flipped: bool = False
    criteria: tuple[CriterionChange, ...] = ()
    #: The new run's judge error for this test (status "error").
    error: str | None = None

    @property
    def key(self) -> str:
        """The node id, with `(judgment k)` after the first judged assertion of a test."""
        return self.nodeid if self.ordinal == 1 else f"{self.nodeid} (judgment {self.ordinal})"

    @property
    def margin_change(self) -> float | None:
        if self.old is None or self.new is None:
            return None
        return _change(self.old.margin, self.new.margin)

    @property
    def score_change(self) -> float | None:
        if self.old is None or self.new is None:
            return None
        return _change(self.old.score, self.new.score)


def _criteria(old: Side, new: Side) -> tuple[CriterionChange, ...]:
    names = list(dict.fromkeys([*old.criteria, *new.criteria]))
    empty = CriterionShare(None, None)
    changes = []
    for name in names:
        before, after = old.criteria.get(name, empty), new.criteria.get(name, empty)
        changes.append(
            CriterionChange(name, before.baseline, after.baseline, before.new, after.new)
        )
    return tuple(changes)


def _regression_reasons(old: Side, new: Side) -> tuple[str, ...]:
    reasons = []
    if old.outcome == "passed" and new.outcome == "failed":
        reasons.append("outcome")
    if (
        old.preference is not None
        and new.preference is not None
        and new.consistent
        and RANK[new.preference] < RANK[old.preference]
    ):
        reasons.append("preference")
    return tuple(reasons)


def _matched(nodeid: str, ordinal: int, old: Side, new: Side) -> JudgmentChange:
    criteria = _criteria(old, new)
    flipped = (
        old.preference is not None
        and new.preference is not None
        and RANK[old.preference] != RANK[new.preference]
    )
    reasons = _regression_reasons(old, new)
    changed = (
        (old.assertion, old.outcome, old.preference, old.consistent)
        != (new.assertion, new.outcome, new.preference, new.consistent)
        or _moved(old.margin, new.margin)
        or _moved(old.score, new.score)
        or any(item.changed for item in criteria)
    )
    status: Status = "regressed" if reasons else "changed" if changed else "unchanged"
    return JudgmentChange(nodeid, ordinal, status, old, new, reasons, flipped, criteria)


def _by_test(records: Iterable[JudgmentRecord]) -> dict[tuple[str, int], JudgmentRecord]:
    found: dict[tuple[str, int], JudgmentRecord] = {}
    seen: dict[str, int] = {}
    for record in records:
        ordinal = seen.get(record.nodeid, 0) + 1
        seen[record.nodeid] = ordinal
        found[(record.nodeid, ordinal)] = record
    return found


@dataclass(frozen=True)
class Rate:
    """The candidate's share of one run's judged comparisons, with its Wilson interval."""

    preferred: int
    judged: int

    @property
    def rate(self) -> float | None:
        return self.preferred / self.judged if self.judged else None

    def interval(self, level: float = DEFAULT_LEVEL) -> tuple[float, float] | None:
        if not self.judged:
            return None
        wilson = wilson_interval(self.preferred, self.judged, level)
        return (wilson.low, wilson.high)


def rate_of(report: RunReport) -> Rate:
    """Judged: comparisons with a verdict (caught failures left out); preferred: B>A."""
    verdicts = [r.verdict for r in report.judgements if r.verdict is not None and not r.caught]
    return Rate(sum(1 for v in verdicts if v.preference == "B>A"), len(verdicts))


@dataclass(frozen=True)
class RateChange:
    old: Rate
    new: Rate
    #: p_new - p_old with its interval; None when a run judged nothing.
    interval: DifferenceInterval | None


@dataclass(frozen=True)
class ErrorChange:
    """A test with a judge error in either run: the messages (None where it had none)."""

    nodeid: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class RunDiff:
    """Everything that changed from the old run to the new one."""

    old_name: str
    new_name: str
    judgments: tuple[JudgmentChange, ...]
    tests_added: tuple[str, ...]
    tests_removed: tuple[str, ...]
    errors: tuple[ErrorChange, ...]
    rate: RateChange
    notes: tuple[str, ...] = ()
    level: float = DEFAULT_LEVEL

    def with_status(self, *statuses: Status) -> tuple[JudgmentChange, ...]:
        return tuple(item for item in self.judgments if item.status in statuses)

    @property
    def regressions(self) -> tuple[JudgmentChange, ...]:
        return self.with_status("regressed")

    def counts(self) -> dict[str, int]:
        """How many judged assertions have each status, and the tests added and removed."""
        counts: dict[str, int] = {s: len(self.with_status(s)) for s in _STATUSES}
        counts["tests_added"] = len(self.tests_added)
        counts["tests_removed"] = len(self.tests_removed)
        return counts


_STATUSES: tuple[Status, ...] = ("regressed", "changed", "unchanged", "added", "removed", "error")


def _errors(old: RunReport, new: RunReport) -> tuple[ErrorChange, ...]:
    before = {e.nodeid: e.message for e in old.errors}
    after = {e.nodeid: e.message for e in new.errors}
    return tuple(
        ErrorChange(nodeid, before.get(nodeid), after.get(nodeid))
        for nodeid in dict.fromkeys([*after, *before])
    )


def _notes(old: RunReport, new: RunReport, names: Sequence[str]) -> tuple[str, ...]:
    notes = []
    models = (old.run.judge_model, new.run.judge_model)
    if None not in models and models[0] != models[1]:
        notes.append(
            f"the runs had different judge models ({models[0]} in {names[0]}, {models[1]} "
            f"in {names[1]}): a change may be the judge's, not the candidate's"
        )
    for report, name in zip((old, new), names, strict=True):
        if not report.run.complete:
            notes.append(
                f"{name} did not run whole (interrupted or stopped early): tests missing "
                "from it are listed as removed or added"
            )
    return tuple(one_line(note, 500) for note in notes)


def diff_reports(
    old: RunReport,
    new: RunReport,
    *,
    old_name: str = "old",
    new_name: str = "new",
    level: float = DEFAULT_LEVEL,
) -> RunDiff:
    """What changed from `old` to `new`, judgment by judgment and over the suite."""
    before, after = _by_test(old.judgements), _by_test(new.judgements)
    new_errors = {e.nodeid: e.message for e in new.errors}
    judgments: list[JudgmentChange] = []
    for (nodeid, ordinal), record in after.items():
        if (nodeid, ordinal) in before:
            judgments.append(
                _matched(nodeid, ordinal, side_of(before[(nodeid, ordinal)]), side_of(record))
            )
        else:
            judgments.append(JudgmentChange(nodeid, ordinal, "added", None, side_of(record)))
    for (nodeid, ordinal), record in before.items():
        if (nodeid, ordinal) in after:
            continue
        error = new_errors.get(nodeid)
        status: Status = "removed" if error is None else "error"
        judgments.append(
            JudgmentChange(nodeid, ordinal, status, side_of(record), None, error=error)
        )
    tests_old = {nodeid for nodeid, _ in before} | {e.nodeid for e in old.errors}
    tests_new = {nodeid for nodeid, _ in after} | set(new_errors)
    order = [nodeid for nodeid, _ in after] + list(new_errors)
    order = list(dict.fromkeys([*order, *(n for n, _ in before), *(e.nodeid for e in old.errors)]))
    added, removed = tests_new - tests_old, tests_old - tests_new
    rate_old, rate_new = rate_of(old), rate_of(new)
    interval = (
        newcombe_interval(
            rate_new.preferred, rate_new.judged, rate_old.preferred, rate_old.judged, level
        )
        if rate_old.judged and rate_new.judged
        else None
    )
    return RunDiff(
        old_name=old_name,
        new_name=new_name,
        judgments=tuple(judgments),
        tests_added=tuple(n for n in order if n in added),
        tests_removed=tuple(n for n in order if n in removed),
        errors=_errors(old, new),
        rate=RateChange(rate_old, rate_new, interval),
        notes=_notes(old, new, (old_name, new_name)),
        level=level,
    )
