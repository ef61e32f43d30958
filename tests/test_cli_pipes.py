"""`rubric-judge ... | head`: a reader that goes away early ends the command quietly.

Each command runs as a subprocess whose stdout is a pipe closed by the reader before the
command writes anything, which is what `head -0` (or `head -1` on a longer output) does.
The command must stop without a traceback or an "Exception ignored" message, with the
status a shell reports for a tool stopped by SIGPIPE.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cache_answers import pass_entry

from pytest_rubric_judge.cache import JudgeCache
from pytest_rubric_judge.cli.pipes import EXIT_BROKEN_PIPE
from pytest_rubric_judge.testing import FakeJudge

TIMEOUT_S = 60


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUBRIC_JUDGE_", "OPENAI_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _closed_early(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run `rubric-judge ARGS` with a stdout pipe the reader closes at once."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_rubric_judge.cli", *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the first write
    err = process.stderr.read()
    return process.wait(timeout=TIMEOUT_S), err


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache with entries, a compare run's outputs and a gold file."""
    folder = tmp_path_factory.mktemp("pipes")
    with JudgeCache(folder / "cache") as cache:
        for index in range(3):
            cache.put(pass_entry(index))
    rows = [
        {"prompt": f"q{i}?", "response_A": f"a{i}", "response_B": f"b{i} longer", "label": "B>A"}
        for i in range(3)
    ]
    (folder / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def _judged(fake: FakeJudge, folder: Path) -> list[str]:
    return [
        "--judge-url",
        fake.url,
        "--judge-model",
        fake.model,
        "--judge-cache-dir",
        str(folder / "judge-cache"),
    ]


def _assert_quiet(status: int, err: str) -> None:
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert "BrokenPipeError" not in err, err
    assert status == EXIT_BROKEN_PIPE, err


@pytest.mark.parametrize("action", [["stats"], ["stats", "--json"], ["export", "-"]])
def test_cache_commands_stop_quietly(workspace: Path, action: list[str]) -> None:
    status, err = _closed_early(
        ["cache", *action, "--judge-cache-dir", str(workspace / "cache")], workspace
    )
    _assert_quiet(status, err)


def test_compare_and_rescore_stop_quietly(workspace: Path, tmp_path: Path) -> None:
    with FakeJudge() as fake:
        compare = ["compare", str(workspace / "data.jsonl"), "--out", str(tmp_path / "out")]
        options = ["--no-plot", "--no-parquet"]
        progress = ["--progress", "never"]
        args = [*compare, *options, *progress, *_judged(fake, tmp_path)]
        status, err = _closed_early(args, workspace)
    _assert_quiet(status, err)
    assert (tmp_path / "out" / "metrics.json").is_file()  # the outputs were written first
    status, err = _closed_early(["rescore", str(tmp_path / "out"), *options], workspace)
    _assert_quiet(status, err)


def test_calibrate_stops_quietly(workspace: Path, tmp_path: Path) -> None:
    with FakeJudge() as fake:
        args = ["calibrate", str(workspace / "data.jsonl"), "--out", str(tmp_path / "cal")]
        args += ["--no-plot", "--progress", "never", *_judged(fake, tmp_path)]
        status, err = _closed_early(args, workspace)
    _assert_quiet(status, err)
