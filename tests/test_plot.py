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
