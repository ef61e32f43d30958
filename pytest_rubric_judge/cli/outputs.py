"""The outputs `compare` and `rescore` share: statistics options, files, summary, status.

Both write `metrics.json`, `details.jsonl` (plus `details.parquet`, `dashboard.png` and
`report.html` when wanted and possible) into a folder, print the same summary table, and
end with the same exit status: 0 when the run judged what it was given, 1 when it judged
nothing or its judge-error share is above `--max-error-rate` (the cause in one line on
stderr), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from ..options import non_negative_int
from ..report.details import read_details, write_parquet
from ..report.html import write_html
from ..report.metrics import summary_rows
from ..stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, Aggregator
from .outcome import DEFAULT_MAX_ERROR_RATE, EXIT_FAILED, error_share, failure_line

__all__ = [
    "DETAILS",
    "METRICS",
    "add_output_options",
    "exit_status",
    "load_metrics",
    "print_summary",
    "statistics",
    "write_outputs",
]

DETAILS = "details.jsonl"
METRICS = "metrics.json"


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.95, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, e.g. 0.95; got {value}")
    return value


def add_output_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("statistics, outputs and exit status")
    group.add_argument(
        "--level", type=_level, default=None, metavar="L", help="interval level (0.95)"
    )
    group.add_argument(
        "--resamples",
        type=non_negative_int,
        default=None,
        metavar="N",
        help=f"bootstrap resamples ({DEFAULT_RESAMPLES}; 0 for none)",
    )
    group.add_argument(
        "--seed", type=int, default=None, metavar="N", help=f"bootstrap seed ({DEFAULT_SEED})"
    )
    group.add_argument(
        "--max-error-rate",
        type=error_share,
        default=DEFAULT_MAX_ERROR_RATE,
        metavar="SHARE",
        help=(
            "exit with status 1 when judge errors are more than this share of the "
            f"comparisons ({DEFAULT_MAX_ERROR_RATE}; 0 allows none, 1 any); a run that "
            "judges no row always exits 1"
        ),
    )
    group.add_argument("--no-plot", action="store_true", help="do not draw dashboard.png")
    group.add_argument("--no-html", action="store_true", help="do not write report.html")
    group.add_argument("--no-parquet", action="store_true", help="do not write details.parquet")


def statistics(args: argparse.Namespace, previous: Mapping[str, Any] | None = None) -> Aggregator:
    """An aggregator with the options' level, resamples and seed (else the previous run's)."""
    old = ((previous or {}).get("intervals") or {}).get("bootstrap") or {}
    old_wilson = ((previous or {}).get("intervals") or {}).get("wilson") or {}
    level = args.level if args.level is not None else old_wilson.get("level", DEFAULT_LEVEL)
    if args.resamples is not None:
        resamples = args.resamples
    elif previous is not None:
        resamples = old.get("resamples") or 0
    else:
        resamples = DEFAULT_RESAMPLES
    seed = args.seed if args.seed is not None else old.get("seed", DEFAULT_SEED)
    return Aggregator(level=level, resamples=resamples or None, seed=seed)


def load_metrics(folder: Path) -> dict[str, Any] | None:
    """The `metrics.json` of an earlier run in `folder`, if there is one."""
    path = folder / METRICS
    if not path.is_file():
        return None
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else None


def write_outputs(
    out: Path, metrics: Mapping[str, Any], args: argparse.Namespace, stderr: TextIO
) -> list[str]:
    """metrics.json, then the outputs read back from details.jsonl; the files written."""
    written = [DETAILS]
    (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    written.append(METRICS)
    details = out / DETAILS
    if not args.no_parquet:
        if write_parquet(read_details(details), out / "details.parquet"):
            written.append("details.parquet")
        else:
            stderr.write(
                "rubric-judge: details.parquet skipped: pyarrow is not installed "
                '(pip install "pytest-rubric-judge[parquet]")\n'
            )
    dashboard: Path | None = None
    if not args.no_plot:
        from ..report.plot import PlotUnavailable, write_dashboard

        try:
            dashboard = write_dashboard(metrics, out / "dashboard.png")
            written.append("dashboard.png")
        except PlotUnavailable as exc:
            stderr.write(f"rubric-judge: dashboard.png skipped: {exc}\n")
    if not args.no_html:
        write_html(out / "report.html", metrics, read_details(details), dashboard=dashboard)
        written.append("report.html")
    return written


def print_summary(metrics: Mapping[str, Any], out: Path, written: list[str]) -> None:
    rows = summary_rows(metrics)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    print(f"wrote {', '.join(written)} to {out}")


def exit_status(metrics: Mapping[str, Any], stderr: TextIO) -> int:
    """0, or 1 with the cause in one line on stderr when the run judged too little."""
    line = failure_line(metrics)
    if line is None:
        return 0
    stderr.write(f"rubric-judge: {line}\n")
    return EXIT_FAILED
