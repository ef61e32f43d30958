"""`rubric-judge compare`, `rescore` and `show`: checkpoint comparison on a prompt set.

    rubric-judge compare DATA.jsonl --out DIR [--concurrency N] [judge options]
    rubric-judge rescore DIR --weights accuracy=0.6,clarity=0.4 --drop tone --tie-band 0.05
    rubric-judge show DIR --row N

`compare` reads rows (`prompt`, `response_A` = baseline, `response_B` = candidate,
optional `id` and `reference`) as a stream, judges them through `Judge.compare_many`
with a progress bar on stderr, and writes `metrics.json`, `details.jsonl` (plus
`details.parquet` and `dashboard.png` when their extras are installed) and `report.html`
into DIR. Every judge call goes through the cache, so running the same command again after
an interruption resumes where it stopped. `rescore` recomputes every output from the stored
passes with other weights, without the judge. `show` prints one comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TextIO

from ..batch import DEFAULT_CONCURRENCY, InvalidRow
from ..errors import JudgeError
from ..judge import Judge
from ..report.details import DetailsWriter, read_details, record_of, verdict_of, write_parquet
from ..report.html import write_html
from ..report.metrics import metrics_of, summary_rows
from ..settings import non_negative_int, positive_int
from ..stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, Aggregator
from . import options

DETAILS = "details.jsonl"
METRICS = "metrics.json"


# -- argument types ------------------------------------------------------------------


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.95, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, e.g. 0.95; got {value}")
    return value


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


# -- registration --------------------------------------------------------------------


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("statistics and outputs")
    group.add_argument("--level", type=_level, default=None, help="interval level (0.95)")
    group.add_argument(
        "--resamples",
        type=non_negative_int,
        default=None,
        help=f"bootstrap resamples ({DEFAULT_RESAMPLES}; 0 for none)",
    )
    group.add_argument("--seed", type=int, default=None, help=f"bootstrap seed ({DEFAULT_SEED})")
    group.add_argument("--no-plot", action="store_true", help="do not draw dashboard.png")
    group.add_argument("--no-html", action="store_true", help="do not write report.html")
    group.add_argument("--no-parquet", action="store_true", help="do not write details.parquet")


def register(subparsers: Any) -> None:
    compare = subparsers.add_parser(
        "compare",
        help="judge response_B (candidate) against response_A (baseline) for every row",
        description=(
            "Judge every row of DATA.jsonl (prompt, response_A = baseline, response_B = "
            "candidate, optional id and reference) in both orders, and write metrics.json, "
            "details.jsonl (details.parquet), dashboard.png and report.html into --out. "
            "Judge answers are cached: rerun the same command to resume an interrupted run."
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
    _add_output_options(compare)
    options.add_judge_options(compare)
    compare.set_defaults(func=run)

    rescore = subparsers.add_parser(
        "rescore",
        help="recompute the outputs of a compare run with other weights, without the judge",
        description=(
            "Recompute every output of a compare run from its stored passes: reweight or "
            "drop criteria, and derive each preference from the margin (A>B above the tie "
            "band, B>A below minus the band, else A=B). Makes no judge request."
        ),
    )
    rescore.add_argument("dir", metavar="DIR", help="the --out folder of a compare run")
    rescore.add_argument("--weights", type=_weights, default={}, metavar="NAME=W,...")
    rescore.add_argument("--drop", type=_names, default=[], metavar="NAME,...")
    rescore.add_argument("--tie-band", type=_tie_band, default=0.05, metavar="B")
    rescore.add_argument(
        "--out", default=None, metavar="DIR2", help="where to write (default: DIR/rescored)"
    )
    _add_output_options(rescore)
    rescore.set_defaults(func=run_rescore)

    show = subparsers.add_parser("show", help="print one comparison of a compare run")
    show.add_argument("dir", metavar="DIR", help="the --out folder of a compare run")
    show.add_argument(
        "--row", type=non_negative_int, required=True, metavar="N", help="row index (from 0)"
    )
    show.set_defaults(func=run_show)


# -- input -----------------------------------------------------------------------------


def count_rows(path: Path) -> int:
    """Non-blank lines of a file (the progress bar's total)."""
    with path.open("rb") as data:
        return sum(1 for line in data if line.strip())


def read_rows(lines: IO[str]) -> Iterator[Mapping[str, object] | InvalidRow]:
    """The rows of a JSONL stream; a line that is not a JSON object becomes an InvalidRow."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield InvalidRow(f"line {number} is not JSON: {exc}")
            continue
        if not isinstance(row, dict):
            yield InvalidRow(f"line {number} is not a JSON object")
            continue
        yield row


# -- progress --------------------------------------------------------------------------


class Progress:
    """A one-line progress bar with rate and ETA, redrawn at most ten times a second."""

    def __init__(self, total: int | None, stream: TextIO, *, enabled: bool, width: int = 28):
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.width = width
        self.done = 0
        self.errors = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, *, ok: bool) -> None:
        self.done += 1
        self.errors += not ok
        now = time.monotonic()
        if self.enabled and (now - self._drawn >= 0.1 or self.done == self.total):
            self._drawn = now
            self.stream.write("\r" + self.line(now))
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = max(1e-9, (now or time.monotonic()) - self.started)
        rate = self.done / elapsed
        errors = f"  errors {self.errors}" if self.errors else ""
        if self.total:
            share = min(1.0, self.done / self.total)
            filled = int(share * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            return (
                f"[{bar}] {self.done}/{self.total} {share:6.1%}  {rate:7.1f} rows/s  "
                f"ETA {_clock(eta)}{errors}"
            )
        return f"{self.done} rows  {rate:7.1f} rows/s  elapsed {_clock(elapsed)}{errors}"

    def finish(self) -> None:
        if self.enabled and self.done != self.total:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
        elif self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    if seconds == float("inf"):
        return "--:--"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# -- outputs ---------------------------------------------------------------------------


def _statistics(args: argparse.Namespace, previous: Mapping[str, Any] | None = None) -> Aggregator:
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


def _print_summary(metrics: Mapping[str, Any], out: Path, written: list[str]) -> None:
    width = max(len(label) for label, _ in summary_rows(metrics))
    for label, value in summary_rows(metrics):
        print(f"{label.ljust(width)}  {value}")
    print(f"wrote {', '.join(written)} to {out}")


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
    aggregator = _statistics(args)
    writer = DetailsWriter(out / DETAILS)
    judge = options.judge_from_args(args)
    started = time.monotonic()
    interrupted = False
    try:
        with judge, source:
            for result in judge.compare_many(read_rows(source), concurrency=args.concurrency):
                if result.verdict is None:
                    aggregator.add_error()
                else:
                    aggregator.add(result.verdict)
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
                progress.update(ok=result.verdict is not None)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        writer.close()
        progress.finish()
    stats = judge.stats.as_dict()
    run_info = {
        "data": str(args.data),
        "judge_model": _model_name(judge),
        "concurrency": args.concurrency,
        "wall_s": round(time.monotonic() - started, 3),
        "complete": not interrupted,
        **{f"judge_{name}": value for name, value in stats.items()},
    }
    metrics = metrics_of(aggregator.result(), run=run_info)
    written = write_outputs(out, metrics, args, sys.stderr)
    _print_summary(metrics, out, written)
    tokens = stats.get("prompt_tokens", 0) + stats.get("completion_tokens", 0)
    print(
        f"{stats.get('requests', 0)} judge requests ({stats.get('retries', 0)} retries, "
        f"{stats.get('repairs', 0)} repairs), {stats.get('cache_hits', 0)} cache hits, "
        f"{tokens} tokens"
    )
    if interrupted:
        print(
            "rubric-judge: interrupted; the outputs cover the rows finished so far. Run the "
            "same command again to resume: finished judge calls come from the cache.",
            file=sys.stderr,
        )
        return 130
    return 0


def _model_name(judge: Judge) -> str:
    try:
        return judge.model
    except JudgeError:
        return ""


# -- rescore ---------------------------------------------------------------------------


def _load_metrics(folder: Path) -> dict[str, Any] | None:
    path = folder / METRICS
    if not path.is_file():
        return None
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else None


def run_rescore(args: argparse.Namespace) -> int:
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
    aggregator = _statistics(args, _load_metrics(source))
    writer = DetailsWriter(out / DETAILS)
    try:
        for record in read_details(details):
            verdict = verdict_of(record)
            if verdict is None:
                aggregator.add_error()
                writer.write(record)
                continue
            names = set(verdict.rubric.names)
            weights = {k: v for k, v in args.weights.items() if k in names}
            drop = [name for name in args.drop if name in names]
            try:
                rescored = verdict.rescored(weights=weights, drop=drop, tie_band=args.tie_band)
            except ValueError as exc:
                aggregator.add_error()
                writer.write(
                    record_of(
                        record["index"],
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
            aggregator.add(rescored)
            writer.write(record_of(record["index"], record["id"], rescored))
    finally:
        writer.close()
    run_info = {
        "rescored_from": str(source),
        "weights": args.weights,
        "drop": args.drop,
        "tie_band": args.tie_band,
        "judge_requests": 0,
    }
    metrics = metrics_of(aggregator.result(), run=run_info)
    written = write_outputs(out, metrics, args, sys.stderr)
    _print_summary(metrics, out, written)
    return 0


# -- show ------------------------------------------------------------------------------


def show_lines(record: Mapping[str, Any]) -> list[str]:
    """One comparison printed the way the article prints a row of its results."""
    lines = ["=" * 80, f"Row {record['index']} (id {record['id']}):"]
    if record.get("status") != "ok":
        lines.append(f"  Judge error: {record.get('error_type')}: {record.get('error')}")
        return lines
    forward, reversed_ = record["forward"], record["reversed"]
    consistency = (
        "consistent in both orders"
        if record["consistent"]
        else f"position flip: forward {forward['preference']}, reversed {reversed_['preference']}"
    )
    lines += [
        f"  Preference: ['{record['preference']}'] ({consistency})",
        f"  A wins: {record['a_wins']:.1f}",
        f"  B wins: {record['b_wins']:.1f}",
        f"  Weighted A: {record['weighted_score_A']:.3f}",
        f"  Weighted B: {record['weighted_score_B']:.3f}",
        f"  Margin: {record['score_margin']:+.3f}",
        "",
        "  Overall Justification:",
        f"    forward pass (A shown first): {forward['overall_justification']}",
        f"    reversed pass (B shown first, mapped back): {reversed_['overall_justification']}",
    ]
    if record.get("rescored_with"):
        lines.append(f"  Rescored with: {json.dumps(record['rescored_with'], sort_keys=True)}")
    lines += ["", "  Criteria:"]

    def score(value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    for criterion in record["criteria"]:
        forward_pair = (
            f"Score A: {score(criterion['forward_score_A'])}, "
            f"Score B: {score(criterion['forward_score_B'])}"
        )
        reversed_pair = (
            f"A {score(criterion['reversed_score_A'])}, B {score(criterion['reversed_score_B'])}"
        )
        lines += [
            "",
            f"    {criterion['name']}:",
            f"      {forward_pair} (reversed pass: {reversed_pair})",
            f"      Weight: {criterion['weight']:.3g}, Type: {criterion['type']}",
            f"      Description: {criterion['description']}",
            f"      Justification A: {criterion['forward_justification_A']}",
            f"      Justification B: {criterion['forward_justification_B']}",
        ]
    return lines


def run_show(args: argparse.Namespace) -> int:
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
