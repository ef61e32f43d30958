"""The example suite runs on a machine with no judge configured, and replays from its cache.

examples/ is copied to a temporary folder (without any cache) and run twice with
`python -m pytest`, as a user would run it, with every judge setting removed from the
environment: the first run asks the offline stand-in, the second answers from the cache.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STAND_IN_LINE = "rubric judge: no judge configured, so verdicts come from an offline stand-in"
TIMEOUT_S = 120


def _clean_env() -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RUBRIC_JUDGE_", "OPENAI_", "PYTEST_"))
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--color=no"],
        cwd=folder,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _judged_tests(folder: Path) -> list[str]:
    """Names of the example tests, from their definitions (parametrized ones by base name)."""
    names: list[str] = []
    for module in sorted(folder.glob("test_*.py")):
        names += re.findall(r"^def (test_\w+)\(", module.read_text(), re.MULTILINE)
    return names


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    folder = tmp_path_factory.mktemp("examples") / "examples"
    shutil.copytree(
        EXAMPLES,
        folder,
        ignore=shutil.ignore_patterns(".rubric_judge_cache", ".pytest_cache", "__pycache__"),
    )
    first, second = _run(folder), _run(folder)
    for result in (first, second):
        assert result.returncode == 0, result.stdout + result.stderr
    return folder, first.stdout, second.stdout


def _collected(output: str) -> int:
    match = re.search(r"collected (\d+) items", output)
    assert match, output
    return int(match.group(1))


def test_all_pass_with_one_stand_in_line(runs: tuple[Path, str, str]) -> None:
    _, first, second = runs
    for output in (first, second):
        count = _collected(output)
        assert count >= 8
        assert re.search(rf"^=+ {count} passed in ", output, re.MULTILINE), output
        assert output.count(STAND_IN_LINE) == 1, output
        header = output.split("collected", 1)[0]
        assert STAND_IN_LINE in header
        assert "RUBRIC_JUDGE_BASE_URL" in header and "--judge-url" in header


def test_every_judged_test_shows_its_criterion_table(runs: tuple[Path, str, str]) -> None:
    folder, first, _ = runs
    sections = first.split("Captured rubric judge call")[1:]
    assert len(sections) == _collected(first)
    for section in sections:
        assert re.search(r"criterion\s+weight\s+baseline\s+new\s+shorter justification", section)
        assert re.search(r"^\s+weighted\s+1\.00\s+\d\.\d{3}\s+\d\.\d{3}", section, re.MULTILINE)
    for name in _judged_tests(folder):
        assert re.search(rf"^PASS test_\w+\.py::{name}\b", first, re.MULTILINE), name


def test_first_run_asks_the_judge_and_second_replays_the_cache(
    runs: tuple[Path, str, str],
) -> None:
    folder, first, second = runs
    totals = re.compile(r"(\d+) judged assertions, 0 judge errors; (\d+) judge requests")
    first_totals, second_totals = totals.search(first), totals.search(second)
    assert first_totals and second_totals, first + second
    assertions = int(first_totals.group(1))
    assert assertions == _collected(first)
    assert int(first_totals.group(2)) > 0
    assert second_totals.group(1) == str(assertions)
    assert second_totals.group(2) == "0"
    assert f"{assertions} judged assertions, 0 judge errors; 0 judge requests" in second
    assert (folder / ".rubric_judge_cache").is_dir()
    # Nothing was written to the committed baselines: every test had one.
    assert "baselines:" not in first + second
