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

from pytest_rubric_judge.testing import FakeJudge

pytest_plugins = ["pytester"]

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
        assert count >= 12
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
        if re.match(r"[-\s]*assert_meets_rubric", section):  # pointwise: one response
            assert re.search(r"criterion\s+weight\s+score\s+justification", section)
            assert re.search(r"^\s+weighted\s+\d\.\d{3}$", section, re.MULTILINE)
            continue
        assert re.search(r"criterion\s+weight\s+baseline\s+new\s+shorter justification", section)
        assert re.search(r"^\s+weighted\s+1\.00\s+\d\.\d{3}\s+\d\.\d{3}", section, re.MULTILINE)
    for name in _judged_tests(folder):
        assert re.search(rf"^PASS test_\w+\.py::{name}\b", first, re.MULTILINE), name
    # The structured examples' rubrics: a trajectory's tool use, a RAG answer's grounding.
    assert re.search(r"^\s+tool_use\s+\d\.\d\d\s+\d\s+\d\s", first, re.MULTILINE), first
    assert re.search(r"^\s+groundedness\s+\d\.\d\d\s+\d\s+\d\s", first, re.MULTILINE), first


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


# -- which judge the example suite uses -------------------------------------------------

#: What the end of a run says when the stand-in gave the verdicts.
STAND_IN_SUMMARY = "rubric judge: the verdicts of this run came from the offline stand-in"


@pytest.fixture
def example_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """The example suite (its conftest, ini, application, baselines and dinosaur tests)."""
    for name in ("conftest.py", "pytest.ini", "assistant.py", "test_dinosaurs.py"):
        shutil.copy(EXAMPLES / name, pytester.path / name)
    shutil.copytree(EXAMPLES / "judge_baselines", pytester.path / "judge_baselines")
    return pytester


def _models_in_cache(folder: Path) -> set[str]:
    from pytest_rubric_judge.cache import JudgeCache

    with JudgeCache(folder, "replay") as cache:
        return {str(entry.fields.get("model", entry.model)) for entry in cache.entries()}


def _no_stand_in(output: str) -> None:
    assert STAND_IN_LINE not in output and STAND_IN_SUMMARY not in output, output


def test_the_stand_in_says_so_at_the_end_too(example_suite: pytest.Pytester) -> None:
    result = example_suite.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert out.count(STAND_IN_SUMMARY) == 1, out
    # At the very end, after the rubric judge section, where -q still shows it.
    assert out.rindex(STAND_IN_SUMMARY) > out.rindex("judged assertions")


def test_a_judge_url_wins_over_the_stand_in(example_suite: pytest.Pytester, tmp_path: Path) -> None:
    with FakeJudge(model="configured-judge") as fake:
        result = example_suite.runpytest(
            f"--judge-url={fake.url}", f"--judge-cache-dir={tmp_path / 'cache'}"
        )
        assert fake.request_count > 0
    result.assert_outcomes(passed=3)
    _no_stand_in(result.stdout.str())
    assert _models_in_cache(tmp_path / "cache") == {"configured-judge"}


def test_a_judge_serve_command_wins_over_the_stand_in(
    example_suite: pytest.Pytester, tmp_path: Path
) -> None:
    command = (
        f"{sys.executable} -m pytest_rubric_judge.testing --port {{port}} "
        "--model served-judge --max-lifetime 120"
    )
    result = example_suite.runpytest(
        f"--judge-serve={command}", f"--judge-cache-dir={tmp_path / 'cache'}"
    )
    result.assert_outcomes(passed=3)
    _no_stand_in(result.stdout.str())
    assert _models_in_cache(tmp_path / "cache") == {"served-judge"}


def test_a_panel_wins_over_the_stand_in(example_suite: pytest.Pytester, tmp_path: Path) -> None:
    with FakeJudge(model="panel-judge") as fake:
        panel = f"panel-judge@{fake.url},panel-judge@{fake.url},panel-judge@{fake.url}"
        result = example_suite.runpytest(
            f"--judge-panel={panel}", f"--judge-cache-dir={tmp_path / 'cache'}"
        )
        assert fake.request_count > 0
    _no_stand_in(result.stdout.str())
    assert _models_in_cache(tmp_path / "cache") == {"panel-judge"}


def test_a_judge_from_another_hook_wins_over_the_stand_in(
    example_suite: pytest.Pytester, tmp_path: Path
) -> None:
    with FakeJudge(model="hook-judge") as fake:
        example_suite.makepyfile(
            own_judge=f"""
            from pytest_rubric_judge import Judge

            def pytest_rubric_judge_make_judge(config):
                return Judge({fake.url!r}, "hook-judge", cache_dir={str(tmp_path / "cache")!r})
            """
        )
        result = example_suite.runpytest("-p", "own_judge")
        assert fake.request_count > 0
    result.assert_outcomes(passed=3)
    _no_stand_in(result.stdout.str())
    assert _models_in_cache(tmp_path / "cache") == {"hook-judge"}


def test_the_replay_only_ci_job_installs_the_light_package() -> None:
    import yaml

    workflow = yaml.safe_load((EXAMPLES / "ci" / "judge.yml").read_text(encoding="utf-8"))
    steps = workflow["jobs"]["replay-cpu"]["steps"]
    installs = [step["run"] for step in steps if "pip install" in str(step.get("run", ""))]
    assert installs, steps
    for command in installs:
        assert "[dev]" not in command and "pytest-rubric-judge" in command, command
    runs = " ".join(str(step.get("run", "")) for step in steps)
    if " -n " in runs:  # -n needs pytest-xdist, which the light package does not bring
        assert any("pytest-xdist" in command for command in installs)


# -- the workflow example: locks, dry run, budget, diff ----------------------------------

WORKFLOW = EXAMPLES / "workflow"


def test_the_workflow_example_runs_as_its_readme_says(tmp_path: Path) -> None:
    """examples/workflow/run_workflow.py checks each step itself; its README's numbers are
    the ones it checks."""
    done = subprocess.run(
        [sys.executable, str(WORKFLOW / "run_workflow.py"), "--dir", str(tmp_path / "suite")],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S * 5,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "every step behaved as examples/workflow/README.md says" in out
    assert len(list((tmp_path / "suite" / "judge_rubrics").glob("*/*.yaml"))) == 7
    readme = (WORKFLOW / "README.md").read_text()
    for line in (
        "rubric locks: 7 rubric(s) locked in 7 lock file(s)",
        "rubric locks: 7 locked rubric(s) used from lock files, with no rubric request",
        "dry run: 0 judge calls cached, at least 16 would be asked",
        "judge budget: 4 of 4 requests spent, 0 left",
        "REGRESSED test_notre_dame.py::test_answer_not_worse[statue]",
    ):
        assert line in readme and line in out, line
    # The commands the README shows are the ones the script runs.
    for command in re.findall(r"^\$ (pytest .*|rubric-judge diff .*)$", out, re.MULTILINE):
        assert command in readme, command
    # The committed example suite was not touched.
    assert not (EXAMPLES / "judge_rubrics").exists()
