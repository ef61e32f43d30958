"""Throughput of the plugin's client against `transformers serve` on a GPU.

Builds a randomly initialised causal LM of a realistic shape (Qwen2-0.5B's layer
dimensions, our own character tokenizer, so the vocabulary is small), starts
`transformers serve` with it through `JudgeServer`, and sends real pairwise judge
prompts with `ChatClient` at rising concurrency. Records requests/s, completion
tokens/s, and the client's share of the time: the CPU time this process spent building
requests and reading answers, against the wall time.

    python benchmarks/gpu_serve.py --out results.json [--device cuda] [--small]

`--small` uses a tiny model so the script can be tried on a CPU first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from pytest_rubric_judge import prompts
from pytest_rubric_judge.client import ChatClient
from pytest_rubric_judge.models import Rubric
from pytest_rubric_judge.serve import JudgeServer

RUBRIC = Rubric.of(
    [
        {"name": "accuracy", "description": "Facts are correct.", "weight": 0.5},
        {"name": "completeness", "description": "Covers the question.", "weight": 0.3},
        {"name": "clarity", "description": "Clear and organised.", "weight": 0.2},
    ]
)
PROMPT = "How many student newspapers are published at the University of Notre Dame?"
ANSWERS = (
    "There are 145 student newspapers.",
    "Notre Dame has several student-run publications, including The Observer, a daily "
    "newspaper, the Scholastic magazine and the Juggler literary journal; the number "
    "changes from year to year.",
)


def messages(index: int) -> list[dict[str, str]]:
    a, b = ANSWERS if index % 2 == 0 else ANSWERS[::-1]
    return prompts.pass_messages(
        PROMPT + f" (variant {index})",
        RUBRIC,
        a,
        b,
        reference=None,
        context_code=prompts.new_code(),
        response_code=prompts.new_code(),
    )


def build_model(out: Path, small: bool) -> None:
    from tiny_model import build

    if small:
        build(str(out))
        return
    # Qwen2-0.5B's shape: 24 layers of width 896, 14 heads, 2 key-value heads.
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    build(str(out))  # the tokenizer and chat template
    config = LlamaConfig.from_pretrained(out)
    config.hidden_size = 896
    config.intermediate_size = 4864
    config.num_hidden_layers = 24
    config.num_attention_heads = 14
    config.num_key_value_heads = 2
    config.torch_dtype = "bfloat16"
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(out)


def run_level(
    client: ChatClient, model: str, concurrency: int, requests: int, max_tokens: int
) -> dict[str, float]:
    latencies: list[float] = []
    tokens = 0

    def one(index: int) -> None:
        nonlocal tokens
        started = time.perf_counter()
        completion = client.complete(
            messages(index), model=model, max_tokens=max_tokens, temperature=0.0
        )
        latencies.append(time.perf_counter() - started)
        tokens += completion.usage.completion_tokens

    cpu0, wall0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(requests)))
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    return {
        "concurrency": concurrency,
        "requests": requests,
        "wall_s": round(wall, 3),
        "requests_per_s": round(requests / wall, 2),
        "completion_tokens_per_s": round(tokens / wall, 1),
        "latency_median_s": round(statistics.median(latencies), 3),
        "client_cpu_s": round(cpu, 3),
        "client_cpu_share_of_wall": round(cpu / wall, 4),
        "client_cpu_ms_per_request": round(1000 * cpu / requests, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--levels", default="1,4,16,64")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--startup-timeout", type=float, default=300)
    parser.add_argument("--continuous-batching", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gpu-serve-"))
    model_dir = work / "model"
    started = time.perf_counter()
    build_model(model_dir, args.small)
    print(f"model built in {time.perf_counter() - started:.1f}s", flush=True)
    exe = Path(sys.executable).with_name("transformers")
    launcher = str(exe) if exe.exists() else f"{sys.executable} -m transformers.cli.transformers"
    batching = " --continuous-batching" if args.continuous_batching else ""
    command = (
        f"{launcher} serve {model_dir} --host 127.0.0.1 --port {{port}} "
        f"--device {args.device}{batching}"
    )
    results: dict[str, object] = {
        "machine": platform.platform(),
        "python": sys.version.split()[0],
        "device": args.device,
        "model": "small" if args.small else "qwen2-0.5b-shape (24x896, 14 heads, 2 kv heads)",
        "command": command,
        "max_tokens": args.max_tokens,
        "levels": [],
    }
    try:
        import torch

        if torch.cuda.is_available():
            results["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    server = JudgeServer(
        command, log_path=work / "serve.log", startup_timeout=args.startup_timeout, progress=print
    )
    with server, ChatClient(server.url, timeout=300, max_retries=0, max_connections=128) as client:
        run_level(client, str(model_dir), 1, 2, args.max_tokens)  # warm-up
        for level in (int(x) for x in args.levels.split(",")):
            row = run_level(client, str(model_dir), level, args.requests, args.max_tokens)
            print(json.dumps(row), flush=True)
            results["levels"].append(row)  # type: ignore[union-attr]
    Path(args.out).write_text(json.dumps(results, indent=2))
    print((work / "serve.log").read_text()[-2000:] if os.environ.get("SHOW_LOG") else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
