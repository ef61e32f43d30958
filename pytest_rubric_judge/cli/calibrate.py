"""`rubric-judge calibrate`: measure a judge against labelled preferences.

    rubric-judge calibrate GOLD.jsonl --out DIR [--format auto] [--concurrency N]
                           [--format-probe N] [judge options]

Reads a gold file in this project's format, JudgeBench's or RewardBench's (detected from the
fields, or chosen with `--format`; prompts may be lists of chat messages, responses lists of
assistant and tool messages, with an optional `context`), judges every pair in both
orders, then the format probe (`--format-probe` gold rows' plain responses against the same
words as Markdown), and writes `calibration.json` and (with matplotlib) `reliability.png`
into DIR, with a readable summary on stdout (kappa beside raw agreement, and any
self-preference warning). When no pair could be judged it exits with status 1 and names the
most common cause in one line on stderr. See
docs/calibration.md for what each metric means.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..batch import DEFAULT_CONCURRENCY
from ..calibration import (
    DEFAULT_FORMAT_PROBE,
    CalibrationReport,
    GoldFormatError,
    GoldRow,
    compute_report,
    judge_gold,
    most_common_error,
    plot_reliability,
    read_gold,
    summary_text,
    write_json,
)
from ..format_probe import FormatProbe, probe_pairs, run_format_probe
from ..models import Verdict
from ..options import non_negative_int, positive_int
from . import options
from .pipes import quiet_broken_pipe
from .progress import Progress

CALIBRATION = "calibration.json"
RELIABILITY = "reliability.png"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="measure the judge's agreement, position bias and calibration on labelled pairs",
        description=(
            "Judge every labelled pair of GOLD.jsonl in both orders and write "
            "calibration.json (and reliability.png with the plot extra) into --out. "
            "Formats: project (prompt, response_A, response_B, label), judgebench "
            "(question, response_A, response_B, label), rewardbench (prompt, chosen, rejected). "
            "In any format the prompt may be a list of chat messages, the responses lists of "
            "assistant and tool messages (agent trajectories), and a row may have context, a "
            "list of retrieved documents."
        ),
    )
    parser.add_argument("gold", metavar="GOLD.jsonl", help="labelled pairs, one JSON object a line")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    parser.add_argument(
        "--format",
        choices=("auto", "project", "judgebench", "rewardbench"),
        default="auto",
        help="input format (auto: detected from the first row's fields)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"judge requests in flight ({DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--format-probe",
        type=non_negative_int,
        default=DEFAULT_FORMAT_PROBE,
        metavar="N",
        help=(
            "judge N gold rows' plain responses against the same words as Markdown, to "
            f"measure a preference for formatting ({DEFAULT_FORMAT_PROBE}; 0 skips it)"
        ),
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr: auto shows it on a terminal",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw reliability.png")
    options.add_judge_options(parser)
    parser.set_defaults(func=quiet_broken_pipe(run))


def run(args: argparse.Namespace) -> int:
    path = Path(args.gold)
    if not path.is_file():
        raise options.CommandError(f"gold file {path} does not exist")
    try:
        gold = read_gold(path, args.format)
    except GoldFormatError as error:
        raise options.CommandError(f"{path}: {error}") from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise options.CommandError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    enabled = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    probes = len(probe_pairs(gold, args.format_probe))
    progress = Progress(len(gold) + probes, sys.stderr, enabled=enabled)
    pairs: list[tuple[GoldRow, Verdict]] = []
    errors: list[dict[str, str]] = []
    probe: FormatProbe | None = None
    judge = options.judge_from_args(args)
    with judge:
        for row, verdict, message in judge_gold(judge, gold, concurrency=args.concurrency):
            progress.update(ok=verdict is not None)
            if verdict is None:
                errors.append({"id": row.id, "error": message or ""})
            else:
                pairs.append((row, verdict))
        if args.format_probe and pairs:  # no probe when the judge answered nothing
            probe = run_format_probe(
                judge,
                gold,
                args.format_probe,
                concurrency=args.concurrency,
                on_result=lambda ok: progress.update(ok=ok),
            )
    progress.finish()
    pairs.sort(key=lambda item: item[0].index)
    report: CalibrationReport = compute_report(pairs, errors, rows=len(gold), format_probe=probe)
    write_json(report, out / CALIBRATION)
    print(summary_text(report))
    print(f"wrote {out / CALIBRATION}")
    if not args.no_plot:
        from ..report.plot import PlotUnavailable

        try:
            plot_reliability(report, out / RELIABILITY)
            print(f"wrote {out / RELIABILITY}")
        except PlotUnavailable as exc:
            print(f"rubric-judge: {exc}; skipped {RELIABILITY}", file=sys.stderr)
    if not report.judged:
        cause = most_common_error(report) or "the gold file has no rows"
        print(f"rubric-judge: no pair was judged; the cause: {cause}", file=sys.stderr)
        return 1
    return 0
