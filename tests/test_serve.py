"""Starting and stopping a judge server process: readiness, early exit, timeouts, no orphans."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from pytest_rubric_judge import Judge
from pytest_rubric_judge.serve import JudgeServer, JudgeServerError

FAKE = f"{sys.executable} -m pytest_rubric_judge.testing --port {{port}} --max-lifetime 120"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_starts_answers_and_stops(tmp_path: Path) -> None:
    server = JudgeServer(FAKE, log_path=tmp_path / "judge.log", startup_timeout=60)
    url = server.start()
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with Judge(url, None, max_retries=0) as judge:
            verdict = judge.compare("q", "a", "b", criteria=[{"name": "accuracy", "weight": 1}])
        assert verdict.judge_model == "fake-judge"
        pid = server._process.pid if server._process else -1
    finally:
        server.stop()
    assert not server.running
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/models", timeout=1)
    server.stop()  # idempotent


def test_early_exit_shows_the_log(tmp_path: Path) -> None:
    command = (
        f"{sys.executable} -c \"print('CUDA out of memory, port {{port}}'); raise SystemExit(3)\""
    )
    server = JudgeServer(command, log_path=tmp_path / "judge.log", startup_timeout=30)
    with pytest.raises(JudgeServerError) as info:
        server.start()
    message = str(info.value)
    assert "exited with status 3 before it was ready" in message
    assert "CUDA out of memory" in message


def test_timeout_stops_the_process_and_reports_progress(tmp_path: Path) -> None:
    notes: list[str] = []
    command = f"{sys.executable} -c \"import time; print('loading {{port}}', flush=True); time.sleep(60)\""
    server = JudgeServer(
        command,
        log_path=tmp_path / "judge.log",
        startup_timeout=1.5,
        grace=2,
        progress=notes.append,
        progress_every=0.5,
    )
    started = time.monotonic()
    with pytest.raises(JudgeServerError, match="did not answer within 2s"):
        server.start()
    assert time.monotonic() - started < 10
    assert notes and "waiting for the judge server" in notes[0]
    assert not server.running


def test_command_must_name_the_port(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\{port\}"):
        JudgeServer("vllm serve model", log_path=tmp_path / "x.log")


def test_missing_executable_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JudgeServerError, match="could not start the judge server"):
        JudgeServer("no-such-server-binary --port {port}", log_path=tmp_path / "x.log").start()
