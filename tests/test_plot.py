"""dashboard.png: the panels are drawn, the gauge reads left to right, and a clear message
without matplotlib."""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_rubric_judge.report.plot import PlotUnavailable, gauge_angle, write_dashboard


def _article_metrics() -> dict[str, Any]:
    """The article's example: 3 A wins, 7 B wins, 1 error; scores 0.495 vs 0.630."""
    wilson = {
        "method": "wilson",
        "level": 0.95,
        "low": 0.397,
        "high": 0.892,
        "n": 10,
        "resamples": None,
        "seed": None,
        "text": "[0.397, 0.892] (95% Wilson, n=10)",
    }
    return {
        "a_scores": 3, "b_scores": 7, "ties": 0, "inference_error": 1, "comparisons": 11,
        "judged": 10, "error_rate": 1 / 11, "winrate": 0.7, "consistency_rate": 0.8,
        "weighted_score_A": 0.495, "weighted_score_A_stderr": 0.05,
        "weighted_score_B": 0.630, "weighted_score_B_stderr": 0.04,
        "score_margin": -0.135, "score_margin_stderr": 0.06,
        "intervals": {"wilson": wilson, "bootstrap": None},
        "passes": {"a_wins": 7, "b_wins": 13, "ties": 0, "bothbad": 0, "errors": 2},
        "criteria": {
            "accuracy": {"mean_A": 0.4, "mean_B": 0.7, "n_passes": 20},
            "clarity": {"mean_A": 0.6, "mean_B": 0.65, "n_passes": 20},
        },
    }  # fmt: skip


def test_gauge_reads_zero_on_the_left_and_full_on_the_right() -> None:
    assert gauge_angle(0.0) == 180.0  # left
    assert gauge_angle(0.5) == 90.0  # straight up
    assert gauge_angle(1.0) == 0.0  # right
    assert gauge_angle(0.7) == pytest.approx(54.0)  # the article's 70%: right of centre


def test_dashboard_is_a_png_with_eight_panels(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    created: list[Any] = []
    original = plt.subplots

    def spy(*args: Any, **kwargs: Any) -> Any:
        figure, axes = original(*args, **kwargs)
        created.append(figure)
        return figure, axes

    plt.subplots = spy
    try:
        path = write_dashboard(_article_metrics(), tmp_path / "dashboard.png")
    finally:
        plt.subplots = original
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1920, 880)
    (figure,) = created
    titles = [ax.get_title() for ax in figure.axes]
    for expected in (
        "Score distribution (11 comparisons)",
        "Win rate of B: 70.0% with its interval",
        "Preferences among 10 valid judgments",
        "A vs B: weighted scores and wins",
        "Win-rate gauge (0% left, 100% right)",
        "Summary",
        "Consistency of the two orders: 80.0%",
        "Per criterion: mean normalized score",
    ):
        assert expected in titles
    gauge = figure.axes[titles.index("Win-rate gauge (0% left, 100% right)")]
    (arrow,) = [child for child in gauge.texts if child.get_text() == ""]
    tip_x, tip_y = arrow.xy
    assert tip_x > 0 and tip_y > 0  # 70% points up and to the right


def test_missing_matplotlib_is_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(PlotUnavailable, match=r"pytest-rubric-judge\[plot\]"):
        write_dashboard(_article_metrics(), tmp_path / "dashboard.png")
    assert not (tmp_path / "dashboard.png").exists()


def _drawn(metrics: dict[str, Any], path: Path) -> Any:
    """Draw the dashboard and return its figure (kept from `plt.subplots`)."""
    import matplotlib.pyplot as plt

    created: list[Any] = []
    original = plt.subplots

    def spy(*args: Any, **kwargs: Any) -> Any:
        figure, axes = original(*args, **kwargs)
        created.append(figure)
        return figure, axes

    plt.subplots = spy
    try:
        write_dashboard(metrics, path)
    finally:
        plt.subplots = original
    (figure,) = created
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)  # the figure was closed; measure it on a canvas of its own
    figure.canvas.draw()
    return figure


def _with_long_texts() -> dict[str, Any]:
    """The article's metrics with a bootstrap interval, a status and invalid rows: the
    longest texts the summary table shows."""
    metrics = _article_metrics()
    metrics["intervals"]["bootstrap"] = {
        "method": "bootstrap", "level": 0.95, "low": 0.4, "high": 1.0, "n": 10,
        "resamples": 2000, "seed": 0,
        "text": "[0.400, 1.000] (95% percentile bootstrap, 2000 resamples, seed 0, n=10)",
    }  # fmt: skip
    metrics.update(status="too_many_errors", max_error_rate=0.05, invalid_rows=3, rows=14)
    return metrics


def _axis(figure: Any, title: str) -> Any:
    (found,) = [ax for ax in figure.axes if ax.get_title().startswith(title)]
    return found


def test_summary_table_text_stays_inside_its_cells_and_its_panel(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    figure = _drawn(_with_long_texts(), tmp_path / "dashboard.png")
    renderer = figure.canvas.get_renderer()
    table_ax = _axis(figure, "Summary")
    (table,) = table_ax.tables
    cells = table.get_celld()
    assert cells
    for (row, column), cell in cells.items():
        box = cell.get_window_extent(renderer)
        text = cell.get_text().get_window_extent(renderer)
        assert box.x0 - 1 <= text.x0 and text.x1 <= box.x1 + 1, (row, column, cell.get_text())
        assert box.y0 - 1 <= text.y0 and text.y1 <= box.y1 + 1, (row, column, cell.get_text())
    whole = table.get_window_extent(renderer)
    for other in figure.axes:
        if other is not table_ax:
            assert not whole.overlaps(other.get_tightbbox(renderer)), other.get_title()


def test_win_rate_labels_never_cross_the_50_percent_line(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    for winrate in (0.2, 0.5, 0.7, 0.95):
        metrics = _with_long_texts()
        metrics["winrate"] = winrate
        for interval in metrics["intervals"].values():
            interval["low"], interval["high"] = max(0, winrate - 0.3), min(1, winrate + 0.2)
        figure = _drawn(metrics, tmp_path / "dashboard.png")
        renderer = figure.canvas.get_renderer()
        ax = _axis(figure, "Win rate of B")
        line_x = ax.transData.transform((0.5, 0))[0]
        plot_area = ax.get_window_extent(renderer)
        labels = [t for t in ax.texts if t.get_text()]
        labels += [t for t in ax.get_yticklabels() if t.get_text()]
        assert any("bootstrap" in t.get_text() for t in labels)
        for text in labels:
            box = text.get_window_extent(renderer)
            if box.y1 < plot_area.y0 or box.y0 > plot_area.y1:
                continue  # above or below the plot, where the line is not drawn
            assert not box.x0 <= line_x <= box.x1, (winrate, text.get_text())
