"""`rubric-judge doctor`: check a judge endpoint before a CI job gates on it.

    rubric-judge doctor --judge-url URL [--judge-model NAME] [--json] [--quiet] [judge options]

Runs `doctor.diagnose` with a throwaway cache in `refresh` mode (every call reaches the
server, nothing is written to the project's cache) and one sample per order, prints one
line per step on stderr as it goes, then the report on stdout: the models listed, the
context length, the structured-output dialect, latency and tokens of one rubric call and
one pass, the position-bias pairs, and the options it recommends. Exit status 0 when the
judge produced at least one verdict, 1 when it produced none (unreachable, every call a
judge error), 2 for a usage error. Text the server sent (model names, error messages) is
printed with control characters escaped.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from typing import TYPE_CHECKING, Any

from ..report.escape import escape_control
from . import options
from .pipes import quiet_broken_pipe

if TYPE_CHECKING:
    from ..doctor import DoctorReport, Measure, PairOutcome

__all__ = ["register", "report_lines", "run"]

LABEL_WIDTH = 19


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check a judge endpoint: models, dialect, latency, position bias",
        description=(
            "Check the judge at --judge-url before gating a CI run on it: list its models "
            "(GET /v1/models) and context length, make one rubric call, judge a few built-in "
            "pairs with a plainly better response in both orders (position bias), and "
            "recommend options (--judge-model, --judge-structured-output, --judge-timeout, "
            "--judge-max-tokens). Every call reaches the judge: a throwaway cache is used "
            "and the cache options are ignored. Exits with status 0 when the judge produced "
            "a verdict, 1 when it produced none, 2 for a usage error."
        ),
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report as one JSON object on stdout"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines on stderr, only the report"
    )
    options.add_judge_options(parser)
    parser.set_defaults(func=quiet_broken_pipe(run))


def run(args: argparse.Namespace) -> int:
    from ..doctor import diagnose

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"rubric-judge doctor: {line}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="rubric-judge-doctor-") as cache:
        judge = options.judge_from_args(args, cache_dir=cache, cache_mode="refresh", samples=1)
        with judge:
            if judge.client is None:
                raise options.CommandError(
                    "no judge to check: give --judge-url (or set RUBRIC_JUDGE_BASE_URL)"
                )
            report = diagnose(judge, progress=progress)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        print("\n".join(report_lines(report)))
    if report.problem is not None:
        print(f"rubric-judge doctor: {escape_control(report.problem)}", file=sys.stderr)
        return 1
    return 0


def _row(label: str, value: str) -> str:
    return f"  {label + ':':<{LABEL_WIDTH}} {value}"


def _measure(measure: Measure | None, error: str | None = None) -> str:
    if measure is None:
        return "not measured"
    text = (
        f"{measure.seconds:.2f} s, {measure.prompt_tokens:,} prompt + "
        f"{measure.completion_tokens:,} completion tokens, "
        f"{measure.requests} request{'s' if measure.requests != 1 else ''}"
    )
    return f"{text}; failed: {escape_control(error)}" if error else text


def _pair_line(pair: PairOutcome) -> str:
    name = f"{pair.name}:"
    if pair.error:
        return f"    {name:<9} judge error: {escape_control(pair.error)}"
    if pair.flipped:
        order = "FLIPPED with the order"
    else:
        order = "consistent" if pair.consistent else "INCONSISTENT"
    pick = "picked the better one" if pair.picked_better else f"the better one was {pair.better}"
    return (
        f"    {name:<9} {pair.preference} (forward {pair.forward}, reversed {pair.reversed}), "
        f"{order}; {pick}"
    )


def report_lines(report: DoctorReport) -> list[str]:
    """The report as a terminal shows it: findings, recommended options, warnings."""
    e = escape_control
    lines = [f"rubric-judge doctor: {e(report.url)}"]
    if report.models is not None:
        listed = ", ".join(e(m) for m in report.models) or "none"
        models = f"{listed} (judging with {e(report.model)})" if report.model else listed
    else:
        models = f"could not be read: {e(report.models_error)}"
        if report.model:
            models += f" (judging with {e(report.model)})"
    lines.append(_row("models", models))
    if report.fatal is not None:
        return lines
    if report.context_length is not None:
        context = f"{report.context_length:,} tokens ({report.context_source})"
    else:
        context = "not reported"
    lines.append(_row("context length", context))
    dialect = e(report.dialect)
    if report.dialect == "unprobed":
        dialect += " (no constrained answer came back)"
    if "refused:" in report.dialect_summary:
        dialect += " (" + e(report.dialect_summary.split("; ", 1)[1]) + ")"
    if report.constraint_ignored:
        dialect += "; accepted, but no answer was a JSON object: the server ignores the constraint"
    lines.append(_row("structured output", dialect))
    lines.append(_row("rubric call", _measure(report.rubric, report.rubric_error)))
    lines.append(_row("one pass", _measure(report.one_pass)))
    judged = report.verdicts
    if judged:
        lines.append(
            _row(
                "position bias",
                f"{len(report.pairs)} pairs, each judged in both orders: {report.flips} of "
                f"{judged} flipped with the order, {report.inconsistent} inconsistent; "
                f"{report.picked_better} of {judged} picked the better response",
            )
        )
    elif report.pairs:
        lines.append(_row("position bias", "not measured: no pair got a verdict"))
    else:
        lines.append(_row("position bias", "not tested: the rubric call failed"))
    lines.extend(_pair_line(pair) for pair in report.pairs)
    stats = report.stats
    tokens = stats.get("prompt_tokens", 0) + stats.get("completion_tokens", 0)
    lines.append(
        _row(
            "requests",
            f"{stats.get('requests', 0)} ({stats.get('retries', 0)} retries, "
            f"{stats.get('repairs', 0)} repairs, {stats.get('judge_errors', 0)} judge errors), "
            f"{tokens:,} tokens; slowest answer "
            + (f"{report.slowest_s:.2f} s" if report.slowest_s is not None else "n/a"),
        )
    )
    result = f"OK, {report.verdicts} of {len(report.pairs)} verdicts" if report.ok else "FAILED"
    lines.append(_row("result", result))
    if report.recommendations:
        width = max(len(option) for option, _ in report.recommendations)
        lines += ["", "recommended options:"]
        lines += [f"  {e(o):<{width}}  # {e(why)}" for o, why in report.recommendations]
        together = " ".join(e(option) for option, _ in report.recommendations)
        lines.append(f"  all together: --judge-url={e(report.url)} {together}")
    if report.warnings:
        lines += ["", "warnings:"]
        lines += [f"  - {e(warning)}" for warning in report.warnings]
    return lines
