"""`dashboard.png`: the article's six panels, plus consistency and the per-criterion comparison.

Drawn from `metrics.json` alone with matplotlib's Agg backend (no display needed), which
the `plot` extra installs: `pip install "pytest-rubric-judge[plot]"`. Without it,
`write_dashboard` raises `PlotUnavailable` with that instruction.

Panels: the outcome counts (A wins, B wins, ties, errors); B's win rate with its interval
and a 50% line; the preference pie of valid judgments; A against B (wins and mean weighted
scores with their standard errors); a win-rate gauge that reads 0% on the left and 100% on
the right, its needle at the win rate; the summary table; the consistency of the two
orders; and each criterion's mean normalized score for A and B.
"""

from __future__ import annotations

import importlib
import math
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .metrics import summary_rows

__all__ = [
    "PlotUnavailable",
    "gauge_angle",
    "interval_label",
    "pyplot",
    "wrap_to_width",
    "write_dashboard",
]

COLOR_A = "#c62828"
COLOR_B = "#2e7d32"
COLOR_TIE = "#9e9e9e"
COLOR_ERROR = "#ef6c00"


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def gauge_angle(rate: float) -> float:
    """The needle's angle in degrees for a win rate: 180 at 0% (left), 90 at 50%, 0 at 100%."""
    return 180.0 * (1.0 - min(1.0, max(0.0, rate)))


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed); `PlotUnavailable` without it."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        raise PlotUnavailable(
            'dashboard.png needs matplotlib: pip install "pytest-rubric-judge[plot]"'
        ) from None
    matplotlib.use("Agg", force=True)
    return importlib.import_module("matplotlib.pyplot")


#: The older name of `pyplot`.
_pyplot = pyplot


def write_dashboard(metrics: Mapping[str, Any], path: Path) -> Path:
    """Draw the dashboard for `metrics` into `path` (PNG) and return the path."""
    plt = pyplot()
    figure, axes = plt.subplots(2, 4, figsize=(24, 11))
    figure.suptitle(
        "Rubric judge comparison: A (baseline) vs B (candidate)", fontsize=16, weight="bold"
    )
    (dist, rate, pie, versus), (gauge, table, consistency, criteria) = axes
    _distribution(dist, metrics)
    _win_rate(rate, metrics)
    _pie(pie, metrics)
    _versus(versus, metrics)
    _gauge(gauge, metrics)
    table.axis("off")
    table.set_title("Summary")
    _consistency(consistency, metrics)
    _criteria(criteria, metrics)
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    # The table is sized to its panel as laid out, so it is drawn last.
    _table(table, metrics)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def _distribution(ax: Any, metrics: Mapping[str, Any]) -> None:
    labels = ["A wins", "B wins", "ties", "judge errors"]
    values = [
        metrics["a_scores"],
        metrics["b_scores"],
        metrics["ties"],
        metrics["inference_error"],
    ]
    bars = ax.bar(labels, values, color=[COLOR_A, COLOR_B, COLOR_TIE, COLOR_ERROR])
    ax.bar_label(bars, padding=2)
    ax.set_title(f"Score distribution ({metrics['comparisons']} comparisons)")
    ax.set_ylabel("comparisons (both orders reconciled)")
    ax.set_ylim(0, max([*values, 1]) * 1.2)


def interval_label(name: str, interval: Mapping[str, Any], width: int = 26) -> str:
    """An interval as a short multi-line label: its name, its bounds, then the method's
    details wrapped at `width` characters (`bootstrap` / `[0.25, 0.88]` / `95% ...`)."""
    text = str(interval.get("text") or "")
    bounds, _, detail = text.partition(" (")
    lines = [name, bounds or f"[{interval['low']:.3f}, {interval['high']:.3f}]"]
    lines += textwrap.wrap(detail.rstrip(")"), width)
    return "\n".join(lines)


def _win_rate(ax: Any, metrics: Mapping[str, Any]) -> None:
    # Each interval is described in its tick label, left of the plot, so no text can
    # cross the 50% line whatever the rate.
    winrate = metrics["winrate"]
    ax.axvline(0.5, color="black", linestyle="--", linewidth=1, label="no preference (50%)")
    intervals = metrics["intervals"]
    rows = [("Wilson", intervals["wilson"])]
    if intervals.get("bootstrap"):
        rows.append(("bootstrap", intervals["bootstrap"]))
    for y, (_, interval) in enumerate(rows):
        if winrate is not None:
            below = max(0.0, winrate - interval["low"])
            above = max(0.0, interval["high"] - winrate)
            ax.errorbar(
                [winrate],
                [y],
                xerr=[[below], [above]],
                fmt="o",
                color=COLOR_B,
                capsize=8,
                markersize=9,
            )
    ax.set_yticks(
        range(len(rows)), [interval_label(name, interval) for name, interval in rows], fontsize=9
    )
    ax.set_ylim(-0.6, len(rows) - 0.2)
    ax.set_xlim(0, 1)
    shown = "n/a" if winrate is None else f"{winrate:.1%}"
    ax.set_title(f"Win rate of B: {shown} with its interval")
    ax.set_xlabel("B wins / (A wins + B wins)")
    ax.legend(loc="lower right", fontsize=9)


def _pie(ax: Any, metrics: Mapping[str, Any]) -> None:
    parts = [
        ("B preferred", metrics["b_scores"], COLOR_B),
        ("A preferred", metrics["a_scores"], COLOR_A),
        ("tie", metrics["ties"], COLOR_TIE),
    ]
    parts = [p for p in parts if p[1] > 0]
    valid = sum(p[1] for p in parts)
    if not parts:
        ax.text(0.5, 0.5, "no valid judgments", ha="center", va="center")
        ax.axis("off")
    else:
        ax.pie(
            [p[1] for p in parts],
            labels=[p[0] for p in parts],
            colors=[p[2] for p in parts],
            autopct="%1.0f%%",
            startangle=90,
            counterclock=False,
        )
        ax.axis("equal")
    ax.set_title(f"Preferences among {valid} valid judgments")


def _versus(ax: Any, metrics: Mapping[str, Any]) -> None:
    means = [metrics["weighted_score_A"], metrics["weighted_score_B"]]
    errors = [metrics["weighted_score_A_stderr"], metrics["weighted_score_B_stderr"]]
    bars = ax.bar(
        ["A (baseline)", "B (candidate)"], means, yerr=errors, capsize=8, color=[COLOR_A, COLOR_B]
    )
    ax.bar_label(bars, labels=[f"{m:.3f}" for m in means], padding=6)
    ax.set_ylim(0, 1.2)
    ax.set_ylabel("mean weighted rubric score (± stderr)")
    wins = metrics["b_scores"] - metrics["a_scores"]
    ax.set_title("A vs B: weighted scores and wins")
    ax.text(
        0.5,
        0.95,
        f"wins A {metrics['a_scores']} vs B {metrics['b_scores']} (B {wins:+d}); "
        f"margin A-B {metrics['score_margin']:+.3f} ± {metrics['score_margin_stderr']:.3f}",
        ha="center",
        transform=ax.transAxes,
        fontsize=10,
    )


def _gauge(ax: Any, metrics: Mapping[str, Any]) -> None:
    Wedge = importlib.import_module("matplotlib.patches").Wedge

    # Coloured bands: 0-40% red (A better), 40-60% grey, 60-100% green (B better), drawn
    # counter-clockwise from the right (100%) to the left (0%).
    for start, stop, color in ((0.0, 0.4, COLOR_A), (0.4, 0.6, COLOR_TIE), (0.6, 1.0, COLOR_B)):
        ax.add_patch(
            Wedge(
                (0, 0),
                1.0,
                gauge_angle(stop),
                gauge_angle(start),
                width=0.3,
                color=color,
                alpha=0.8,
            )
        )
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        angle = math.radians(gauge_angle(tick))
        ax.text(
            1.12 * math.cos(angle),
            1.12 * math.sin(angle),
            f"{tick:.0%}",
            ha="center",
            va="center",
            fontsize=9,
        )
    winrate = metrics["winrate"]
    if winrate is not None:
        angle = math.radians(gauge_angle(winrate))
        ax.annotate(
            "",
            xy=(0.85 * math.cos(angle), 0.85 * math.sin(angle)),
            xytext=(0, 0),
            arrowprops={"arrowstyle": "-|>", "linewidth": 3, "color": "black"},
        )
        ax.text(0, -0.2, f"B wins {winrate:.1%}", ha="center", fontsize=14, weight="bold")
    ax.add_patch(Wedge((0, 0), 0.06, 0, 360, color="black"))
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-0.35, 1.25)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("Win-rate gauge (0% left, 100% right)")


#: The summary table's columns, as shares of its panel's width.
TABLE_COLUMNS = (0.36, 0.64)
#: Font sizes tried for the summary table, largest first, until it fits its panel.
TABLE_FONT_SIZES = (9.0, 8.5, 8.0, 7.5, 7.0, 6.5, 6.0)
#: The share of a cell's width its text may take (matplotlib pads 10% on each side).
_CELL_TEXT_SHARE = 0.79
_LINE_SPACING = 1.3


def wrap_to_width(text: str, max_px: float, measure: Callable[[str], float]) -> list[str]:
    """`text` in lines no wider than `max_px`, as `measure` (text -> pixels) reads them:
    broken between words, and a word too long for a line broken between characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if measure(candidate) <= max_px:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        for char in word:
            if current and measure(current + char) > max_px:
                lines.append(current)
                current = ""
            current += char
    if current or not lines:
        lines.append(current)
    return lines


def _table(ax: Any, metrics: Mapping[str, Any]) -> None:
    """The summary table, its text wrapped to its cells and its font shrunk until the
    whole table fits the panel: nothing runs into a neighbouring panel."""
    FontProperties = importlib.import_module("matplotlib.font_manager").FontProperties

    figure = ax.figure
    renderer = figure.canvas.get_renderer()
    panel = ax.get_window_extent(renderer)
    rows = [("metric", "value"), *summary_rows(metrics)]
    for size in TABLE_FONT_SIZES:
        font = FontProperties(size=size)

        def measure(text: str, font: Any = font) -> float:
            width: float = renderer.get_text_width_height_descent(text, font, ismath=False)[0]
            return width

        cells = [
            [
                "\n".join(wrap_to_width(cell, panel.width * share * _CELL_TEXT_SHARE, measure))
                for cell, share in zip(row, TABLE_COLUMNS, strict=True)
            ]
            for row in rows
        ]
        line_px = size * figure.dpi / 72 * _LINE_SPACING
        heights = [(max(c.count("\n") for c in row) + 1.6) * line_px for row in cells]
        if sum(heights) <= panel.height or size == TABLE_FONT_SIZES[-1]:
            break
    table = ax.table(
        cellText=cells[1:],
        colLabels=cells[0],
        loc="upper center",
        cellLoc="left",
        colWidths=list(TABLE_COLUMNS),
    )
    table.auto_set_font_size(False)
    table.set_fontsize(size)
    for (row, _), cell in table.get_celld().items():
        cell.set_height(heights[row] / panel.height)


def _consistency(ax: Any, metrics: Mapping[str, Any]) -> None:
    judged = metrics["judged"]
    rate = metrics["consistency_rate"]
    consistent = round(judged * rate) if rate is not None else 0
    flips = judged - consistent
    bars = ax.bar(
        ["consistent", "position flip"], [consistent, flips], color=[COLOR_B, COLOR_ERROR]
    )
    ax.bar_label(bars, padding=2)
    passes = metrics["passes"]
    ax.set_ylim(0, max(judged, 1) * 1.25)
    shown = "n/a" if rate is None else f"{rate:.1%}"
    ax.set_title(f"Consistency of the two orders: {shown}")
    ax.set_ylabel("judged comparisons")
    ax.text(
        0.5,
        0.92,
        f"per pass: A {passes['a_wins']}, B {passes['b_wins']}, "
        f"ties {passes['ties'] + passes['bothbad']}",
        ha="center",
        transform=ax.transAxes,
        fontsize=10,
    )


def _criteria(ax: Any, metrics: Mapping[str, Any]) -> None:
    criteria = metrics.get("criteria") or {}
    ax.set_title("Per criterion: mean normalized score")
    if not criteria:
        ax.text(0.5, 0.5, "no criteria", ha="center", va="center")
        ax.axis("off")
        return
    # The most frequent criteria first; a judge-written rubric varies between prompts.
    names = sorted(criteria, key=lambda n: -criteria[n]["n_passes"])[:12]
    positions = range(len(names))
    height = 0.38
    ax.barh(
        [p - height / 2 for p in positions],
        [criteria[n]["mean_A"] for n in names],
        height,
        color=COLOR_A,
        label="A (baseline)",
    )
    ax.barh(
        [p + height / 2 for p in positions],
        [criteria[n]["mean_B"] for n in names],
        height,
        color=COLOR_B,
        label="B (candidate)",
    )
    ax.set_yticks(list(positions), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("mean normalized score (0-1), both passes")
    ax.legend(loc="lower right", fontsize=9)
