"""`rubric-judge show DIR --row N`: print one comparison of a `compare` run.

Everything printed from the details file (ids, justifications, criterion names and
descriptions, error messages) went through a judge or came from the model under test, so
each field is printed with its control, bidirectional and lone-surrogate characters
escaped (`report.escape`): a stored answer cannot clear the screen, overwrite a line,
reorder what is shown, or add lines that look like the command's own.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..options import non_negative_int
from ..report.escape import escape_control
from . import options

DETAILS = "details.jsonl"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "show",
        help="print one comparison of a compare run",
        description=(
            "Print one row of a compare run's details.jsonl: preference, wins, weighted "
            "scores and margin, both passes' overall justifications, and each criterion "
            "with both scores, weight, type, description and justifications; a judge error "
            "or an input row that could not be read is named as such. Text from the judge "
            "or the model is printed with control characters escaped."
        ),
    )
    parser.add_argument("dir", metavar="DIR", help="the --out folder of a compare run")
    parser.add_argument(
        "--row", type=non_negative_int, required=True, metavar="N", help="row index (from 0)"
    )
    parser.set_defaults(func=run)


def _score(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape_control(value)


def _number(value: object, spec: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return escape_control(value)


def show_lines(record: Mapping[str, Any]) -> list[str]:
    """One comparison, the way the article prints a row of its results; every field escaped."""
    from ..report.details import is_invalid

    e = escape_control
    lines = ["=" * 80, f"Row {e(record.get('index'))} (id {e(record.get('id'))}):"]
    if is_invalid(record):
        lines.append(f"  Invalid input row (not judged): {e(record.get('error'))}")
        return lines
    if record.get("status") != "ok":
        lines.append(f"  Judge error: {e(record.get('error_type'))}: {e(record.get('error'))}")
        return lines
    forward, reversed_ = record["forward"], record["reversed"]
    consistency = (
        "consistent in both orders"
        if record["consistent"]
        else f"position flip: forward {e(forward['preference'])}, "
        f"reversed {e(reversed_['preference'])}"
    )
    lines += [
        f"  Preference: ['{e(record['preference'])}'] ({consistency})",
        f"  A wins: {_number(record['a_wins'], '.1f')}",
        f"  B wins: {_number(record['b_wins'], '.1f')}",
        f"  Weighted A: {_number(record['weighted_score_A'], '.3f')}",
        f"  Weighted B: {_number(record['weighted_score_B'], '.3f')}",
        f"  Margin: {_number(record['score_margin'], '+.3f')}",
        "",
        "  Overall Justification:",
        f"    forward pass (A shown first): {e(forward['overall_justification'])}",
        f"    reversed pass (B shown first, mapped back): {e(reversed_['overall_justification'])}",
    ]
    if record.get("rescored_with"):
        rescored = json.dumps(record["rescored_with"], sort_keys=True)
        lines.append(f"  Rescored with: {e(rescored)}")
    lines += ["", "  Criteria:"]
    for criterion in record["criteria"]:
        forward_pair = (
            f"Score A: {_score(criterion['forward_score_A'])}, "
            f"Score B: {_score(criterion['forward_score_B'])}"
        )
        reversed_pair = (
            f"A {_score(criterion['reversed_score_A'])}, B {_score(criterion['reversed_score_B'])}"
        )
        lines += [
            "",
            f"    {e(criterion['name'])}:",
            f"      {forward_pair} (reversed pass: {reversed_pair})",
            f"      Weight: {_number(criterion['weight'], '.3g')}, Type: {e(criterion['type'])}",
            f"      Description: {e(criterion['description'])}",
            f"      Justification A: {e(criterion['forward_justification_A'])}",
            f"      Justification B: {e(criterion['forward_justification_B'])}",
        ]
    return lines


def run(args: argparse.Namespace) -> int:
    from ..report.details import read_details

    details = Path(args.dir) / DETAILS
    if not details.is_file():
        raise options.CommandError(
            f"{details} does not exist; give the --out folder of a compare run"
        )
    last = -1
    for record in read_details(details):
        last = max(last, int(record["index"]))
        if record["index"] == args.row:
            print("\n".join(show_lines(record)))
            return 0
    raise options.CommandError(f"no row {args.row} in {details} (rows 0 to {last})")
