"""`rubric-judge compare`: checkpoint comparison on a prompt set.

    rubric-judge compare DATA.jsonl --out DIR [--concurrency N] [--max-error-rate S] [judge options]

Reads rows (`prompt`, `response_A` = baseline, `response_B` = candidate, optional `id`,
`reference` and `context`; the prompt may be a list of chat messages, the responses lists
of assistant and tool messages, the context a list of retrieved documents) as a stream,
judges them through `Judge.compare_many` with a progress bar on stderr, and writes
`metrics.json`, `details.jsonl` (plus `details.parquet` and `dashboard.png` when their
extras are installed) and `report.html` into DIR. Every judge call goes through the cache,
so running the same command again after an interruption resumes where it stopped. A row
that cannot be read is an invalid row, counted apart from judge errors. A run that judges
no row, or whose judge-error share is above `--max-error-rate`, exits with status 1 and
its most common cause on stderr. `rescore` (module `rescore`) recomputes the outputs
offline; `show` (module `show`) prints one row.

With `--shard K/N` only the rows of shard K of N are judged (`shards.py` says which) and
DIR also gets `shard.json`, the manifest `rubric-judge merge` (module `merge`) reads to
combine the shards into the outputs of one unsharded run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ..batch import DEFAULT_CONCURRENCY, Comparison, InvalidRow, comparison_from_row
from ..callspec import sendable
from ..errors import JudgeError
from ..judge import Judge
from ..options import positive_int
from ..report.details import DetailsWriter, record_of
from ..report.metrics import metrics_of
from ..shards import (
    FORMAT,
    MANIFEST,
    RULE,
    Shard,
    ShardError,
    file_sha256,
    judge_settings,
    parse_shard,
    read_manifest,
    write_manifest,
)
from ..stats import Aggregator
from . import options, rescore
from .outcome import Failures, invalid_rows_line
from .outputs import (
    DETAILS,
    METRICS,
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
            "candidate, optional id, reference and context) in both orders, and write "
            "metrics.json, "
            "details.jsonl (details.parquet), dashboard.png and report.html into --out. The "
            "prompt may be a list of chat messages, the responses lists of assistant and tool "
            "messages (agent trajectories), the context a list of retrieved documents. "
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
    compare.add_argument(
        "--shard",
        default=None,
        metavar="K/N",
        help=(
            "judge only shard K of N (K from 1, e.g. 2/8; rows go by a hash of their prompt), "
            "writing shard.json beside the outputs for `rubric-judge merge`; auto reads a "
            "Slurm array task"
        ),
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


def read_rows(lines: Iterable[str]) -> Iterator[Comparison | InvalidRow]:
    """The rows of a JSONL stream, numbered from 0 in order; a line that cannot be read as a
    row (not JSON, not an object, a missing or mistyped field, a message the judge cannot
    read) becomes an InvalidRow naming its line and field."""
    index = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield InvalidRow(f"line {number} is not JSON: {exc}", index=index)
        except RecursionError:
            yield InvalidRow(
                f"line {number} is not JSON this reader can take: nested too deeply", index=index
            )
        else:
            if not isinstance(row, dict):
                yield InvalidRow(f"line {number} is not a JSON object", index=index)
            else:
                try:
                    yield comparison_from_row(index, row)
                except ValueError as exc:
                    raw_id = row.get("id")
                    row_id = None if raw_id is None else sendable(str(raw_id))
                    yield InvalidRow(f"line {number}: {exc}", row_id, index)
        index += 1


# -- compare ---------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    shard: Shard | None = None
    if getattr(args, "shard", None) is not None:
        try:
            shard = parse_shard(args.shard)
        except ShardError as error:
            raise options.CommandError(str(error)) from None
    path: Path | None = None
    if args.data != "-":
        path = Path(args.data)
        if not path.is_file():
            raise options.CommandError(f"input file {path} does not exist")
    if out.exists() and not out.is_dir():
        raise options.CommandError(f"--out {out} exists and is not a folder")
    sharding = None if shard is None else _Sharding(shard, path)
    _check_out(out, sharding)
    enabled = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    judge = options.judge_from_args(args)
    # A shard holds the rows of its prompts as the judge reads them (cut to this limit).
    max_chars = judge.config.max_input_chars
    try:
        if path is None:
            source: IO[str] = sys.stdin
            total: int | None = None
        else:
            total = (
                count_rows(path) if sharding is None else sharding.count(path, enabled, max_chars)
            )
            source = path.open(encoding="utf-8")
    except BaseException:
        judge.close()
        raise
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(total, sys.stderr, enabled=enabled)
    aggregator = statistics(args)
    failures = Failures()
    writer = DetailsWriter(out / DETAILS)
    if sharding is not None:
        sharding.settings(judge_settings(judge.config, judge.config.model), aggregator, args)
        write_manifest(out, sharding.manifest(args.data, complete=False))
    rows = read_rows(source) if sharding is None else sharding.rows(source, max_chars)
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    interrupted = False
    try:
        with judge, source:
            for result in judge.compare_many(rows, concurrency=args.concurrency):
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
    if sharding is not None:
        run_info["shard"] = str(sharding.shard)
    metrics = metrics_of(
        aggregator.result(),
        run=run_info,
        interrupted=interrupted,
        max_error_rate=args.max_error_rate,
        judge_error_causes=failures.judge_error_causes(),
        invalid_row_causes=failures.invalid_row_causes(),
    )
    written = write_outputs(out, metrics, args, sys.stderr)
    if sharding is not None:
        sharding.settings(judge_settings(judge.config, _model_name(judge)), aggregator, args)
        write_manifest(out, sharding.manifest(args.data, complete=not interrupted, run=run_info))
        written.append(MANIFEST)
    print_summary(metrics, out, written)
    _print_totals(stats, interrupted=interrupted)
    if stats.get("requests", 0):
        print(f"judge structured output: {judge.structured_summary}")
    if interrupted:
        print(
            "rubric-judge: interrupted; the outputs cover the rows finished so far. Run the "
            "same command again to resume: finished judge calls come from the cache.",
            file=sys.stderr,
        )
        return 130
    if sharding is not None and sharding.selected == 0:
        print(
            f"rubric-judge: shard {sharding.shard} holds none of the {sharding.seen} rows "
            "(rows go to shards by a hash of their prompt: with few distinct prompts some "
            "shards get none); nothing to judge",
            file=sys.stderr,
        )
        return 0
    warning = invalid_rows_line(metrics)
    if warning is not None:
        print(f"rubric-judge: {warning}", file=sys.stderr)
    return exit_status(metrics, sys.stderr)


# -- sharding --------------------------------------------------------------------------


def _holds(shard: Shard, row: Comparison | InvalidRow, max_chars: int) -> bool:
    """Whether the row is the shard's, by the prompt and reference its details record will
    hold (`shards.shard_of_record`): a list of messages, a context or a trajectory's note
    as the judge reads them (`Comparison.texts`), which is also the prompt its rubric is
    asked for; text UTF-8 cannot carry as U+FFFD."""
    if isinstance(row, InvalidRow):
        assert row.index is not None  # read_rows numbers every row
        return shard.holds(None, None, row.index)
    prompt = row.texts(max_chars)[0]
    return shard.holds(prompt, sendable(row.reference), row.index)


class _Sharding:
    """One shard's selection of the rows, with what its manifest says of the run."""

    def __init__(self, shard: Shard, path: Path | None) -> None:
        self.shard = shard
        #: The data's SHA-256: of the file's bytes, or of the text read from stdin.
        self.sha256 = None if path is None else file_sha256(path)
        self._digest = hashlib.sha256() if path is None else None
        self.seen = 0
        self.selected = 0
        self._judge: dict[str, Any] = {}
        self._statistics: dict[str, Any] = {}

    def count(self, path: Path, wanted: bool, max_chars: int) -> int | None:
        """The shard's rows in the file (the progress bar's total), when a bar is shown."""
        if not wanted:
            return None
        with path.open(encoding="utf-8") as lines:
            return sum(_holds(self.shard, row, max_chars) for row in read_rows(lines))

    def rows(self, source: Iterable[str], max_chars: int) -> Iterator[Comparison | InvalidRow]:
        """The shard's rows, numbered as in the whole input; counts every row read."""
        for row in read_rows(self._lines(source)):
            self.seen += 1
            if _holds(self.shard, row, max_chars):
                self.selected += 1
                yield row
        if self._digest is not None:
            self.sha256 = self._digest.hexdigest()

    def _lines(self, source: Iterable[str]) -> Iterator[str]:
        for line in source:
            if self._digest is not None:
                self._digest.update(line.encode("utf-8", "surrogateescape"))
            yield line

    def settings(
        self, judge: Mapping[str, Any], aggregator: Aggregator, args: argparse.Namespace
    ) -> None:
        self._judge = dict(judge)
        self._statistics = {
            "level": aggregator.level,
            "resamples": aggregator.resamples,
            "seed": aggregator.seed,
            "max_error_rate": args.max_error_rate,
        }

    def manifest(
        self, data: str, *, complete: bool, run: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "shard": self.shard.index,
            "shards": self.shard.count,
            "rule": RULE,
            "complete": complete,
            "data": {
                "path": data,
                "sha256": self.sha256,
                "rows": self.seen if complete else None,
            },
            "rows": self.selected if complete else None,
            "judge": self._judge,
            "statistics": self._statistics,
            "run": dict(run) if run is not None else None,
        }


def _check_out(out: Path, sharding: _Sharding | None) -> None:
    """Refuse an --out that holds another shard (or, for a shard, an unsharded run): a
    shard's folder is only ever written by the same shard of the same data."""
    if not (out / MANIFEST).exists():
        if sharding is not None and ((out / METRICS).exists() or (out / DETAILS).exists()):
            raise options.CommandError(
                f"--out {out} holds the outputs of an unsharded run; give each shard a "
                "folder of its own"
            )
        return
    if sharding is None:
        raise options.CommandError(
            f"--out {out} is a shard's folder ({MANIFEST}); write an unsharded run to "
            "another folder, or pass that shard's --shard to resume it"
        )
    try:
        existing = read_manifest(out)
    except ShardError as error:
        raise options.CommandError(str(error)) from None
    old_sha = (existing.manifest.get("data") or {}).get("sha256")
    if existing.shard != sharding.shard or existing.manifest.get("rule") != RULE:
        raise options.CommandError(
            f"--out {out} holds shard {existing.shard}, not {sharding.shard}; give each "
            "shard a folder of its own"
        )
    if old_sha is not None and sharding.sha256 is not None and old_sha != sharding.sha256:
        raise options.CommandError(
            f"--out {out} holds shard {existing.shard} of other data (SHA-256 "
            f"{old_sha[:12]}...); give each run its own folders"
        )


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
