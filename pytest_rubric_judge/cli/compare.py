"""`rubric-judge compare`: checkpoint comparison on a prompt set.

    rubric-judge compare DATA.jsonl --out DIR [--concurrency N] [--max-error-rate S] [judge options]

Reads rows (`prompt`, `response_A` = baseline, `response_B` = candidate, optional `id`
and `reference`) as a stream, judges them through `Judge.compare_many` with a progress bar
on stderr, and writes `metrics.json`, `details.jsonl` (plus `details.parquet` and
`dashboard.png` when their extras are installed) and `report.html` into DIR. Every judge
call goes through the cache, so running the same command again after an interruption
resumes where it stopped. A row that cannot be read is an invalid row, counted apart from
judge errors. A run that judges no row, or whose judge-error share is above
`--max-error-rate`, exits with status 1 and its most common cause on stderr. `rescore`
(module `rescore`) recomputes the outputs offline; `show` (module `show`) prints one row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ..batch import DEFAULT_CONCURRENCY, Comparison, InvalidRow, comparison_from_row
from ..errors import JudgeError
from ..judge import Judge
from ..options import positive_int
from ..report.details import DetailsWriter, record_of
from ..report.metrics import metrics_of
from . import options, rescore
from .outcome import Failures, invalid_rows_line
from .outputs import (
    DETAILS,
    add_output_options,
    exit_status,
    print_summary,
    statistics,
    write_outputs,
)
from .pipes import quiet_broken_pipe
from .progress import Progress as Progress

__all__ = ["Progress", "count_rows", "read_rows", "register", "run"]


def register(subparsers: Any) -> None:
    compare = subparsers.add_parser(
        "compare",
        help="judge response_B (candidate) against response_A (baseline) for every row",
        description=(
            "Judge every row of DATA.jsonl (prompt, response_A = baseline, response_B = "
            "candidate, optional id and reference) in both orders, and write metrics.json, "
            "details.jsonl (details.parquet), dashboard.png and report.html into --out. "
            "Judge answers are cached: rerun the same command to resume an interrupted run. "
            "Exits with status 1 when no row was judged or judge errors exceed "
            "--max-error-rate (the outputs are written all the same), 130 when interrupted."
        ),
    )
    compare.add_argument(
        "data", metavar="DATA.jsonl", help="input rows, one JSON object a line ('-' for stdin)"
    )
    compare.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    compare.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"judge requests in flight ({DEFAULT_CONCURRENCY})",
    )
    compare.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr: auto shows it on a terminal",
    )
    add_output_options(compare)
    options.add_judge_options(compare)
    compare.set_defaults(func=quiet_broken_pipe(run))
    rescore.register(subparsers)


# -- input -----------------------------------------------------------------------------


def count_rows(path: Path) -> int:
    """Non-blank lines of a file (the progress bar's total)."""
    with path.open("rb") as data:
        return sum(1 for line in data if line.strip())


def read_rows(lines: IO[str]) -> Iterator[Comparison | InvalidRow]:
    """The rows of a JSONL stream, numbered from 0 in order; a line that cannot be read as a
    row (not JSON, not an object, a missing or mistyped field) becomes an InvalidRow naming
    its line."""
    index = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield InvalidRow(f"line {number} is not JSON: {exc}")
        else:
            if not isinstance(row, dict):
                yield InvalidRow(f"line {number} is not a JSON object")
            else:
                try:
                    yield comparison_from_row(index, row)
                except ValueError as exc:
                    raw_id = row.get("id")
                    yield InvalidRow(
                        f"line {number}: {exc}", None if raw_id is None else str(raw_id)
                    )
        index += 1


# -- compare ---------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.data == "-":
        source: IO[str] = sys.stdin
        total: int | None = None
    else:
        path = Path(args.data)
        if not path.is_file():
            raise options.CommandError(f"input file {path} does not exist")
        source = path.open(encoding="utf-8")
        total = count_rows(path)
    if out.exists() and not out.is_dir():
        raise options.CommandError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    enabled = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    progress = Progress(total, sys.stderr, enabled=enabled)
    aggregator = statistics(args)
    failures = Failures()
    writer = DetailsWriter(out / DETAILS)
    judge = options.judge_from_args(args)
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    interrupted = False
    try:
        with judge, source:
            for result in judge.compare_many(read_rows(source), concurrency=args.concurrency):
                if result.verdict is not None:
                    aggregator.add(result.verdict, result.index)
                elif result.invalid:
                    aggregator.add_invalid(result.index)
                    failures.add_invalid(result.index, result.error)
                else:
                    aggregator.add_error(result.index)
                    failures.add_judge_error(result.index, result.error_type, result.error)
                writer.write(
                    record_of(
                        result.index,
                        result.id,
                        result.verdict,
                        prompt=result.prompt,
                        response_a=result.response_a,
                        response_b=result.response_b,
                        reference=result.reference,
                        error_type=result.error_type,
                        error=result.error,
                    )
                )
                progress.update(ok=result.verdict is not None, invalid=result.invalid)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        writer.close()
        progress.finish()
    stats = judge.stats.as_dict()
    run_info = {
        "data": str(args.data),
        "judge_model": _model_name(judge),
        "started": started_at,
        "concurrency": args.concurrency,
        "wall_s": round(time.monotonic() - started, 3),
        "complete": not interrupted,
        **{f"judge_{name}": value for name, value in stats.items()},
    }
    metrics = metrics_of(
        aggregator.result(),
        run=run_info,
        interrupted=interrupted,
        max_error_rate=args.max_error_rate,
        judge_error_causes=failures.judge_error_causes(),
        invalid_row_causes=failures.invalid_row_causes(),
    )
    written = write_outputs(out, metrics, args, sys.stderr)
    print_summary(metrics, out, written)
    _print_totals(stats, interrupted=interrupted)
    if interrupted:
        print(
            "rubric-judge: interrupted; the outputs cover the rows finished so far. Run the "
            "same command again to resume: finished judge calls come from the cache.",
            file=sys.stderr,
        )
        return 130
    warning = invalid_rows_line(metrics)
    if warning is not None:
        print(f"rubric-judge: {warning}", file=sys.stderr)
    return exit_status(metrics, sys.stderr)


def _print_totals(stats: Mapping[str, int], *, interrupted: bool = False) -> None:
    tokens = stats.get("prompt_tokens", 0) + stats.get("completion_tokens", 0)
    # Requests still in flight when the run was interrupted never finished: not counted.
    what = "judge requests answered or failed" if interrupted else "judge requests"
    print(
        f"{stats.get('requests', 0)} {what} ({stats.get('retries', 0)} retries, "
        f"{stats.get('repairs', 0)} repairs), {stats.get('cache_hits', 0)} cache hits, "
        f"{tokens} tokens"
    )


def _model_name(judge: Judge) -> str:
    try:
        return judge.model
    except JudgeError:
        return ""
