"""`report.html`: one self-contained page, summary on top, then every comparison.

The page needs no network and runs no script at all: its Content-Security-Policy allows
no script source, and the filters (by preference, and inconsistent comparisons only) are
radio buttons and a checkbox that CSS sibling selectors act on. Every piece of text that
comes from the data (prompts, responses, justifications, criterion names, ids) is HTML-
escaped, so a response containing `<script>` is shown as text. The dashboard, when given,
is embedded as a data: URI.

The top of the page says what the run was: the judge model, the data file, when the page
was written (and when the run started, when known), and whether the run is complete. An
interrupted run, or one that failed (no row judged, judge errors above the allowed
share), has a banner saying so above everything else. Input rows that could not be read
are shown as invalid rows, apart from judge errors, with a filter of their own.

Rows are written one at a time from an iterable of details records, so a report over
100k comparisons is written in constant memory.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ..files import replacing_text
from .details import is_invalid
from .metrics import summary_rows

__all__ = ["FILTERS", "banner", "row_classes", "run_rows", "write_html"]

#: (input id, label, the row class it shows); "all" shows every row.
FILTERS: tuple[tuple[str, str, str], ...] = (
    ("f-all", "all", ""),
    ("f-b", "B preferred (B>A)", "p-b"),
    ("f-a", "A preferred (A>B)", "p-a"),
    ("f-tie", "ties (A=B)", "p-tie"),
    ("f-err", "judge errors", "p-err"),
    ("f-inv", "invalid input rows", "p-inv"),
)
INCONSISTENT_FILTER = "f-incons"

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1em;color:#1d1d1f}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.05em;margin:0}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f3f3f3}
.summary td:first-child{font-weight:600}.dash{max-width:100%;border:1px solid #ddd}
.filters{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd;
z-index:1}.filters label{margin-right:1em;cursor:pointer;padding:2px 6px;border-radius:4px;
border:1px solid #bbb}input.filter{position:absolute;opacity:0;pointer-events:none}
.row{border:1px solid #ddd;border-radius:6px;margin:.8em 0;padding:.6em .8em}
.p-b{border-left:6px solid #2e7d32}.p-a{border-left:6px solid #c62828}
.p-tie{border-left:6px solid #9e9e9e}.p-err{border-left:6px solid #ef6c00}
.p-inv{border-left:6px dashed #6d4c41}
.banner{padding:.5em .8em;border-radius:6px;font-weight:600;margin:.4em 0}
.banner.ok{background:#e8f5e9;border:1px solid #2e7d32}
.banner.warn{background:#fff3cd;border:2px solid #ef6c00;font-size:1.1em}
.banner.fail{background:#fdecea;border:2px solid #b00020;font-size:1.1em}
.run td:first-child{font-weight:600}
.badge{display:inline-block;padding:0 6px;border-radius:4px;background:#eee;margin-left:.4em}
.incons .flag{background:#fff3cd}.text{white-space:pre-wrap;word-break:break-word;
background:#fafafa;border:1px solid #eee;padding:.4em;margin:.2em 0;max-height:20em;
overflow:auto}.cols{display:grid;grid-template-columns:1fr 1fr;gap:.6em}
.error{color:#b00020}.muted{color:#666}
"""


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _number(value: object, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{float(value):.{digits}f}"  # type: ignore[arg-type]


def row_classes(record: Mapping[str, Any]) -> list[str]:
    """The CSS classes the filters act on: the preference, and `incons` when the orders
    disagree; `p-err` for a judge error, `p-inv` for an input row that could not be read."""
    if is_invalid(record):
        return ["row", "p-inv"]
    if record.get("status") != "ok":
        return ["row", "p-err"]
    preference = record.get("preference")
    kind = {"A>B": "p-a", "B>A": "p-b"}.get(str(preference), "p-tie")
    classes = ["row", kind]
    if record.get("consistent") is False:
        classes.append("incons")
    return classes


def _filter_css() -> str:
    rules = []
    for input_id, _, row_class in FILTERS:
        if row_class:
            rules.append(f"#{input_id}:checked~main .row:not(.{row_class}){{display:none}}")
        rules.append(
            f"#{input_id}:checked~.filters label[for={input_id}]"
            "{background:#1d1d1f;color:#fff;border-color:#1d1d1f}"
        )
    rules.append(f"#{INCONSISTENT_FILTER}:checked~main .row:not(.incons){{display:none}}")
    rules.append(
        f"#{INCONSISTENT_FILTER}:checked~.filters label[for={INCONSISTENT_FILTER}]"
        "{background:#1d1d1f;color:#fff;border-color:#1d1d1f}"
    )
    return "\n".join(rules)


def _score(value: object, kind: object) -> str:
    if value is None:
        return ""
    if kind == "binary" or isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _criteria_table(record: Mapping[str, Any]) -> str:
    parts = [
        "<table class='criteria'><thead><tr><th>criterion</th><th>weight</th><th>type</th>"
        "<th>A fwd / rev</th><th>B fwd / rev</th><th>justification A (forward)</th>"
        "<th>justification B (forward)</th></tr></thead><tbody>"
    ]
    for criterion in record.get("criteria") or ():
        kind = criterion.get("type")
        score_a = (
            f"{_score(criterion.get('forward_score_A'), kind)} / "
            f"{_score(criterion.get('reversed_score_A'), kind)}"
        )
        score_b = (
            f"{_score(criterion.get('forward_score_B'), kind)} / "
            f"{_score(criterion.get('reversed_score_B'), kind)}"
        )
        parts.append(
            "<tr>"
            f"<td><b>{_esc(criterion.get('name'))}</b><div class='muted'>"
            f"{_esc(criterion.get('description'))}</div></td>"
            f"<td>{_number(criterion.get('weight'), 2)}</td><td>{_esc(kind)}</td>"
            f"<td>{_esc(score_a)}</td><td>{_esc(score_b)}</td>"
            f"<td>{_esc(criterion.get('forward_justification_A'))}</td>"
            f"<td>{_esc(criterion.get('forward_justification_B'))}</td>"
            "</tr>"
        )
    parts.append("</tbody></table>")
    return "".join(parts)


def _row_html(record: Mapping[str, Any]) -> str:
    classes = row_classes(record)
    index, row_id = record.get("index"), record.get("id")
    head = f"<h2>#{_esc(index)} <span class='muted'>id {_esc(row_id)}</span>"
    if is_invalid(record):
        head += "<span class='badge'>invalid input row</span></h2>"
        body = (
            "<p class='error'>not judged: this input row could not be read: "
            f"{_esc(record.get('error'))}</p>"
        )
        return (
            f"<article class='{' '.join(classes)}' id='row-{_esc(index)}'>{head}{body}</article>\n"
        )
    if record.get("status") != "ok":
        head += "<span class='badge'>judge error</span></h2>"
        body = f"<p class='error'>{_esc(record.get('error_type'))}: {_esc(record.get('error'))}</p>"
    else:
        consistency = (
            "consistent"
            if record.get("consistent")
            else (
                f"position flip: forward {(record.get('forward') or {}).get('preference')}, "
                f"reversed {(record.get('reversed') or {}).get('preference')}"
            )
        )
        head += (
            f"<span class='badge'>{_esc(record.get('preference'))}</span>"
            f"<span class='badge flag'>{_esc(consistency)}</span>"
            f"<span class='badge'>A {_number(record.get('weighted_score_A'))} · "
            f"B {_number(record.get('weighted_score_B'))} · margin "
            f"{_number(record.get('score_margin'))}</span></h2>"
        )
        slots = {
            "forward": "A shown as A",
            "reversed": "B shown as A; the judge's text speaks of slots",
        }
        justifications = "".join(
            f"<p><b>{order} pass</b> <span class='muted'>({slots[order]})</span>, "
            f"label mapped back: {_esc((record.get(order) or {}).get('preference'))}. "
            f"{_esc((record.get(order) or {}).get('overall_justification'))}</p>"
            for order in ("forward", "reversed")
        )
        body = justifications + _criteria_table(record)
    reference = record.get("reference")
    texts = (
        f"<div><b>prompt</b><div class='text'>{_esc(record.get('prompt'))}</div></div>"
        + (
            f"<div><b>reference</b><div class='text'>{_esc(reference)}</div></div>"
            if reference
            else ""
        )
        + "<div class='cols'>"
        f"<div><b>response A (baseline)</b><div class='text'>{_esc(record.get('response_A'))}"
        "</div></div>"
        f"<div><b>response B (candidate)</b><div class='text'>{_esc(record.get('response_B'))}"
        "</div></div></div>"
    )
    return (
        f"<article class='{' '.join(classes)}' id='row-{_esc(index)}'>{head}"
        f"<details open><summary>texts</summary>{texts}</details>{body}</article>\n"
    )


def _when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _started(run: Mapping[str, Any]) -> str | None:
    """When the run started, from its `started` ISO time (None when it has none)."""
    text = run.get("started")
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return _when(moment)


def run_rows(metrics: Mapping[str, Any], now: datetime) -> list[tuple[str, str]]:
    """What the run was: judge model, data, time, and what it covers (label, value)."""
    run = metrics.get("run") or {}
    rows = [
        ("judge model", str(run.get("judge_model") or "not recorded")),
        ("data", str(run.get("data") or "not recorded")),
    ]
    if run.get("rescored_from"):
        rows.append(("rescored from", f"{run['rescored_from']} (no judge request)"))
    started = _started(run)
    if started is not None:
        rows.append(("run started", started))
    if run.get("wall_s") is not None:
        rows.append(("run took", f"{float(run['wall_s']):.1f} s"))
    rows.append(("report written", _when(now)))
    return rows


def _rows_word(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def banner(metrics: Mapping[str, Any]) -> tuple[str, str]:
    """The line at the top of the page: (`ok`, `warn` or `fail`, text)."""
    rows = int(metrics.get("rows", metrics.get("comparisons") or 0))
    judged = int(metrics.get("judged") or 0)
    errors = int(metrics.get("inference_error") or 0)
    invalid = int(metrics.get("invalid_rows") or 0)
    counts = (
        f"{judged} judged, {errors} judge error{'' if errors == 1 else 's'}, "
        f"{invalid} invalid input row{'' if invalid == 1 else 's'}"
    )
    status = metrics.get("status")
    if status == "interrupted" or metrics.get("complete") is False:
        return (
            "warn",
            f"INTERRUPTED: this report covers only the {_rows_word(rows)} finished before "
            f"the interruption ({counts}); the other input rows are missing. Run the same "
            "command again to resume: finished judge calls come from the cache.",
        )
    if status == "nothing_judged":
        return "fail", f"FAILED: no row was judged ({_rows_word(rows)} read: {counts})."
    if status == "too_many_errors":
        limit = metrics.get("max_error_rate")
        above = f" above --max-error-rate {float(limit):.1%}" if limit is not None else ""
        return "fail", f"FAILED: judge errors{above} ({counts})."
    return "ok", f"complete: every input row was read ({_rows_word(rows)}: {counts})."


def _causes(metrics: Mapping[str, Any]) -> str:
    parts = []
    for key, title in (
        ("judge_error_causes", "Judge errors by cause"),
        ("invalid_row_causes", "Invalid input rows by cause (not judge errors)"),
    ):
        causes = metrics.get(key) or []
        if not causes:
            continue
        items = "".join(
            f"<li><b>{_esc(cause.get('type'))}</b>: "
            f"{_esc(_rows_word(int(cause.get('count') or 0)))}; first at row "
            f"#{_esc(cause.get('first_index'))}: {_esc(cause.get('example'))}</li>"
            for cause in causes
        )
        parts.append(f"<h2>{title}</h2><ul class='causes'>{items}</ul>")
    return "".join(parts)


def _summary(metrics: Mapping[str, Any], dashboard: Path | None, now: datetime) -> str:
    kind, text = banner(metrics)
    run = "".join(
        f"<tr><td>{_esc(label)}</td><td>{_esc(value)}</td></tr>"
        for label, value in run_rows(metrics, now)
    )
    rows = "".join(
        f"<tr><td>{_esc(label)}</td><td>{_esc(value)}</td></tr>"
        for label, value in summary_rows(metrics)
    )
    criteria = metrics.get("criteria") or {}
    criteria_rows = "".join(
        f"<tr><td>{_esc(name)}</td><td>{_number(v.get('mean_A'))}</td>"
        f"<td>{_number(v.get('mean_B'))}</td><td>{_number(v.get('difference_B_minus_A'))}</td>"
        f"<td>{_esc(v.get('n_passes'))}</td></tr>"
        for name, v in criteria.items()
    )
    parts = [
        "<section id='summary'><h1>Comparison: A (baseline) vs B (candidate)</h1>",
        f"<p class='banner {kind}'>{_esc(text)}</p>",
        f"<table class='run'><tbody>{run}</tbody></table>",
        f"<table class='summary'><tbody>{rows}</tbody></table>",
        _causes(metrics),
    ]
    if criteria_rows:
        parts.append(
            "<h2>Per criterion (mean normalized score, both passes)</h2>"
            "<table class='per-criterion'><thead><tr><th>criterion</th><th>A</th><th>B</th>"
            f"<th>B - A</th><th>passes</th></tr></thead><tbody>{criteria_rows}</tbody></table>"
        )
    if dashboard is not None and dashboard.is_file():
        encoded = base64.b64encode(dashboard.read_bytes()).decode("ascii")
        parts.append(
            f"<details><summary>dashboard</summary><img class='dash' alt='dashboard' "
            f"src='data:image/png;base64,{encoded}'></details>"
        )
    parts.append("</section>")
    return "".join(parts)


def _write(
    out: IO[str],
    metrics: Mapping[str, Any],
    records: Iterable[Mapping[str, Any]],
    dashboard: Path | None,
    counts: Mapping[str, int],
    now: datetime,
) -> None:
    out.write(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        "<title>rubric-judge comparison report</title>"
        f"<style>{_STYLE}\n{_filter_css()}</style></head><body>\n"
    )
    out.write(_summary(metrics, dashboard, now))
    out.write("\n")
    for input_id, _, _ in FILTERS:
        checked = " checked" if input_id == "f-all" else ""
        out.write(f"<input type='radio' class='filter' name='preference' id='{input_id}'{checked}>")
    out.write(f"<input type='checkbox' class='filter' id='{INCONSISTENT_FILTER}'>\n")
    labels = "".join(
        f"<label for='{input_id}'>{_esc(text)} ({counts.get(row_class or 'all', 0)})</label>"
        for input_id, text, row_class in FILTERS
    )
    labels += (
        f"<label for='{INCONSISTENT_FILTER}'>only inconsistent ({counts.get('incons', 0)})</label>"
    )
    out.write(f"<nav class='filters'>show: {labels}</nav>\n<main id='rows'>\n")
    for record in records:
        out.write(_row_html(record))
    out.write("</main></body></html>\n")


def write_html(
    path: Path,
    metrics: Mapping[str, Any],
    records: Iterable[Mapping[str, Any]],
    *,
    dashboard: Path | None = None,
    counts: Mapping[str, int] | None = None,
    now: datetime | None = None,
) -> None:
    """Write `report.html`. `counts` (rows per filter class) labels the filter buttons;
    `now` is the time the page says it was written (the current time by default)."""
    if counts is None:
        counts = _counts_from_metrics(metrics)
    moment = now if now is not None else datetime.now(timezone.utc)
    with replacing_text(path) as out:
        _write(out, metrics, records, dashboard, counts, moment)


def _counts_from_metrics(metrics: Mapping[str, Any]) -> dict[str, int]:
    reconciled = metrics.get("reconciled") or {}
    judged = int(metrics.get("judged") or 0)
    consistent = metrics.get("consistency_rate")
    return {
        "all": int(metrics.get("rows", metrics.get("comparisons")) or 0),
        "p-a": int(reconciled.get("a_wins", 0)),
        "p-b": int(reconciled.get("b_wins", 0)),
        "p-tie": int(reconciled.get("ties", 0)) + int(reconciled.get("bothbad", 0)),
        "p-err": int(reconciled.get("errors", 0)),
        "p-inv": int(metrics.get("invalid_rows") or 0),
        "incons": round(judged * (1 - consistent)) if consistent is not None else 0,
    }
