"""`rubric-judge diff OLD.json NEW.json`: what changed between two runs' JSON reports.

    rubric-judge diff OLD.json NEW.json [--format text|markdown|json] [--fail-on-regression]

Reads two `--judge-report` files and prints, per judged assertion (matched by test id),
preference flips, the change of margin and of each criterion's weighted scores, the
assertions and tests added and removed, judge errors, and the change in the candidate's
win rate with a 95% Newcombe interval (`rundiff`, docs/diff.md). Exit status: 0; 1 with
`--fail-on-regression` when a regression was found; 2 for a usage error, among them a
report that cannot be read (one line naming the file and the problem).
"""

from __future__ import annotations

import argparse
from typing import Any

from . import options
from .pipes import quiet_broken_pipe

__all__ = ["FORMATS", "register", "run"]

FORMATS = ("text", "markdown", "json")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="compare two runs' --judge-report JSON files",
        description=(
            "Compare two JSON reports of the pytest plugin (--judge-report): per judged "
            "assertion, matched by test id, the outcome, preference flips, the margin and "
            "each criterion's weighted scores; assertions and tests added and removed; judge "
            "errors; and the change in the candidate's win rate (preferred / judged) with a "
            "95% Newcombe hybrid score interval. Exit status 1 with --fail-on-regression "
            "when a judged assertion went from pass to fail or a consistent preference "
            "moved against the candidate; 2 when a report cannot be read."
        ),
    )
    parser.add_argument("old", metavar="OLD.json", help="the earlier run's --judge-report")
    parser.add_argument("new", metavar="NEW.json", help="the later run's --judge-report")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text for a terminal (default), markdown for a pull-request comment, or json",
    )
    parser.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit with status 1 when the diff finds a regression",
    )
    parser.set_defaults(func=run)


@quiet_broken_pipe
def run(args: argparse.Namespace) -> int:
    from ..report.diff import diff_json, diff_lines, diff_markdown
    from ..rundiff import ReportError, diff_reports, read_report

    try:
        old, new = read_report(args.old), read_report(args.new)
    except ReportError as error:
        raise options.CommandError(str(error)) from None
    diff = diff_reports(old, new, old_name=args.old, new_name=args.new)
    if args.format == "json":
        print(diff_json(diff), end="")
    elif args.format == "markdown":
        print(diff_markdown(diff), end="")
    else:
        print("\n".join(diff_lines(diff)))
    return 1 if args.fail_on_regression and diff.regressions else 0
