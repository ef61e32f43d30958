"""Benchmarks of `compare_many` / `rubric-judge compare` against the fake judge.

Not part of the test suite. Each subcommand prints a Markdown table and writes JSON under
benchmarks/results/:

    python benchmarks/bench_compare.py throughput [--rows 2000] [--concurrency 1,8,32,128]
        [--latency 0.1] [--servers 1] [--rows-at-1 100] [--gc-threshold N]
        [--event-loop auto|uvloop|asyncio] [--repeat N]
    python benchmarks/bench_compare.py warm [--rows 100000] [--prompts 1000]
    python benchmarks/bench_compare.py tokens [--rows 200]
    python benchmarks/bench_compare.py deepeval [--rows 200] [--concurrency 20]

throughput: the fake judge runs in its own process(es) with a fixed latency per request;
each concurrency level gets a fresh cache, and the wall time is compared with the latency
bound, requests x latency / concurrency (ratio = bound / wall, 1.0 is ideal). With
`--repeat N` each level runs N times (a fresh cache each) and the table shows the median
run by ratio, with the range: on a small shared machine one run of a few seconds is one
sample of the machine's state as much as of the code.
warm: 100k rows whose judge answers are all in the cache (written directly, no server);
`rubric-judge compare` in replay mode, its peak RSS and time per row.
tokens: judge tokens per comparison with the shared rubric, against regenerating the
criteria in each pass (single-call mode), from the fake judge's usage accounting.
deepeval: DeepEval's G-Eval `evaluate()` on the same fake judge and latency, from a
separate virtualenv (created on first use; skipped with a note if it cannot be installed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MODEL = "fake-judge"


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores, {memory:.0f} GiB, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Servers:
    """The fake judge's URL and processes (whose CPU time the benchmark reads)."""

    def __init__(self, url: str, pids: list[int]) -> None:
        self.url = url
        self.pids = pids

    def cpu_s(self) -> float:
        """User plus system CPU seconds the server processes have used so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    def request_count(self) -> int:
        """Chat requests answered so far (by the first process; the benchmarks that count
        requests run one)."""
        base = self.url.rsplit("/v1", 1)[0]
        with urllib.request.urlopen(f"{base}/bench/stats", timeout=10) as reply:
            count: int = json.load(reply)["requests"]
        return count


@contextmanager
def servers(latency: float, count: int = 1, *, deepeval: bool = False) -> Iterator[Servers]:
    """`count` fake judge processes sharing one port."""
    port = free_port()
    command = [sys.executable, str(HERE / "fake_server.py"), "--port", str(port)]
    command += ["--latency", str(latency), "--max-lifetime", "1800", "--no-log"]
    command += ["--deepeval"] * deepeval
    processes: list[subprocess.Popen[str]] = []
    try:
        for _ in range(count):
            process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            processes.append(process)
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line.startswith("ready"):
                raise RuntimeError(f"fake judge did not start: {line!r}")
        yield Servers(f"http://127.0.0.1:{port}/v1", [p.pid for p in processes])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def rows(count: int, prompts: int | None = None) -> list[dict[str, str]]:
    distinct = prompts or count
    return [
        {
            "id": f"r{i}",
            "prompt": f"Question {i % distinct}: what is the capital of France, and why?",
            "response_A": "Paris.",
            "response_B": f"Paris is the capital of France and its largest city ({i}).",
        }
        for i in range(count)
    ]


def save(name: str, data: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    data = {"machine": machine(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            **data}  # fmt: skip
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")


# -- throughput -------------------------------------------------------------------------


def throughput(args: argparse.Namespace) -> None:
    # compare_many's module (and aiohttp) load on first use: import them here, outside the
    # timed window, or the first level measured pays their import (~0.12 s of CPU and wall).
    import pytest_rubric_judge.batch  # noqa: F401
    from pytest_rubric_judge import loops

    if args.gc_threshold is not None:  # for paired runs against the default
        loops.BATCH_GC_THRESHOLD = args.gc_threshold
    if args.event_loop is not None:  # likewise
        os.environ[loops.LOOP_ENV] = args.event_loop
    loops.loop_factory()  # (imports uvloop, when it is used, outside the timed window)

    levels = [int(c) for c in args.concurrency.split(",")]
    results = []
    with servers(args.latency, args.servers) as server:
        for concurrency in levels:
            runs = [_level(server, concurrency, args) for _ in range(args.repeat)]
            for row in runs:
                print(row, flush=True)
            runs.sort(key=lambda row: row["ratio"])
            row = dict(runs[len(runs) // 2])  # the median run (the upper one of an even count)
            row["runs"] = len(runs)
            row["ratio_range"] = [runs[0]["ratio"], runs[-1]["ratio"]]
            results.append(row)
    repeated = args.repeat > 1
    head = "| concurrency | comparisons | requests | wall s | bound s | ratio | req/s | "
    head += "client CPU ms/req | server CPU ms/req |" + " runs | ratio range |" * repeated
    print("\n" + head)
    print("|---|---|---|---|---|---|---|---|---|" + "---|---|" * repeated)
    for r in results:
        spread = f" {r['runs']} | {r['ratio_range'][0]}-{r['ratio_range'][1]} |"
        print(f"| {r['concurrency']} | {r['comparisons']} | {r['requests']} | {r['wall_s']} | "
              f"{r['bound_s']} | {r['ratio']} | {r['requests_per_s']} | "
              f"{r['client_cpu_ms_per_request']} | {r['server_cpu_ms_per_request']} |"
              + spread * repeated)  # fmt: skip
    name = f"throughput-{args.servers}srv"
    save(name, {"latency_s": args.latency, "servers": args.servers, "results": results})


def _level(server: Servers, concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    """One run of one concurrency level on a fresh cache."""
    from pytest_rubric_judge.judge import Judge

    count = args.rows_at_1 if concurrency == 1 and args.rows_at_1 else args.rows
    data = rows(count)
    with tempfile.TemporaryDirectory() as cache:
        judge = Judge(server.url, MODEL, cache_dir=cache, max_retries=0)
        server_cpu = server.cpu_s()
        cpu, started = time.process_time(), time.perf_counter()
        done = errors = 0
        for result in judge.compare_many(data, concurrency=concurrency):
            done += 1
            errors += not result.ok
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        server_cpu = server.cpu_s() - server_cpu
        requests = judge.stats.requests
        judge.close()
    bound = requests * args.latency / concurrency
    return {
        "concurrency": concurrency,
        "comparisons": done,
        "errors": errors,
        "requests": requests,
        "wall_s": round(wall, 2),
        "bound_s": round(bound, 2),
        "ratio": round(bound / wall, 3),
        "requests_per_s": round(requests / wall, 1),
        "client_cpu_ms_per_request": round(cpu / requests * 1000, 2),
        "server_cpu_ms_per_request": round(server_cpu / requests * 1000, 2),
    }


# -- warm cache and memory --------------------------------------------------------------


def _populate(data_path: Path, cache: Path, count: int, prompts: int) -> float:
    """Write every rubric and pass answer for the rows straight into the cache."""
    from pytest_rubric_judge.cache import CacheEntry
    from pytest_rubric_judge.cli import build_parser
    from pytest_rubric_judge.cli.options import judge_from_args
    from pytest_rubric_judge.parsing import parse_pass, parse_rubric
    from pytest_rubric_judge.testing import DEFAULT_CRITERIA

    args = build_parser().parse_args(
        ["compare", str(data_path), "--out", "x", "--judge-cache-dir", str(cache),
         "--judge-model", MODEL]
    )  # fmt: skip
    judge = judge_from_args(args)
    # The keys the judge will look up: with or without a JSON schema, as it would send.
    structured = judge.core.structured_wanted()
    config = judge.config
    rubric_raw = json.dumps({"criteria": [dict(c) for c in DEFAULT_CRITERIA]})
    rubric = parse_rubric(
        rubric_raw, min_criteria=config.min_criteria, max_criteria=config.max_criteria
    )
    started = time.perf_counter()

    def put(keyed: tuple[str, dict[str, object]], raw: str, parsed: dict[str, object]) -> None:
        key, fields = keyed
        judge.cache.put(CacheEntry(key=key, fields=fields, raw=raw, parsed=parsed))

    seen: set[str] = set()
    for index, row in enumerate(rows(count, prompts)):
        prompt = row["prompt"]
        if prompt not in seen:
            seen.add(prompt)
            put(judge.core.keyed("rubric", prompt, None, structured=structured), rubric_raw,
                rubric.model_dump(mode="json"))  # fmt: skip
        for slot_a, slot_b, label in (
            (row["response_A"], row["response_B"], "B>A"),
            (row["response_B"], row["response_A"], "A>B"),
        ):
            worse, better = (2, 5) if label == "B>A" else (5, 2)
            # Each answer's text is distinct, as real answers are: the cache re-reads every
            # raw text it serves, and a repeated text would be read once.
            raw = json.dumps({
                "scores": [
                    {"name": c["name"], "score_A": worse, "score_B": better,
                     "justification_A": f"Short ({index}).",
                     "justification_B": f"Complete ({index})."}
                    for c in DEFAULT_CRITERIA
                ],
                "overall_justification": f"Row {index}: the longer answer is more complete.",
                "preference": label,
            })  # fmt: skip
            keyed = judge.core.keyed(
                "pass", prompt, None, rubric, slot_a, slot_b, structured=structured
            )
            put(keyed, raw, parse_pass(raw, rubric).model_dump(mode="json"))
    judge.close()
    return time.perf_counter() - started


def warm(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        data_path = base / "data.jsonl"
        with data_path.open("w") as out:
            for row in rows(args.rows, args.prompts):
                out.write(json.dumps(row) + "\n")
        populate_s = _populate(data_path, base / "cache", args.rows, args.prompts)
        print(f"cache written in {populate_s:.1f}s", flush=True)
        results = {}
        variants = {
            "compare_many loop only": [sys.executable, "-c", _LOOP, str(data_path),
                                       str(base / "cache")],
            "rubric-judge compare, all outputs": [
                sys.executable, "-c", _CLI, "compare", str(data_path),
                "--out", str(base / "out"), "--judge-cache", "replay", "--judge-cache-dir",
                str(base / "cache"), "--judge-model", MODEL, "--progress", "never",
            ],
        }  # fmt: skip
        for name, command in variants.items():
            if args.only_cli and "loop" in name:
                continue
            started = time.perf_counter()
            process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            assert process.stdout is not None
            output = process.stdout.read()
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - started
            results[name] = {
                "wall_s": round(wall, 2),
                "ms_per_row": round(wall / args.rows * 1000, 3),
                "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
                "exit": process.returncode,
                "output_tail": output.strip().splitlines()[-3:],
            }
            print(name, results[name], flush=True)
        sizes = {p.name: round(p.stat().st_size / 2**20, 1) for p in (base / "out").iterdir()}
        print("output sizes (MiB):", sizes)
    save("warm", {"rows": args.rows, "prompts": args.prompts, "populate_s": round(populate_s, 1),
                  "results": results, "output_mib": sizes})  # fmt: skip


_CLI = "import sys; from pytest_rubric_judge.cli import main; sys.exit(main(sys.argv[1:]))"

_LOOP = """
import resource, sys, time, json
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.cli.compare import read_rows
judge = Judge(None, "fake-judge", cache_dir=sys.argv[2], cache_mode="replay")
started = time.perf_counter()
count = errors = 0
with open(sys.argv[1]) as source:
    for result in judge.compare_many(read_rows(source), concurrency=32):
        count += 1
        errors += not result.ok
wall = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": count, "errors": errors, "s": round(wall, 2),
                  "ms_per_row": round(wall / count * 1000, 3), "peak_rss_mib": round(peak, 1)}))
"""


# -- tokens -----------------------------------------------------------------------------


def tokens(args: argparse.Namespace) -> None:
    from pytest_rubric_judge.judge import Judge

    data = rows(args.rows)
    with servers(0.0) as server, tempfile.TemporaryDirectory() as cache:
        judge = Judge(server.url, MODEL, cache_dir=cache)
        for row in data:
            judge.rubric(row["prompt"])
        rubric_tokens = judge.stats.prompt_tokens + judge.stats.completion_tokens
        rubric_requests = judge.stats.requests
        before = rubric_tokens
        list(judge.compare_many(data, concurrency=16))  # rubrics now come from the cache
        pass_tokens = judge.stats.prompt_tokens + judge.stats.completion_tokens - before
        pass_requests = judge.stats.requests - rubric_requests
        single_tokens, single_requests = _single_call_tokens(judge, server.url, data)
        judge.close()
    n = len(data)
    shared = (rubric_tokens + pass_tokens) / n
    single = single_tokens / n
    result = {
        "comparisons": n,
        "rubric_requests": rubric_requests,
        "pass_requests": pass_requests,
        "tokens_per_rubric": round(rubric_tokens / rubric_requests, 1),
        "tokens_per_pass": round(pass_tokens / pass_requests, 1),
        "shared_rubric_per_comparison": round(shared, 1),
        "single_call_per_comparison": round(single, 1),
        "shared_rubric_3_pairs_per_prompt": round(rubric_tokens / n / 3 + pass_tokens / n, 1),
        "single_call_requests": single_requests,
        "tokens_per_single_call": round(single_tokens / single_requests, 1),
        "saving": round(1 - shared / single, 3),
    }
    print(json.dumps(result, indent=2))
    save("tokens", result)


def _between(text: str, start: str, end: str) -> str:
    """The part of `text` from `start` up to (not including) `end`."""
    first = text.index(start)
    return text[first : text.index(end, first)]


def _single_call_system() -> str:
    """The system message of a single-call request, from the project's two templates: the
    rubric's criteria shape and the pass's rules and scores shape, asked for at once."""
    from fake_server import SINGLE_CALL_MARK

    from pytest_rubric_judge import prompts

    criteria = _between(prompts._RUBRIC_SYSTEM, "criteria:\n", "```\n")
    rules = _between(prompts._PASS_SYSTEM, "Rules:\n", "Answer with YAML")
    scores = _between(prompts._PASS_SYSTEM, "scores:\n", "```\n")
    return (
        f"You are an impartial expert evaluator. {SINGLE_CALL_MARK} comparison.\n"
        "You will see a prompt given to an AI assistant, sometimes a reference answer, and two\n"
        "responses, A and B, each inside its own block. First write the criteria that a good\n"
        "response to this particular prompt must meet, specific to its subject; then score\n"
        "BOTH responses on EVERY criterion you wrote, justify each score in one sentence, and\n"
        f"state which response is better.\n\n{rules}"
        "Answer with YAML only, inside one ```yaml fenced block, in exactly this shape:\n"
        f"```yaml\n{criteria}{scores}```\n"
        "Write between 2 and 8 criteria. Use A=B when both are equally good, A=B (bothbad)\n"
        "when both fail the prompt."
    )


def _single_call_tokens(judge: Any, url: str, data: list[dict[str, str]]) -> tuple[int, int]:
    """Tokens of single-call mode, counted by the fake judge: per comparison, two requests
    (one per order), each asking for the criteria, the scores and the preference at once.

    Not a mode of the project: the request is the project's pass request with the rubric
    block left out and the rubric instructions folded into the system message above; the
    fake judge answers it with its heuristic rubric and pass in one object.
    """
    import httpx

    from pytest_rubric_judge import prompts
    from pytest_rubric_judge.models import Rubric
    from pytest_rubric_judge.testing import DEFAULT_CRITERIA

    sys.path.insert(0, str(HERE))
    system = _single_call_system()
    placeholder = Rubric.of(DEFAULT_CRITERIA, source="user")
    rubric_section = "The rubric:\n```yaml\n" + prompts.rubric_yaml(placeholder) + "```\n\n"
    tokens = requests = 0
    with httpx.Client(timeout=30) as http:
        for row in data:
            for slot_a, slot_b in ((row["response_A"], row["response_B"]),
                                   (row["response_B"], row["response_A"])):  # fmt: skip
                _, user = prompts.pass_messages(
                    row["prompt"], placeholder, slot_a, slot_b, reference=None,
                    context_code=judge.core.context_code,
                    response_code=prompts.new_code(row["prompt"], slot_a, slot_b),
                )  # fmt: skip
                assert rubric_section in user["content"]
                content = user["content"].replace(rubric_section, "")
                messages = [{"role": "system", "content": system},
                            {"role": "user", "content": content}]  # fmt: skip
                reply = http.post(f"{url}/chat/completions",
                                  json={"model": MODEL, "messages": messages})  # fmt: skip
                reply.raise_for_status()
                usage = reply.json()["usage"]
                tokens += usage["prompt_tokens"] + usage["completion_tokens"]
                requests += 1
    return tokens, requests


# -- DeepEval ---------------------------------------------------------------------------

_DEEPEVAL = r"""
import json, sys, time
from deepeval import evaluate
from deepeval.evaluate.configs import AsyncConfig, DisplayConfig
from deepeval.metrics import GEval
from deepeval.models import LocalModel
from deepeval.test_case import LLMTestCase, LLMTestCaseParams
url, count, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = LocalModel(model="fake-judge", base_url=url, api_key="unused")
metric = GEval(name="Correctness", criteria="Is the actual output correct for the input?",
               evaluation_params=[LLMTestCaseParams.INPUT, LLMTestCaseParams.ACTUAL_OUTPUT],
               model=model)
cases = [LLMTestCase(input=f"Question {i}: what is the capital of France?",
                     actual_output=f"Paris is the capital of France ({i}).") for i in range(count)]
started = time.perf_counter()
evaluate(cases, [metric], async_config=AsyncConfig(max_concurrent=concurrency),
         display_config=DisplayConfig(show_indicator=False, print_results=False))
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def deepeval(args: argparse.Namespace) -> None:
    venv = Path(tempfile.gettempdir()) / "rubric-judge-bench-deepeval"
    python = venv / "bin" / "python"
    note = None
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        installed = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "deepeval"], check=False
        )
        if installed.returncode != 0:
            note = "DeepEval could not be installed in a separate virtualenv; column skipped"
            shutil.rmtree(venv, ignore_errors=True)
    if note:
        print(note)
        save("deepeval", {"skipped": note})
        return
    from pytest_rubric_judge.judge import Judge

    data = rows(args.rows)
    env = {**os.environ, "DEEPEVAL_TELEMETRY_OPT_OUT": "YES", "NO_PROXY": "127.0.0.1"}
    result: dict[str, Any] = {"comparisons_or_cases": args.rows, "latency_s": args.latency}
    # Both run against the same kind of server process; DeepEval in the virtualenv's Python.
    with servers(args.latency, deepeval=True) as server:
        url = server.url
        started = time.perf_counter()
        ran = subprocess.run(
            [str(python), "-c", _DEEPEVAL, url, str(args.rows), str(args.concurrency)],
            env=env, capture_output=True, text=True, check=False, timeout=1200,
            cwd=tempfile.mkdtemp(prefix="deepeval-run-"),
        )  # fmt: skip
        wall = time.perf_counter() - started
        requests = server.request_count()
        # The time inside `evaluate()`, without the interpreter start and DeepEval's imports.
        lines = ran.stdout.strip().splitlines()
        inside = json.loads(lines[-1])["seconds"] if ran.returncode == 0 and lines else wall
        result["deepeval"] = {
            "exit": ran.returncode, "wall_s": round(wall, 2), "evaluate_s": round(inside, 2),
            "requests": requests, "requests_per_s": round(requests / inside, 1),
            "bound_s": round(requests * args.latency / args.concurrency, 2),
            "concurrency": args.concurrency, "stderr_tail": ran.stderr[-800:],
        }  # fmt: skip
        print("deepeval", result["deepeval"], flush=True)
    with servers(args.latency) as server:
        with tempfile.TemporaryDirectory() as cache:
            judge = Judge(server.url, MODEL, cache_dir=cache)
            started = time.perf_counter()
            list(judge.compare_many(data, concurrency=args.concurrency))
            wall = time.perf_counter() - started
            requests = judge.stats.requests
            judge.close()
        result["rubric_judge"] = {
            "wall_s": round(wall, 2), "requests": requests,
            "requests_per_s": round(requests / wall, 1),
            "bound_s": round(requests * args.latency / args.concurrency, 2),
            "concurrency": args.concurrency,
        }  # fmt: skip
        print("rubric_judge", result["rubric_judge"], flush=True)
    save("deepeval", result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--rows", type=int, default=2000)
    t.add_argument("--rows-at-1", type=int, default=100)
    t.add_argument("--concurrency", default="1,8,32,128")
    t.add_argument("--latency", type=float, default=0.1)
    t.add_argument("--servers", type=int, default=1)
    t.add_argument(
        "--gc-threshold",
        type=int,
        default=None,
        help="the young generation's GC threshold during a batch (700: CPython's default)",
    )
    t.add_argument(
        "--repeat", type=int, default=1, help="runs per level; the table shows the median"
    )
    t.add_argument(
        "--event-loop",
        choices=["auto", "uvloop", "asyncio"],
        default=None,
        help="the batch's event loop (sets RUBRIC_JUDGE_EVENT_LOOP; default: auto)",
    )
    w = sub.add_parser("warm")
    w.add_argument("--rows", type=int, default=100_000)
    w.add_argument("--prompts", type=int, default=1000)
    w.add_argument("--only-cli", action="store_true", help="skip the compare_many-only run")
    k = sub.add_parser("tokens")
    k.add_argument("--rows", type=int, default=200)
    d = sub.add_parser("deepeval")
    d.add_argument("--rows", type=int, default=200)
    d.add_argument("--concurrency", type=int, default=20)
    d.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    {"throughput": throughput, "warm": warm, "tokens": tokens, "deepeval": deepeval}[args.what](
        args
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
