"""Plain-text renderings of verdicts: assertion messages, report sections, run summary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..context import Judgement
from ..models import Label, ScoreValue, Verdict

JUSTIFICATION_WIDTH = 90


def signed(value: float) -> str:
    """`+0.700`, `-0.250`, and `+0.000` for values that round to zero (never `-0.000`)."""
    text = f"{value:+.3f}"
    return "+0.000" if text == "-0.000" else text


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


def judgement_lines(judgement: Judgement) -> list[str]:
    """The report section of one judged assertion."""
    verdict, names = judgement.verdict, judgement.names
    status = "passed" if judgement.passed else "FAILED"
    lines = [f"{judgement.assertion} {status}: {headline(verdict, names)}"]
    if judgement.note:
        lines.append(judgement.note)
    lines.extend("  " + line for line in verdict_table(verdict, names))
    for warning in verdict.warnings:
        lines.append(f"  warning: {warning}")
    for item in verdict.passes:
        if item.overall_justification:
            # The judge wrote in slot terms; say which response sat in which slot.
            first, second = names if item.order == "forward" else names[::-1]
            lines.append(
                f"  {item.order} pass (A={first}, B={second}): "
                f"{_clip(item.overall_justification)}"
            )
    return lines


def summary_lines(
    results: Sequence[tuple[str, Judgement]],
    totals: Mapping[str, int],
    *,
    errors: Iterable[tuple[str, str]] = (),
    notes: Iterable[str] = (),
) -> list[str]:
    """The run's closing summary: one line per judged assertion, then totals."""
    lines = []
    for nodeid, judgement in results:
        verdict = judgement.verdict
        favoured = verdict.weighted_b - verdict.weighted_a
        lines.append(
            f"{'PASS' if judgement.passed else 'FAIL'} {nodeid}: "
            f"{describe_preference(verdict.preference, judgement.names)}, "
            f"{'consistent' if verdict.consistent else 'INCONSISTENT'}, "
            f"margin {judgement.names[1]}-{judgement.names[0]} {signed(favoured)}"
            f"{', cached' if verdict.cached else ''}"
        )
    error_list = list(errors)
    for nodeid, message in error_list:
        lines.append(f"ERROR {nodeid}: {message}")
    tokens = totals.get("prompt_tokens", 0) + totals.get("completion_tokens", 0)
    lines.append(
        f"{len(results)} judged assertions, {len(error_list)} judge errors; "
        f"{totals.get('requests', 0)} judge requests ({totals.get('retries', 0)} retries, "
        f"{totals.get('repairs', 0)} repairs), {totals.get('cache_hits', 0)} cache hits, "
        f"{tokens} tokens"
    )
    lines.extend(notes)
    return lines
