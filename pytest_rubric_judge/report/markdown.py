"""A short Markdown summary of a run, for a CI step summary or a pull-request comment.

Totals, the candidate's win rate with its interval (method and level stated), the gates,
the comparisons that did not hold with their worst criteria, and, apart from them, the
pointwise grades that did not hold with their weakest criteria. Every piece of text that
comes from a model or a test id is escaped, so a response under test cannot inject
Markdown, HTML or an @-mention into the page that shows it. Escaping is done where the
text is placed (inline, on one line, or in a table cell) and only for what would be
markup there: `127.0.0.1`, `(retries=2)` and `response_B` stay as they are.
"""

from __future__ import annotations

import re

from ..models import Grade, ScoreValue, Verdict
from .run_json import JudgmentRecord, RunReport

#: Characters that start or end inline markup anywhere in a line (code, emphasis, links,
#: strikethrough, table cells), escaped with a backslash. HTML's own characters become
#: entities; a backslash does not stop GitHub from linking @user or #123, an entity does.
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "@": "&#64;", "#": "&#35;"}
_INLINE = re.compile(r"[\\`*\[\]|~&<>@#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
#: What would open a block at the start of a line: a list item (`-`, `+`, `1.`, `1)`) or
#: a setext underline (`=`); headings and quotes are covered by `#` and `>` above.
_LINE_START = re.compile(r"^([-+=]|\d{1,9}(?=[.)]))")
_WHITESPACE = re.compile(r"\s+")
DEFAULT_MAX_FAILURES = 20
CELL_WIDTH = 160


def _inline(match: re.Match[str]) -> str:
    char = match.group(0)
    return _ENTITIES.get(char, "\\" + char)


def escape(text: str, *, limit: int | None = CELL_WIDTH) -> str:
    """`text` as literal Markdown on one line: no markup, no HTML, no mention, no line break.

    Only what is markup in that place is escaped: the characters that open inline markup
    (an underscore only at a word's edge, where it can start emphasis), and a list marker
    or an underline at the start; dots, parentheses and hyphens inside text stay plain.
    """
    flat = _WHITESPACE.sub(" ", text).strip()
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    escaped = _INLINE.sub(_inline, flat)
    start = _LINE_START.match(escaped)
    if start is None:
        return escaped
    if start.group(0)[0].isdigit():  # `1.` or `1)`: escape the dot or the parenthesis
        end = start.end()
        return escaped[:end] + "\\" + escaped[end:]
    return "\\" + escaped


def code(text: str, *, limit: int | None = CELL_WIDTH) -> str:
    """`text` as an inline code span that is safe inside a table cell (test ids, names)."""
    flat = _WHITESPACE.sub(" ", text).strip()
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    flat = flat.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _label(label: str) -> str:
    return code(label)


def _score(value: ScoreValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _pair(first: ScoreValue, second: ScoreValue) -> str:
    return _score(first) if first == second else f"{_score(first)}/{_score(second)}"


def worst_criteria(verdict: Verdict, names: tuple[str, str], count: int = 2) -> list[str]:
    """The criteria that cost the candidate (B) most, weighted, with both responses' scores.

    Scores shown as `x/y` differ between the forward (x) and reversed (y) pass.
    """
    scored: list[tuple[float, str]] = []
    for criterion in verdict.rubric.criteria:
        forward = verdict.forward.score(criterion.name)
        reversed_ = verdict.reversed.score(criterion.name)
        if forward is None or reversed_ is None:
            continue
        delta = sum(
            criterion.normalize(item.score_b) - criterion.normalize(item.score_a)
            for item in (forward, reversed_)
        )
        cost = criterion.weight * delta / 2
        if cost >= 0:
            continue
        text = (
            f"{code(criterion.name)} (weight {criterion.weight:.2f}): "
            f"{escape(names[1])} {_pair(forward.score_b, reversed_.score_b)}, "
            f"{escape(names[0])} {_pair(forward.score_a, reversed_.score_a)}"
        )
        scored.append((cost, text))
    scored.sort(key=lambda pair: pair[0])
    return [text for _, text in scored[:count]]


def weakest_criteria(grade: Grade, count: int = 2) -> list[str]:
    """The criteria that cost a graded response most, weighted, with their scores: a low
    score on a criterion, or a penalty criterion that was met."""
    scored: list[tuple[float, str]] = []
    for criterion in grade.rubric.criteria:
        item = grade.score_of(criterion.name)
        if item is None:
            continue
        value = criterion.normalize(item.score)
        cost = criterion.weight * (1 - value) if criterion.weight > 0 else -criterion.weight * value
        if cost <= 0:
            continue
        penalty = ", penalty" if criterion.is_penalty else ""
        text = (
            f"{code(criterion.name)} (weight {criterion.weight:.2f}{penalty}): {_score(item.score)}"
        )
        scored.append((-cost, text))
    scored.sort(key=lambda pair: pair[0])
    return [text for _, text in scored[:count]]


def _grade_row(record: JudgmentRecord) -> str:
    suite = " (suite)" if record.suite else ""
    grade = record.grade
    assert grade is not None
    weakest = "; ".join(weakest_criteria(grade)) or "every criterion at its best"
    return f"| {code(record.nodeid)}{suite} | {grade.score:.3f} | {weakest} |"


def _failure_row(record: JudgmentRecord) -> str:
    verdict, names = record.verdict, record.names
    suite = " (suite)" if record.suite else ""
    if verdict is None:
        return f"| {code(record.nodeid)}{suite} | {code(record.assertion)}: no verdict | | |"
    worst = "; ".join(worst_criteria(verdict, names)) or "no criterion scored lower"
    forward, backward = verdict.forward.preference, verdict.reversed.preference
    orders = (
        "consistent" if verdict.consistent else f"flipped ({_label(forward)} / {_label(backward)})"
    )
    margin = verdict.weighted_b - verdict.weighted_a
    decision = verdict.sequential
    if decision is not None:  # sequential judging: what the samples decided
        orders += (
            f"; {decision.outcome} after {decision.samples} samples ({decision.split}, "
            f"win probability {decision.interval})"
        )
    return (
        f"| {code(record.nodeid)}{suite} | {_label(verdict.preference)}, {orders} | "
        f"{margin:+.3f} | {worst} |"
    )


def markdown_summary(report: RunReport, *, max_failures: int = DEFAULT_MAX_FAILURES) -> str:
    """The run's summary as GitHub-flavoured Markdown."""
    agg = report.aggregates
    rec = agg.reconciled
    judged = agg.comparisons - rec.errors
    status = "passed" if report.passed else "FAILED"
    lines = [f"## Rubric judge: {status}", ""]
    run = report.run
    if not run.complete:
        lines += ["**Incomplete run**: interrupted or stopped early; not every test ran.", ""]
    lines += [
        f"Judge model {code(run.judge_model or 'none')}; tests {code(run.data or '(none)')}; "
        f"started {run.started or '?'}, finished {run.finished or '?'}.",
        "",
    ]
    winrate = (
        f"{agg.winrate:.3f}, interval {agg.wilson.describe()}"
        if agg.winrate is not None
        else "no decisive comparisons"
    )
    consistency = (
        f"{agg.consistency_rate:.3f} ({round(agg.consistency_rate * judged)} of {judged})"
        if agg.consistency_rate is not None
        else "no comparisons"
    )
    totals = report.totals
    tokens = totals.get("prompt_tokens", 0) + totals.get("completion_tokens", 0)
    failing = [record for record in report.failing if record.grade is None]
    failing_grades = [record for record in report.failing if record.grade is not None]
    graded = any(record.grade is not None for record in report.judgements)
    lines += [
        "| | |",
        "|---|---|",
        f"| comparisons | {agg.comparisons} ({judged} judged, {rec.errors} judge errors) |",
        f"| new preferred / baseline preferred / ties | {rec.b_wins} / {rec.a_wins} / "
        f"{rec.ties + rec.bothbad} |",
        f"| win rate of new over baseline (decisive) | {winrate} |",
        f"| consistent in both orders | {consistency} |",
        f"| failing comparisons | {len(failing)} |",
    ]
    if graded:
        lines.append(f"| failing grades (pointwise) | {len(failing_grades)} |")
    sampled = [record for record in report.judgements if record.flakiness is not None]
    flaky = [record for record in sampled if record.flakiness == "flaky"]
    if sampled:
        stable = sum(1 for record in sampled if record.flakiness == "stable_pass")
        lines.append(
            f"| flaky / stable pass / stable fail (assertions with samples) | {len(flaky)} / "
            f"{stable} / {len(sampled) - len(flaky) - stable} |"
        )
    lines += [
        f"| judge requests | {totals.get('requests', 0)} ({totals.get('retries', 0)} retries), "
        f"{totals.get('cache_hits', 0)} cache hits, {tokens} tokens |",
        "",
    ]
    if report.gates:
        lines += ["### Gates", ""]
        for result in report.gates:
            mark = "✅" if result.passed else "❌"
            lines.append(
                f"- {mark} `{result.gate.condition}`: {'met' if result.passed else 'NOT met'}, "
                f"{result.detail}"
            )
        lines.append("")
    if failing:
        lines += [
            f"### Failing comparisons ({len(failing)})",
            "",
            "| test | verdict | margin new - baseline | worst criteria for new |",
            "|---|---|---|---|",
        ]
        lines += [_failure_row(record) for record in failing[:max_failures]]
        if len(failing) > max_failures:
            lines.append(f"| … {len(failing) - max_failures} more in the JSON report | | | |")
        lines.append("")
    if failing_grades:
        lines += [
            f"### Failing grades ({len(failing_grades)})",
            "",
            "| test | weighted score | weakest criteria |",
            "|---|---|---|",
        ]
        lines += [_grade_row(record) for record in failing_grades[:max_failures]]
        if len(failing_grades) > max_failures:
            more = len(failing_grades) - max_failures
            lines.append(f"| … {more} more in the JSON report | | |")
        lines.append("")
    if flaky:
        lines += [f"### Flaky assertions ({len(flaky)})", ""]
        for record in flaky[:max_failures]:
            lines.append(
                f"- {code(record.nodeid)}: {code(record.assertion)} held in "
                f"{record.sample_wins} of {record.sample_count} samples"
            )
        if len(flaky) > max_failures:
            lines.append(f"- … {len(flaky) - max_failures} more in the JSON report")
        lines.append("")
    if report.errors:
        lines += [f"### Judge errors ({len(report.errors)})", ""]
        for error in report.errors[:max_failures]:
            lines.append(f"- {code(error.nodeid)}: {escape(error.message)}")
        if len(report.errors) > max_failures:
            lines.append(f"- … {len(report.errors) - max_failures} more in the JSON report")
        lines.append("")
    return "\n".join(lines)


__all__ = ["code", "escape", "markdown_summary", "weakest_criteria", "worst_criteria"]
