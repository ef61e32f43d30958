"""Against a real third-party server: `transformers serve` with a tiny random model.

The model is built and saved by the test (nothing is downloaded); its answers are
gibberish, which is the point: the plugin starts the server through --judge-serve, sends
real requests through its client, turns the gibberish into judge errors that show the
raw text, and stops the server at the end of the run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None or importlib.util.find_spec("fastapi") is None,
    reason="needs transformers[serving] (installed by the dev extra)",
)

SUPPORT = Path(__file__).parent / "support" / "tiny_model.py"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-model")
    subprocess.run([sys.executable, str(SUPPORT), str(out)], check=True, timeout=300)
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    return out


def _serve_command(model: Path) -> str:
    exe = Path(sys.executable).with_name("transformers")
    return f"{exe} serve {model} --host 127.0.0.1 --port {{port}} --device cpu"


def test_plugin_starts_transformers_serve_and_reports_gibberish(
    pytester: pytest.Pytester, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("RUBRIC_JUDGE_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makepyfile(
        """
        from pytest_rubric_judge import assert_preferred

        def test_gibberish_judge(judge):
            assert_preferred("Paris.", "Lyon.", prompt="What is the capital of France?")
        """
    )
    log = pytester.path / "server.log"
    result = pytester.runpytest(
        f"--judge-serve={_serve_command(tiny_model)}",
        f"--judge-serve-log={log}",
        "--judge-serve-timeout=240",
        f"--judge-model={tiny_model}",
        "--judge-max-tokens=48",
        "--judge-max-retries=0",
        "--judge-cache=off",
        timeout=400,
    )
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "JudgeOutputError" in out and "its answer began" in out
    assert "after one repair request" in out
    # the server really answered: its log shows the chat requests
    text = log.read_text()
    assert text.count("POST /v1/chat/completions") == 2  # the rubric, then its repair
    port = re.search(r"http://127\.0\.0\.1:(\d+)", text)
    assert port is not None
    # ... and it is gone after the run
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port.group(1)}/health", timeout=2)


def test_server_that_exits_early_fails_the_run_with_its_log(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        """
        def test_one(judge):
            judge.compare("q", "a", "b")

        def test_two(judge):
            judge.compare("q", "a", "c")
        """
    )
    missing = tmp_path / "no-model-here"
    result = pytester.runpytest(
        f"--judge-serve={_serve_command(missing)}",
        "--judge-serve-timeout=120",
        "--judge-model=x",
        timeout=300,
    )
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    assert "JudgeServerError: the judge server exited with status" in out
    assert "no-model-here" in out  # the last lines of its log name the missing model
