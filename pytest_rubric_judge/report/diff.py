"""A `RunDiff` (`rundiff`) as terminal text, Markdown for a pull-request comment, or JSON.

Everything shown came from two report files, which are untrusted: test ids, assertion
names, the names of the responses and judge error messages are escaped where they are
placed (control and bidirectional characters for the terminal, `report.escape`; Markdown,
HTML and mentions besides in Markdown, `report.markdown`). JSON output escapes every
character outside ASCII, so it is valid whatever the reports held.
"""

from __future__ import annotations

import json
from typing import Any

from ..rundiff import DIFF_FORMAT, DIFF_VERSION, CriterionChange, JudgmentChange, RunDiff, Side
from .escape import escape_control
from .markdown import code, escape
from .text import counted, describe_preference, signed

__all__ = ["diff_data", "diff_json", "diff_lines", "diff_markdown", "headline"]

#: Longest judge error message shown, in characters.
MESSAGE_WIDTH = 200
#: Most rows of each Markdown table; the JSON output has them all.
MAX_ROWS = 50
_OUTCOME = {"passed": "PASS", "failed": "FAIL", "caught": "CAUGHT"}
_REASONS = {
    "outcome": "passed in the old run, fails in the new one",
    "preference": "the judge now ranks new lower, consistently in both orders",
}
_TITLE = {
    "regressed": "REGRESSED",
    "changed": "CHANGED",
    "added": "ADDED",
    "removed": "REMOVED",
    "error": "JUDGE ERROR",
}


def _clip(text: str, width: int = MESSAGE_WIDTH) -> str:
    flat = " ".join(escape_control(text).split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else signed(value)


def _moved(
    before: float | None, after: float | None, show: Any = _number, arrow: str = "->"
) -> str:
    """`0.125 -> 0.500`, one value when it did not move, "" when neither run has one."""
    if before is None and after is None:
        return ""
    if before is not None and after is not None and abs(after - before) < 0.0005:
        return str(show(after))
    return f"{show(before)} {arrow} {show(after)}"


def _preference(side: Side) -> str:
    if side.preference is None:
        return "graded" if side.score is not None else "no verdict"
    names = (escape_control(side.names[0]), escape_control(side.names[1]))
    consistency = "consistent" if side.consistent else "INCONSISTENT"
    return f"{describe_preference(side.preference, names)}, {consistency}"


def _side_line(side: Side) -> str:
    parts = [_OUTCOME[side.outcome], _preference(side)]
    if side.margin is not None:
        parts.append(f"margin new-baseline {signed(side.margin)}")
    if side.score is not None:
        parts.append(f"score {side.score:.3f}")
    return ", ".join(parts)


def headline(diff: RunDiff) -> str:
    """`2 regressions (2 from pass to fail, 1 preference against new)`, or `no regressions`."""
    regressions = diff.regressions
    if not regressions:
        return "no regressions"
    outcome = sum(1 for item in regressions if "outcome" in item.reasons)
    preference = sum(1 for item in regressions if "preference" in item.reasons)
    return (
        f"{counted(len(regressions), 'regression')} ({outcome} from pass to fail, "
        f"{preference} with a consistent preference moved against new)"
    )


def _rate_line(diff: RunDiff, arrow: str = "->") -> str:
    old, new = diff.rate.old, diff.rate.new

    def shown(rate: Any) -> str:
        return f"{rate.preferred}/{rate.judged} = {_number(rate.rate)}"

    line = f"win rate of new (preferred / judged): {shown(old)} {arrow} {shown(new)}"
    interval = diff.rate.interval
    if interval is None:
        return line + "; no change to estimate (a run judged nothing)"
    return f"{line}; change {signed(interval.difference)}, {interval.describe()}"


def _criterion_rows(criteria: tuple[CriterionChange, ...]) -> list[str]:
    changed = [item for item in criteria if item.changed]
    if not changed:
        return []
    pairwise = any(c.baseline_old is not None or c.baseline_new is not None for c in changed)
    rows = [("criterion (weighted)", "baseline", "new") if pairwise else ("criterion", "weighted")]
    for item in changed:
        new = _moved(item.new_old, item.new_new)
        baseline = _moved(item.baseline_old, item.baseline_new)
        rows.append(
            (escape_control(item.name), baseline, new)
            if pairwise
            else (escape_control(item.name), new)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("    " + "  ".join([*cells, row[-1]]).rstrip())
    return lines


def _change_lines(item: JudgmentChange) -> list[str]:
    key = escape_control(item.key)
    if item.old is None or item.new is None:
        side = item.new if item.new is not None else item.old
        assert side is not None
        line = f"{_TITLE[item.status]} {key}: {_side_line(side)}"
        if item.error is not None:
            line = f"{_TITLE[item.status]} {key}: was {_side_line(side)}; now {_clip(item.error)}"
        return [line]
    old, new = item.old, item.new
    why = "; ".join(_REASONS[reason] for reason in item.reasons)
    lines = [
        f"{_TITLE[item.status]} {key} ({escape_control(new.assertion)})"
        + (f": {why}" if why else "")
    ]
    if old.outcome != new.outcome:
        lines.append(f"  outcome: {_OUTCOME[old.outcome]} -> {_OUTCOME[new.outcome]}")
    if old.preference is not None or new.preference is not None:
        before, after = _preference(old), _preference(new)
        moved = before if before == after else f"{before} -> {after}"
        lines.append(f"  preference: {moved}")
    if old.margin is not None or new.margin is not None:
        margin = _moved(old.margin, new.margin, _signed)
        change = item.margin_change
        extra = f" ({signed(change)})" if change is not None and abs(change) >= 0.0005 else ""
        lines.append(f"  margin new-baseline: {margin}{extra}")
    if old.score is not None or new.score is not None:
        lines.append(f"  score: {_moved(old.score, new.score)}")
    return lines + _criterion_rows(item.criteria)


def diff_lines(diff: RunDiff) -> list[str]:
    """The diff for a terminal: counts, each change, judge errors, the win rate, the verdict."""
    counts = diff.counts()
    lines = [
        f"rubric judge diff: {escape_control(diff.old_name)} -> {escape_control(diff.new_name)}",
        f"judged assertions: {counts['regressed']} regressed, {counts['changed']} changed, "
        f"{counts['unchanged']} unchanged, {counts['added']} added, {counts['removed']} "
        f"removed, {counts['error']} lost to a judge error; tests: {counts['tests_added']} "
        f"added, {counts['tests_removed']} removed",
    ]
    for status in ("regressed", "changed", "added", "removed", "error"):
        for item in diff.with_status(status):
            lines.extend(_change_lines(item))
    for error in diff.errors:
        message = _clip(error.new if error.new is not None else error.old or "")
        when = (
            "both runs" if error.old and error.new else "new run" if error.new else "old run only"
        )
        lines.append(f"JUDGE ERROR ({when}) {escape_control(error.nodeid)}: {message}")
    lines.append(_rate_line(diff))
    lines.extend(f"note: {note}" for note in diff.notes)
    lines.append(f"result: {headline(diff)}")
    return lines


# -- Markdown -------------------------------------------------------------------------


def _md(text: str) -> str:
    return escape(escape_control(text))


def _md_code(text: str) -> str:
    return code(escape_control(text))


def _md_preference(side: Side | None) -> str:
    if side is None or side.preference is None:
        return ""
    return _md_code(side.preference) + ("" if side.consistent else " (inconsistent)")


def _md_cells(item: JudgmentChange) -> list[str]:
    old, new = item.old, item.new
    outcome = " → ".join(
        f"**{_OUTCOME[s.outcome]}**" if s.outcome == "failed" else _OUTCOME[s.outcome]
        for s in (old, new)
        if s is not None
    )
    if item.status == "error":
        outcome += " → judge error"
    preferences = [_md_preference(s) for s in (old, new) if s is not None]
    preference = " → ".join(dict.fromkeys(p for p in preferences if p))
    margins = [s.margin for s in (old, new) if s is not None and s.margin is not None]
    margin = " → ".join(signed(m) for m in margins)
    if item.margin_change is not None and abs(item.margin_change) >= 0.0005:
        margin += f" ({signed(item.margin_change)})"
    scores = [s.score for s in (old, new) if s is not None and s.score is not None]
    if scores:
        margin = (
            (margin + "; " if margin else "") + "score " + " → ".join(f"{s:.3f}" for s in scores)
        )
    status = f"**{item.status}**" if item.status == "regressed" else item.status
    return [status, _md_code(item.key), outcome, preference, margin]


def _table(header: list[str], rows: list[list[str]], what: str) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines += ["", f"… and {len(rows) - MAX_ROWS} more {what} (`--format json` lists all)."]
    return lines


def diff_markdown(diff: RunDiff) -> str:
    """The diff as Markdown for a CI step summary or a pull-request comment."""
    counts = diff.counts()
    regressions = len(diff.regressions)
    title = f"{counted(regressions, 'regression')}" if regressions else "no regressions"
    lines = [
        f"## Rubric judge diff: {title}",
        "",
        f"Old run {_md_code(diff.old_name)}, new run {_md_code(diff.new_name)}. Judged "
        f"assertions: {counts['regressed']} regressed, {counts['changed']} changed, "
        f"{counts['unchanged']} unchanged, {counts['added']} added, {counts['removed']} "
        f"removed, {counts['error']} lost to a judge error. Tests: {counts['tests_added']} "
        f"added, {counts['tests_removed']} removed.",
        "",
        "**Win rate of new** " + _md(_rate_line(diff, "→").split(" ", 4)[4]),
    ]
    shown = [
        _md_cells(item)
        for status in ("regressed", "changed", "added", "removed", "error")
        for item in diff.with_status(status)
    ]
    if shown:
        header = ["", "test", "outcome", "preference", "margin new-baseline"]
        lines += ["", "### Changes", "", *_table(header, shown, "changes")]
    criteria = [
        [
            _md_code(item.key),
            _md_code(change.name),
            _moved(change.baseline_old, change.baseline_new, arrow="→"),
            _moved(change.new_old, change.new_new, arrow="→"),
        ]
        for item in diff.with_status("regressed", "changed")
        for change in item.criteria
        if change.changed
    ]
    if criteria:
        header = ["test", "criterion", "baseline (weighted)", "new (weighted)"]
        lines += ["", "<details><summary>Criterion changes</summary>", ""]
        lines += [*_table(header, criteria, "criterion changes"), "", "</details>"]
    if diff.errors:
        lines += ["", "### Judge errors", ""]
        for error in diff.errors[:MAX_ROWS]:
            when = "both runs" if error.old and error.new else "new run" if error.new else "old run"
            message = error.new if error.new is not None else error.old or ""
            lines.append(f"- {_md_code(error.nodeid)} ({when}): {_md(_clip(message))}")
    if diff.notes:
        lines += ["", *(f"- Note: {_md(note)}" for note in diff.notes)]
    return "\n".join(lines) + "\n"


# -- JSON -----------------------------------------------------------------------------


def _trio(before: float | None, after: float | None) -> dict[str, float | None]:
    change = after - before if before is not None and after is not None else None
    return {"old": before, "new": after, "change": change}


def _side_data(side: Side | None) -> dict[str, Any] | None:
    if side is None:
        return None
    return {
        "assertion": side.assertion,
        "outcome": side.outcome,
        "suite": side.suite,
        "names": list(side.names),
        "preference": side.preference,
        "consistent": side.consistent,
        "weighted_baseline": side.weighted_baseline,
        "weighted_new": side.weighted_new,
        "margin_new_minus_baseline": side.margin,
        "score": side.score,
    }


def _judgment_data(item: JudgmentChange) -> dict[str, Any]:
    old, new = item.old, item.new
    return {
        "nodeid": item.nodeid,
        "ordinal": item.ordinal,
        "status": item.status,
        "regression_reasons": list(item.reasons),
        "flipped": item.flipped,
        "old": _side_data(old),
        "new": _side_data(new),
        "margin_new_minus_baseline": _trio(
            old.margin if old else None, new.margin if new else None
        ),
        "score": _trio(old.score if old else None, new.score if new else None),
        "criteria": [
            {
                "name": c.name,
                "changed": c.changed,
                "baseline": _trio(c.baseline_old, c.baseline_new),
                "new": _trio(c.new_old, c.new_new),
            }
            for c in item.criteria
        ],
        "error": item.error,
    }


def diff_data(diff: RunDiff) -> dict[str, Any]:
    """The diff as plain data: every judged assertion of either run, with its status."""
    rate = diff.rate
    interval = rate.interval
    return {
        "format": DIFF_FORMAT,
        "version": DIFF_VERSION,
        "old": diff.old_name,
        "new": diff.new_name,
        "regressions": len(diff.regressions),
        "counts": diff.counts(),
        "win_rate": {
            **{
                name: {
                    "preferred": r.preferred,
                    "judged": r.judged,
                    "rate": r.rate,
                    "wilson": list(r.interval(diff.level) or ()) or None,
                }
                for name, r in (("old", rate.old), ("new", rate.new))
            },
            "change": interval.difference if interval else None,
            "interval": (
                {
                    "low": interval.low,
                    "high": interval.high,
                    "level": interval.level,
                    "method": "newcombe_hybrid_score",
                }
                if interval
                else None
            ),
        },
        "judgments": [_judgment_data(item) for item in diff.judgments],
        "tests_added": list(diff.tests_added),
        "tests_removed": list(diff.tests_removed),
        "judge_errors": [{"nodeid": e.nodeid, "old": e.old, "new": e.new} for e in diff.errors],
        "notes": list(diff.notes),
    }


def diff_json(diff: RunDiff) -> str:
    """`diff_data` as indented JSON, ASCII only (non-finite numbers become null)."""
    return json.dumps(_finite_only(diff_data(diff)), indent=2, ensure_ascii=True) + "\n"


def _finite_only(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {key: _finite_only(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_only(item) for item in value]
    return value
