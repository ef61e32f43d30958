"""`rubric-judge merge DIR...`: the shards of a `compare --shard K/N` run as one run.

    rubric-judge merge results/shard-1 results/shard-2 results/shard-3 --out results/all

Reads each folder's `shard.json` and `details.jsonl` and writes what one unsharded
`compare` of the same data with the same settings writes: `details.jsonl` (the shards'
records, byte for byte, in input order), `metrics.json` (the aggregates recomputed over
every row with the shards' statistics settings), `details.parquet`, `dashboard.png` and
`report.html`. Only `run` in `metrics.json` (start, wall time, counters summed over the
shards) and what the report shows of it differ, as they do between two unsharded runs.

It refuses, with one line and before writing anything, folders that are not shards,
shards of different runs (data, judge settings, statistics settings, number of shards),
unfinished shards, a shard given twice, missing shards, and rows that overlap or leave
gaps. Nothing is written into a shard's folder: the outputs are made in a new folder
beside `--out` and renamed into place whole, so `--out` holds either a complete merge or
nothing new. The exit status follows `compare`'s rules over the merged rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..files import fsync_folder, temporary_name
from ..report.details import is_invalid, verdict_of
from ..report.metrics import metrics_of
from ..shards import ShardDir, ShardError, check_set, merged_records, read_manifest
from ..stats import Aggregator
from . import options
from .outcome import Failures, invalid_rows_line
from .outputs import DETAILS, METRICS, exit_status, print_summary, write_outputs
from .pipes import quiet_broken_pipe

__all__ = ["register", "run"]

#: The `run` key that marks the outputs of a merge (which a later merge may replace).
MERGED_FROM = "merged_from"
#: What a merge writes: a folder holding only these, one of them a merge's metrics.json,
#: is an earlier merge that a new one replaces whole.
OUTPUTS = frozenset({DETAILS, METRICS, "details.parquet", "dashboard.png", "report.html"})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "merge",
        help="combine the shard folders of compare --shard K/N into the outputs of one run",
        description=(
            "Combine the --out folders of `compare --shard 1/N` to `--shard N/N` into the "
            "outputs one unsharded compare run writes (metrics.json, details.jsonl, "
            "details.parquet, dashboard.png, report.html). Refuses missing, repeated or "
            "unfinished shards and shards of different runs; never writes into a shard's "
            "folder, and writes --out whole or not at all."
        ),
    )
    parser.add_argument(
        "dirs", nargs="+", metavar="DIR", help="the --out folders of compare --shard K/N"
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help=(
            "folder for the merged outputs, new or empty (or an earlier merge's, which is "
            "replaced); default: 'merged' beside the shard folders"
        ),
    )
    group = parser.add_argument_group("outputs")
    group.add_argument("--no-plot", action="store_true", help="do not draw dashboard.png")
    group.add_argument("--no-html", action="store_true", help="do not write report.html")
    group.add_argument("--no-parquet", action="store_true", help="do not write details.parquet")
    parser.set_defaults(func=quiet_broken_pipe(run))


def run(args: argparse.Namespace) -> int:
    try:
        folders = [read_manifest(Path(name)) for name in args.dirs]
        count = check_set(folders)
    except ShardError as error:
        raise options.CommandError(str(error)) from None
    folders.sort(key=lambda folder: folder.shard.index)
    out = Path(args.out) if args.out else _default_out(folders)
    _check_out(out, folders)
    staging = temporary_name(out)
    staging.mkdir(parents=True)
    try:
        metrics, written = _merge(folders, staging, args)
        _publish(staging, out, folders)
    except ShardError as error:
        raise options.CommandError(str(error)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"merged {count} shards ({metrics['rows']} rows)")
    print_summary(metrics, out, written)
    warning = invalid_rows_line(metrics)
    if warning is not None:
        print(f"rubric-judge: {warning}", file=sys.stderr)
    return exit_status(metrics, sys.stderr)


def _merge(
    folders: Sequence[ShardDir], staging: Path, args: argparse.Namespace
) -> tuple[dict[str, Any], list[str]]:
    """Write the merged outputs into `staging`; the metrics and the files written."""
    statistics = folders[0].manifest.get("statistics") or {}
    aggregator = Aggregator(
        level=statistics["level"], resamples=statistics["resamples"], seed=statistics["seed"]
    )
    failures = Failures()
    with (staging / DETAILS).open("wb") as details:
        for line, record in merged_records(folders):
            details.write(line)
            index = int(record["index"])
            verdict = verdict_of(record)
            if verdict is not None:
                aggregator.add(verdict, index)
            elif is_invalid(record):
                aggregator.add_invalid(index)
                failures.add_invalid(index, record.get("error"))
            else:
                aggregator.add_error(index)
                failures.add_judge_error(index, record.get("error_type"), record.get("error"))
    metrics = metrics_of(
        aggregator.result(),
        run=_run_info(folders),
        interrupted=False,
        max_error_rate=statistics.get("max_error_rate"),
        judge_error_causes=failures.judge_error_causes(),
        invalid_row_causes=failures.invalid_row_causes(),
    )
    written = write_outputs(staging, metrics, args, sys.stderr)
    return metrics, written


def _run_info(folders: Sequence[ShardDir]) -> dict[str, Any]:
    """The unsharded run's `run` fields from the shards': the first start, the longest
    wall time, counters summed, and which folders were merged."""
    runs: list[Mapping[str, Any]] = [folder.manifest.get("run") or {} for folder in folders]
    first = runs[0]
    info: dict[str, Any] = {
        "data": first.get("data"),
        "judge_model": first.get("judge_model"),
        "started": min((str(r["started"]) for r in runs if r.get("started")), default=None),
        "concurrency": max((int(r.get("concurrency") or 0) for r in runs), default=0),
        "wall_s": max((float(r.get("wall_s") or 0.0) for r in runs), default=0.0),
        "complete": True,
    }
    for name in first:
        if name.startswith("judge_") and name != "judge_model":
            info[name] = sum(int(r.get(name) or 0) for r in runs)
    info["shards"] = len(folders)
    info[MERGED_FROM] = [str(folder.path) for folder in folders]
    return info


# -- where the outputs go --------------------------------------------------------------


def _default_out(folders: Sequence[ShardDir]) -> Path:
    parents = [str(folder.path.resolve().parent) for folder in folders]
    return Path(os.path.commonpath(parents)) / "merged"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _is_earlier_merge(out: Path) -> bool:
    """Whether `out` holds the outputs of a merge and nothing else."""
    if any(entry.name not in OUTPUTS or not entry.is_file() for entry in out.iterdir()):
        return False
    try:
        metrics = json.loads((out / METRICS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and MERGED_FROM in (metrics.get("run") or {})


def _check_out(out: Path, folders: Sequence[ShardDir]) -> None:
    """Refuse an --out in a shard's folder or around one, or holding anything but the
    outputs of an earlier merge."""
    target = out.resolve()
    for folder in folders:
        shard = folder.path.resolve()
        if _inside(target, shard) or _inside(shard, target):
            raise options.CommandError(
                f"--out {out} is in or around the shard folder {folder.path}; merge never "
                "writes into a shard's folder: give another --out"
            )
    if not out.exists():
        return
    if not out.is_dir():
        raise options.CommandError(f"--out {out} exists and is not a folder")
    if any(out.iterdir()) and not _is_earlier_merge(out):
        raise options.CommandError(
            f"--out {out} already holds files that are not an earlier merge's outputs; "
            "merge writes only to a new or empty folder: give another --out"
        )


def _publish(staging: Path, out: Path, folders: Sequence[ShardDir]) -> None:
    """Rename the finished outputs into place; an earlier merge there is replaced whole."""
    _check_out(out, folders)  # again: something may have appeared meanwhile
    old: Path | None = None
    if out.exists():
        if any(out.iterdir()):
            old = temporary_name(out)
            os.replace(out, old)
        else:
            out.rmdir()
    os.replace(staging, out)
    fsync_folder(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
