"""Baselines survive a killed run: the file is always the complete old or the complete new text.

A child process rewrites one large baseline with `write_baseline` in a loop, alternating
two texts, and is killed with SIGKILL at a random moment; after each kill the file must be
exactly one of the two texts. The same harness run with a plain `open(..., "w")` writer
catches truncated files, which shows the kills land mid-write.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_rubric_judge import baselines
from pytest_rubric_judge.baselines import (
    STALE_TEMP_S,
    baseline_path,
    read_baseline,
    remove_stale_temp_files,
    temp_files,
    write_baseline,
)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

SIZE = 2_000_000  # characters per text: long enough for a kill to land inside a write
KILLS = 12

# The child imports the baseline store only (standard library underneath; the package's
# __init__ imports nothing), so that it starts in milliseconds.
WRITER = """
import sys
from pathlib import Path

from pytest_rubric_judge.baselines import write_baseline
path, size, naive = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "naive"
texts = ["old " * (size // 4), "new\\u00e9" * (size // 4)]
print("ready", flush=True)
turn = 1  # the new text first, so the file changes with the first completed write
while True:
    text = texts[turn % 2]
    if naive:
        with open(path, "w", encoding="utf-8") as handle:
            for start in range(0, len(text), 65536):
                handle.write(text[start : start + 65536])
    else:
        write_baseline(path, text)
    print("w", flush=True)
    turn += 1
"""


def texts() -> tuple[str, str]:
    return "old " * (SIZE // 4), "new\u00e9" * (SIZE // 4)


def kill_mid_write(path: Path, *, naive: bool, rng: random.Random) -> int:
    """Start a writer, let it write for a random moment, SIGKILL it; its completed writes."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            str(path),
            str(SIZE),
            "naive" if naive else "atomic",
            str(baselines.__file__),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.12))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.stdout is not None
    completed = child.stdout.read().count("w\n")
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return completed


def test_killed_writes_leave_the_old_or_the_new_file(tmp_path: Path) -> None:
    path = baseline_path(tmp_path / "test_mod.py", "test_answer[long]")
    old, new = texts()
    write_baseline(path, old)
    rng = random.Random(6)
    completed = 0
    for _ in range(KILLS):
        completed += kill_mid_write(path, naive=False, rng=rng)
        stored = read_baseline(path)
        assert stored is not None
        assert stored in (old, new), f"truncated baseline of {len(stored):,} characters"
        # Leftover temporary files are never what the plugin reads.
        assert all(p.name.startswith(".") and p.suffix == ".tmp" for p in temp_files(path))
        assert {p.name for p in path.parent.iterdir()} - {p.name for p in temp_files(path)} == {
            path.name
        }
    assert completed > 0  # the writers really replaced the file between kills


def test_the_harness_catches_a_non_atomic_writer(tmp_path: Path) -> None:
    """Without the temporary file and rename, kills leave truncated baselines."""
    path = tmp_path / "baseline.txt"
    old, new = texts()
    path.write_text(old, encoding="utf-8")
    rng = random.Random(7)
    truncated = 0
    for _ in range(KILLS):
        kill_mid_write(path, naive=True, rng=rng)
        if path.read_text(encoding="utf-8", errors="replace") not in (old, new):
            truncated += 1
    assert truncated > 0


def test_stale_temporary_files_are_removed_by_the_next_write(tmp_path: Path) -> None:
    path = baseline_path(tmp_path / "test_mod.py", "test_answer")
    write_baseline(path, "first")
    stale = path.parent / f".{path.name}.killed.tmp"
    fresh = path.parent / f".{path.name}.inflight.tmp"
    other = path.parent / ".another_test.txt.killed.tmp"
    for leftover in (stale, fresh, other):
        leftover.write_text("half a baseline")
    past = time.time() - STALE_TEMP_S - 5
    os.utime(stale, (past, past))
    os.utime(other, (past, past))
    write_baseline(path, "second")
    assert read_baseline(path) == "second"
    assert not stale.exists()  # a killed write's leftover
    assert fresh.exists()  # may be another process's write in progress
    assert other.exists()  # another baseline's business
    assert remove_stale_temp_files(path, older_than=0) == 1
    assert temp_files(path) == []
