"""Plain-text renderings of verdicts: assertion messages, report sections, run summary.

Functions of data only (verdicts, grades, `JudgmentRecord`s): nothing here knows how an
assertion reports to a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..models import Grade, Label, ScoreValue, Verdict
from ..scoring import named_warnings
from ..stats import fleiss_kappa

if TYPE_CHECKING:
    from ..sequential import Decision
    from .run_json import JudgmentRecord

JUSTIFICATION_WIDTH = 90
FLAKINESS = ("stable_pass", "stable_fail", "flaky")


def signed(value: float) -> str:
    """`+0.700`, `-0.250`, and `+0.000` for values that round to zero (never `-0.000`)."""
    text = f"{value:+.3f}"
    return "+0.000" if text == "-0.000" else text


def counted(count: int, noun: str) -> str:
    """`1 judge error`, `2 judge errors`, `0 judge errors`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def describe_preference(label: Label, names: tuple[str, str] = ("A", "B")) -> str:
    """'new preferred (B>A)', 'tie (A=B)', ... in the caller's names for A and B."""
    if label == "A>B":
        return f"{names[0]} preferred (A>B)"
    if label == "B>A":
        return f"{names[1]} preferred (B>A)"
    if label == "A=B":
        return "tie (A=B)"
    return "tie, both bad (A=B (bothbad))"


def describe_consistency(verdict: Verdict) -> str:
    members = verdict.panel or verdict.samples
    if members:
        what = "judges" if verdict.panel else "samples"
        backing = sum(1 for m in members if m.consistent and m.preference == verdict.preference)
        state = "decided" if verdict.consistent else "not decided"
        return f"{state}: {backing} of {len(members)} {what} gave it in both orders"
    if verdict.consistent:
        return "consistent in both orders"
    return (
        f"position flip: forward pass said {verdict.forward.preference}, "
        f"reversed pass said {verdict.reversed.preference}"
    )


def _score(value: ScoreValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _pair(first: ScoreValue, second: ScoreValue) -> str:
    return _score(first) if first == second else f"{_score(first)}/{_score(second)}"


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > JUSTIFICATION_WIDTH:
        text = text[: JUSTIFICATION_WIDTH - 3] + "..."
    return text


def _shorter(first: str, second: str, names: tuple[str, str]) -> str:
    """The shorter non-empty justification, prefixed with whose it is."""
    candidates = [
        (name, text) for name, text in zip(names, (first, second), strict=True) if text.strip()
    ]
    if not candidates:
        return ""
    name, text = min(candidates, key=lambda pair: len(pair[1]))
    return f"{name}: {_clip(text)}"


def verdict_table(verdict: Verdict, names: tuple[str, str] = ("A", "B")) -> list[str]:
    """The per-criterion table: weight, both responses' scores, the shorter justification.

    A score shown as `x/y` differs between the forward (x) and reversed (y) pass.
    """
    rows: list[tuple[str, ...]] = [
        ("criterion", "weight", names[0], names[1], "shorter justification")
    ]
    for criterion in verdict.rubric.criteria:
        forward = verdict.forward.score(criterion.name)
        reversed_ = verdict.reversed.score(criterion.name)
        if forward is None or reversed_ is None:
            continue
        rows.append(
            (
                criterion.name,
                f"{criterion.weight:.2f}",
                _pair(forward.score_a, reversed_.score_a),
                _pair(forward.score_b, reversed_.score_b),
                _shorter(forward.justification_a, forward.justification_b, names),
            )
        )
    rows.append(("weighted", "1.00", f"{verdict.weighted_a:.3f}", f"{verdict.weighted_b:.3f}", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [
            row[0].ljust(widths[0]),
            row[1].rjust(widths[1]),
            row[2].rjust(widths[2]),
            row[3].rjust(widths[3]),
            row[4],
        ]
        lines.append("  ".join(cells).rstrip())
    if any("/" in cell for row in rows[1:] for cell in row[2:4]):
        lines.append("(x/y: the forward and reversed passes gave different scores)")
    return lines


def headline(verdict: Verdict, names: tuple[str, str] = ("A", "B")) -> str:
    """One line: preference, agreement of the orders, margin in the caller's names.

    With the default names the margin is A - B as in the protocol; with names such as
    ("baseline", "new") it is shown from the second response's side, new - baseline.
    """
    if names == ("A", "B"):
        margin_name, value = "A - B", verdict.margin
    else:
        margin_name, value = f"{names[1]} - {names[0]}", -verdict.margin
    cached = ", cached" if verdict.cached else ""
    return (
        f"{describe_preference(verdict.preference, names)}, {describe_consistency(verdict)}; "
        f"margin {margin_name} = {signed(value)} "
        f"({names[0]} {verdict.weighted_a:.3f}, {names[1]} {verdict.weighted_b:.3f}){cached}"
    )


def grade_table(grade: Grade) -> list[str]:
    """Pointwise: weight, score and justification per criterion, then the weighted score."""
    rows: list[tuple[str, str, str, str]] = [("criterion", "weight", "score", "justification")]
    for criterion in grade.rubric.criteria:
        item = grade.score_of(criterion.name)
        if item is None:
            continue
        name = criterion.name + (" (penalty)" if criterion.is_penalty else "")
        rows.append(
            (name, f"{criterion.weight:.2f}", _score(item.score), _clip(item.justification))
        )
    rows.append(("weighted", "", f"{grade.score:.3f}", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        "  ".join(
            (row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].rjust(widths[2]), row[3])
        ).rstrip()
        for row in rows
    ]


def members_lines(verdict: Verdict, names: tuple[str, str]) -> list[str]:
    """The vote split of repeated samples and each panel judge's verdict."""
    lines = []
    if verdict.sequential is not None:
        lines.append(verdict.sequential.describe())
    if verdict.votes:
        split = ", ".join(f"{label} {count}" for label, count in sorted(verdict.votes.items()))
        lines.append(f"samples: {verdict.vote_split} for {verdict.preference} ({split})")
    if verdict.panel:
        agreement = (
            f", agreement {verdict.panel_agreement:.2f}"
            if verdict.panel_agreement is not None
            else ""
        )
        lines.append(
            f"panel ({verdict.panel_strategy}{agreement}; the table shows the scores of the "
            "first judge that agrees with the panel):"
        )
        for member in verdict.panel:
            votes = f", samples {member.vote_split}" if member.vote_split else ""
            lines.append(
                f"  {member.judge_model or '?'}: {describe_preference(member.preference, names)}, "
                f"{'consistent' if member.consistent else 'INCONSISTENT'}, "
                f"{names[1]} {member.weighted_b:.3f} / {names[0]} {member.weighted_a:.3f}{votes}"
            )
    return lines


def grade_headline(grade: Grade) -> str:
    cached = ", cached" if grade.cached else ""
    spread = ""
    if grade.samples:
        spread = (
            f" (mean of {len(grade.samples)} {grade.combined or 'samples'}: "
            + ", ".join(f"{g.score:.3f}" for g in grade.samples)
            + ")"
        )
    return f"weighted score {grade.score:.3f}{spread}{cached}"


def _undecided(record: JudgmentRecord) -> bool:
    """Whether a sequential test ran out of samples on this assertion."""
    result = record.verdict if record.verdict is not None else record.grade
    decision = result.sequential if result is not None else None
    return decision is not None and decision.outcome == "undecided"


def _status(record: JudgmentRecord) -> str:
    """`passed`, `FAILED`, `UNDECIDED`, or either `(caught by the test)`."""
    if record.passed:
        return "passed"
    status = "UNDECIDED" if _undecided(record) else "FAILED"
    return f"{status} (caught by the test)" if record.caught else status


def flakiness_line(record: JudgmentRecord) -> str | None:
    """`flakiness: flaky (held in 5 of 9 samples)`, for an assertion with samples."""
    if record.flakiness is None:
        return None
    shown = record.flakiness.replace("_", " ")
    return f"flakiness: {shown} (held in {record.sample_wins} of {record.sample_count} samples)"


def judgment_lines(judgment: JudgmentRecord) -> list[str]:
    """The report section of one judged assertion."""
    status = _status(judgment)
    grade = judgment.grade
    if grade is not None:
        lines = [f"{judgment.assertion} {status}: {grade_headline(grade)}"]
        if judgment.note:
            lines.append(judgment.note)
        if grade.sequential is not None:
            lines.append("  " + grade.sequential.describe())
        flaky = flakiness_line(judgment)
        if flaky:
            lines.append("  " + flaky)
        lines.extend("  " + line for line in grade_table(grade))
        lines.extend(f"  warning: {w}" for w in grade.warnings)
        if grade.overall_justification:
            lines.append(f"  judge: {_clip(grade.overall_justification)}")
        return lines
    verdict, names = judgment.verdict, judgment.names
    if verdict is None:
        return [f"{judgment.assertion} {status}"]
    lines = [f"{judgment.assertion} {status}: {headline(verdict, names)}"]
    if judgment.note:
        lines.append(judgment.note)
    lines.extend("  " + line for line in members_lines(verdict, names))
    flaky = flakiness_line(judgment)
    if flaky:
        lines.append("  " + flaky)
    lines.extend("  " + line for line in verdict_table(verdict, names))
    # Contradiction warnings reworded with the assertion's names (baseline / new).
    for warning in named_warnings(verdict, names):
        lines.append(f"  warning: {warning}")
    for item in verdict.passes:
        if item.overall_justification:
            # The judge wrote in slot terms; say which response sat in which slot.
            first, second = names if item.order == "forward" else names[::-1]
            lines.append(
                f"  {item.order} pass (A={first}, B={second}): {_clip(item.overall_justification)}"
            )
    return lines


def summary_line(judgment: JudgmentRecord) -> str:
    """One line of the closing summary: PASS, FAIL, UNDECIDED, or CAUGHT (a failure the
    test expected)."""
    failed = "UNDECIDED" if _undecided(judgment) else "FAIL"
    status = "PASS" if judgment.passed else "CAUGHT" if judgment.caught else failed
    nodeid = judgment.nodeid
    grade = judgment.grade
    if grade is not None:
        return f"{status} {nodeid}: {grade_headline(grade)}{_sequential_extra(grade.sequential)}"
    verdict = judgment.verdict
    if verdict is None:
        return f"{status} {nodeid}"
    favoured = verdict.weighted_b - verdict.weighted_a
    extras = ""
    if verdict.vote_split:
        extras += f", votes {verdict.vote_split}"
    if verdict.panel_agreement is not None:
        extras += f", panel agreement {verdict.panel_agreement:.2f}"
    extras += _sequential_extra(verdict.sequential)
    return (
        f"{status} {nodeid}: "
        f"{describe_preference(verdict.preference, judgment.names)}, "
        f"{'consistent' if verdict.consistent else 'INCONSISTENT'}, "
        f"margin {judgment.names[1]}-{judgment.names[0]} {signed(favoured)}"
        f"{extras}{', cached' if verdict.cached else ''}"
    )


def _sequential_extra(decision: Decision | None) -> str:
    """`, held 7-1 in 8 samples, p in [0.529, 1.000]` for a sequentially judged result."""
    if decision is None:
        return ""
    return (
        f", held {decision.split} in {decision.samples} samples, win probability in "
        f"{decision.interval}"
    )


def flakiness_lines(results: Sequence[JudgmentRecord]) -> list[str]:
    """A count of stable and flaky assertions over those with samples, then each flaky one."""
    sampled = [record for record in results if record.flakiness is not None]
    if not sampled:
        return []
    count = {kind: sum(1 for r in sampled if r.flakiness == kind) for kind in FLAKINESS}
    lines = [
        f"flakiness across samples, {counted(len(sampled), 'sampled assertion')}: "
        f"{count['stable_pass']} stable pass, {count['stable_fail']} stable fail, "
        f"{count['flaky']} flaky"
    ]
    lines.extend(
        f"FLAKY {r.nodeid}: {r.assertion} held in {r.sample_wins} of {r.sample_count} samples"
        for r in sampled
        if r.flakiness == "flaky"
    )
    return lines


def summary_lines(
    results: Sequence[JudgmentRecord],
    totals: Mapping[str, int],
    *,
    errors: Iterable[tuple[str, str]] = (),
    notes: Iterable[str] = (),
) -> list[str]:
    """The run's closing summary: one line per judged assertion, then totals."""
    lines = [summary_line(record) for record in results]
    error_list = list(errors)
    for nodeid, message in error_list:
        lines.append(f"ERROR {nodeid}: {message}")
    tokens = totals.get("prompt_tokens", 0) + totals.get("completion_tokens", 0)
    lines.append(
        f"{counted(len(results), 'judged assertion')}, "
        f"{counted(len(error_list), 'judge error')}; "
        f"{totals.get('requests', 0)} judge requests ({totals.get('retries', 0)} retries, "
        f"{totals.get('repairs', 0)} repairs), {totals.get('cache_hits', 0)} cache hits, "
        f"{tokens} tokens"
    )
    kappa = panel_kappa_line([r.verdict for r in results if r.verdict is not None])
    if kappa:
        lines.append(kappa)
    lines.extend(flakiness_lines(results))
    lines.extend(notes)
    return lines


def panel_kappa_line(verdicts: Sequence[Verdict]) -> str | None:
    """Fleiss' kappa over the run's panel comparisons, when panels of 3+ judges were used."""
    panels = [v for v in verdicts if len(v.panel) >= 3]
    sizes = {len(v.panel) for v in panels}
    if len(panels) < 2 or len(sizes) != 1:  # agreement on one comparison says nothing
        return None
    kappa = fleiss_kappa([[m.preference for m in v.panel] for v in panels])
    if kappa is None:
        return None
    return f"panel: Fleiss' kappa {kappa:.3f} over {len(panels)} comparisons, {sizes.pop()} judges"


def _round(value: float) -> float:
    return round(value, 4) + 0.0  # + 0.0 turns -0.0 into 0.0


def _sampling_properties(judgment: JudgmentRecord) -> list[tuple[str, object]]:
    """The sequential test's decision and evidence, and the flakiness across samples."""
    result = judgment.verdict if judgment.verdict is not None else judgment.grade
    decision = result.sequential if result is not None else None
    props: list[tuple[str, object]] = []
    if decision is not None:
        props += [
            ("judge_decision", decision.outcome),
            ("judge_confidence", decision.confidence),
            ("judge_samples_used", decision.samples),
            ("judge_sample_wins", decision.split),
            ("judge_win_interval", decision.interval),
        ]
    if judgment.flakiness is not None:
        props.append(("judge_flakiness", judgment.flakiness))
    return props


def junit_properties(judgment: JudgmentRecord) -> list[tuple[str, object]]:
    """A judgment's key facts as junitxml properties (`item.user_properties`)."""
    return _properties(judgment) + _sampling_properties(judgment)


def _properties(judgment: JudgmentRecord) -> list[tuple[str, object]]:
    grade = judgment.grade
    if grade is not None:
        props: list[tuple[str, object]] = [
            ("judge_assertion", judgment.assertion),
            ("judge_score", _round(grade.score)),
            ("judge_cached", grade.cached),
        ]
        for criterion in grade.rubric.criteria:
            item = grade.score_of(criterion.name)
            if item is not None:
                props.append(
                    (
                        f"judge_criterion_{criterion.name}",
                        f"weight={criterion.weight:.3f} score={item.score}",
                    )
                )
        return props
    verdict = judgment.verdict
    if verdict is None:
        return [("judge_assertion", judgment.assertion)]
    new, baseline = judgment.names[1], judgment.names[0]
    props = [
        ("judge_assertion", judgment.assertion),
        ("judge_preference", verdict.preference),
        ("judge_consistent", verdict.consistent),
        (f"judge_margin_{new}_minus_{baseline}", _round(verdict.weighted_b - verdict.weighted_a)),
        (f"judge_weighted_{baseline}", _round(verdict.weighted_a)),
        (f"judge_weighted_{new}", _round(verdict.weighted_b)),
        ("judge_cached", verdict.cached),
    ]
    if verdict.vote_split:
        props.append(("judge_votes", verdict.vote_split))
    if verdict.panel_agreement is not None:
        props.append(("judge_panel_agreement", _round(verdict.panel_agreement)))
    for criterion in verdict.rubric.criteria:
        forward = verdict.forward.score(criterion.name)
        reversed_ = verdict.reversed.score(criterion.name)
        if forward is None or reversed_ is None:
            continue
        props.append(
            (
                f"judge_criterion_{criterion.name}",
                f"weight={criterion.weight:.3f} {baseline}={forward.score_a},{reversed_.score_a} "
                f"{new}={forward.score_b},{reversed_.score_b}",
            )
        )
    return props


#: The earlier spelling, kept so that code written against it still works.
judgement_lines = judgment_lines
