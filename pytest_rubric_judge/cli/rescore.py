"""`rubric-judge rescore DIR`: the outputs of a compare run with other weights, offline.

    rubric-judge rescore DIR --weights accuracy=0.6,clarity=0.4 --drop tone --tie-band 0.05

Every verdict is rebuilt from the passes stored in `DIR/details.jsonl`, reweighted or
without some criteria, and its preference derived from the margin: A>B above the tie band,
B>A below minus the band, else A=B. No judge request is made. The outputs go to
`DIR/rescored` (or `--out`), with the same statistics and exit status as `compare`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..batch import INVALID_ROW
from ..report.details import DetailsWriter, read_details, record_of, verdict_of
from ..report.metrics import metrics_of
from . import options
from .outcome import Failures
from .outputs import (
    DETAILS,
    add_output_options,
    exit_status,
    load_metrics,
    print_summary,
    statistics,
    write_outputs,
)
from .pipes import quiet_broken_pipe

__all__ = ["register", "run"]


def _weights(text: str) -> dict[str, float]:
    """`accuracy=0.6,clarity=0.4` as a mapping of positive weights."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not name.strip() or not weight > 0:
            raise argparse.ArgumentTypeError(
                f"expected NAME=WEIGHT pairs with positive weights, such as "
                f"accuracy=0.6,clarity=0.4; got {part!r}"
            )
        weights[name.strip()] = weight
    return weights


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _tie_band(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.05, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rescore",
        help="recompute the outputs of a compare run with other weights, without the judge",
        description=(
            "Recompute every output of a compare run from its stored passes: reweight or "
            "drop criteria, and derive each preference from the margin (A>B above the tie "
            "band, B>A below minus the band, else A=B). Makes no judge request."
        ),
    )
    parser.add_argument("dir", metavar="DIR", help="the --out folder of a compare run")
    parser.add_argument(
        "--weights",
        type=_weights,
        default={},
        metavar="NAME=W,...",
        help=(
            "new weights for criteria by name, e.g. accuracy=0.6,clarity=0.4; a criterion "
            "not named keeps its weight (weights are normalized per rubric)"
        ),
    )
    parser.add_argument(
        "--drop",
        type=_names,
        default=[],
        metavar="NAME,...",
        help="criteria to leave out, e.g. tone,length",
    )
    parser.add_argument(
        "--tie-band",
        type=_tie_band,
        default=0.05,
        metavar="B",
        help=(
            "a margin within +-B of 0 is a tie (0.05); weighted scores are in [0, 1], "
            "so B is in [0, 1)"
        ),
    )
    parser.add_argument(
        "--out", default=None, metavar="DIR2", help="where to write (default: DIR/rescored)"
    )
    add_output_options(parser)
    parser.set_defaults(func=quiet_broken_pipe(run))


def run(args: argparse.Namespace) -> int:
    source = Path(args.dir)
    details = source / DETAILS
    if not details.is_file():
        raise options.CommandError(
            f"{details} does not exist; give the --out folder of a compare run"
        )
    out = Path(args.out) if args.out else source / "rescored"
    if out.resolve() == source.resolve():
        raise options.CommandError("rescore would overwrite its own input; give another --out")
    asked = set(args.weights) | set(args.drop)
    seen: set[str] = set()
    for record in read_details(details):
        seen.update(c["name"] for c in record.get("criteria") or ())
    unknown = sorted(asked - seen)
    if unknown:
        raise options.CommandError(
            f"no comparison has the criteria {unknown}; the rubrics have {sorted(seen)}"
        )
    out.mkdir(parents=True, exist_ok=True)
    previous = load_metrics(source)
    aggregator = statistics(args, previous)
    failures = Failures()
    writer = DetailsWriter(out / DETAILS)
    try:
        for record in read_details(details):
            index = int(record["index"])
            verdict = verdict_of(record)
            if verdict is None:
                if record.get("error_type") == INVALID_ROW:
                    aggregator.add_invalid(index)
                    failures.add_invalid(index, record.get("error"))
                else:
                    aggregator.add_error(index)
                    failures.add_judge_error(index, record.get("error_type"), record.get("error"))
                writer.write(record)
                continue
            names = set(verdict.rubric.names)
            weights = {k: v for k, v in args.weights.items() if k in names}
            drop = [name for name in args.drop if name in names]
            try:
                rescored = verdict.rescored(weights=weights, drop=drop, tie_band=args.tie_band)
            except ValueError as exc:
                aggregator.add_error(index)
                failures.add_judge_error(index, "RescoreError", str(exc))
                writer.write(
                    record_of(
                        index,
                        record["id"],
                        None,
                        prompt=verdict.prompt,
                        response_a=verdict.response_a,
                        response_b=verdict.response_b,
                        reference=verdict.reference,
                        error_type="RescoreError",
                        error=str(exc),
                    )
                )
                continue
            aggregator.add(rescored, index)
            writer.write(record_of(index, record["id"], rescored))
    finally:
        writer.close()
    run_info: dict[str, Any] = {
        "rescored_from": str(source),
        "weights": args.weights,
        "drop": args.drop,
        "tie_band": args.tie_band,
        "judge_requests": 0,
    }
    if previous is not None and isinstance(previous.get("run"), dict):
        for key in ("data", "judge_model", "started"):
            if key in previous["run"]:
                run_info[key] = previous["run"][key]
    metrics = metrics_of(
        aggregator.result(),
        run=run_info,
        interrupted=previous is not None and previous.get("complete") is False,
        max_error_rate=args.max_error_rate,
        judge_error_causes=failures.judge_error_causes(),
        invalid_row_causes=failures.invalid_row_causes(),
    )
    written = write_outputs(out, metrics, args, sys.stderr)
    print_summary(metrics, out, written)
    return exit_status(metrics, sys.stderr)
