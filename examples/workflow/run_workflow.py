"""Rubric locks, a spend budget, a dry run and a run-to-run diff, end to end.

    python examples/workflow/run_workflow.py [--dir FOLDER]

Copies the example suite (examples/, without its caches) to a scratch folder and runs
there, one after the other, the commands of examples/workflow/README.md, printing each
command and the lines of its output that the step is about, and checking that each step
did what the README says. Offline: with no judge configured, the example suite's
conftest.py uses the FakeJudge stand-in. Exit status 0 when every step behaved, 1 (with
the step and its whole output) when one did not.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300
#: What each step prints of its output: the lines the step is about.
SHOWN = re.compile(
    r"^(rubric locks|rubric check|judge budget|dry run|ERROR |SKIPPED|\d+ judged assertions"
    r"|judge diff|.*regress|\d+ (passed|failed|skipped|errors?)\b)",
)


class StepFailed(Exception):
    """A step did not do what the README says."""


def environment() -> dict[str, str]:
    """The user's environment without any judge setting: the stand-in answers."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RUBRIC_JUDGE_", "OPENAI_", "PYTEST_"))
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(folder: Path, command: list[str], shown: str, *, status: int, expect: list[str]) -> str:
    """Run `command` in `folder` (shown as `$ shown`), check its exit status and that each
    of `expect` is in its output; print the lines the step is about."""
    print(f"\n$ {shown}")
    done = subprocess.run(
        command,
        cwd=folder,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    output = done.stdout + done.stderr
    for line in output.splitlines():
        if SHOWN.match(line) or command[2:3] == ["pytest_rubric_judge.cli"]:
            print(f"  {line}")
    print(f"  (exit status {done.returncode})")
    missing = [text for text in expect if text not in output]
    if done.returncode != status or missing:
        raise StepFailed(
            f"`{shown}` exited with {done.returncode} (expected {status})"
            + (f" and its output lacks {missing}" if missing else "")
            + f"; its output:\n{output}"
        )
    return output


def pytest(folder: Path, *args: str, status: int = 0, expect: list[str]) -> str:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]
    return run(folder, command, " ".join(["pytest", *args]), status=status, expect=expect)


def workflow(folder: Path) -> None:
    shutil.copytree(
        EXAMPLES,
        folder,
        ignore=shutil.ignore_patterns(
            "workflow",
            "judge_rubrics",
            ".rubric_judge_cache",
            ".pytest_cache",
            "__pycache__",
            "test_chat.py",
            "test_agent.py",
            "test_rag.py",
        ),
    )
    print(f"a scratch copy of the example suite: {folder}")

    # 1. Lock the rubrics the judge writes, one file per test.
    pytest(
        folder,
        "--judge-lock-rubrics",
        expect=["rubric locks: 7 rubric(s) locked in 7 lock file(s)", "8 passed"],
    )
    locks = sorted(path.relative_to(folder) for path in folder.glob("judge_rubrics/*/*.yaml"))
    print("\n$ ls judge_rubrics/*/")
    for path in locks:
        print(f"  {path}")
    if len(locks) != 7:
        raise StepFailed(f"expected 7 lock files, found {len(locks)}")
    shown = Path("judge_rubrics/test_dinosaurs/test_detailed_answer_is_preferred.yaml")
    print(f"\n$ cat {shown}")
    print("\n".join(f"  {line}" for line in (folder / shown).read_text().splitlines()))

    # 2. A run on an empty cache makes no rubric request: 16 requests, the passes only.
    pytest(
        folder,
        "--judge-cache-dir=.fresh_cache",
        expect=[
            "rubric locks: 7 locked rubric(s) used from lock files, with no rubric request",
            "8 judged assertions, 0 judge errors; 16 judge requests",
        ],
    )

    # 3. A dry run says what a run on another empty cache would ask, and asks nothing.
    pytest(
        folder,
        "--judge-cache-dir=.budget_cache",
        "--judge-dry-run",
        expect=["dry run: 0 judge calls cached, at least 16 would be asked", "8 skipped"],
    )

    # 4. A budget of 4 requests there: two comparisons, then one line per refused test.
    pytest(
        folder,
        "--judge-cache-dir=.budget_cache",
        "--judge-budget",
        "requests=4",
        status=1,
        expect=[
            "judge budget spent: 4 of 4 requests; raise --judge-budget",
            "judge budget: 4 of 4 requests spent, 0 left",
            "2 passed, 6 errors",
        ],
    )

    # 5. Two runs' reports, before and after a change to the application, and their diff.
    pytest(folder, "--judge-report=before.json", expect=["judge report: before.json"])
    assistant = folder / "assistant.py"
    before = "A golden statue of the Virgin Mary stands on top of the Main Building's gold dome."
    text = assistant.read_text()
    if before not in text:
        raise StepFailed("assistant.py no longer holds the statue answer this step changes")
    assistant.write_text(text.replace(before, "A statue."))
    print('\n$ # assistant.py: the statue answer is now "A statue."')
    pytest(
        folder,
        "--judge-report=after.json",
        status=1,
        expect=["FAIL test_notre_dame.py::test_answer_not_worse[statue]"],
    )
    cli = [sys.executable, "-m", "pytest_rubric_judge.cli", "diff", "before.json", "after.json"]
    run(
        folder,
        cli,
        "rubric-judge diff before.json after.json",
        status=0,
        expect=["test_notre_dame.py::test_answer_not_worse[statue]", "regress"],
    )
    run(
        folder,
        [*cli, "--fail-on-regression"],
        "rubric-judge diff before.json after.json --fail-on-regression",
        status=1,
        expect=["regress"],
    )
    # The same diff at the end of a run, failing it on the regression.
    pytest(
        folder,
        "--judge-compare-to=before.json",
        "--judge-fail-on-regression",
        status=1,
        expect=["rubric judge diff", "test_answer_not_worse[statue]"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", type=Path, help="where to copy the example suite (must not exist yet)"
    )
    args = parser.parse_args(argv)
    scratch = None if args.dir else Path(tempfile.mkdtemp(prefix="rubric-judge-workflow-"))
    folder = args.dir if args.dir else scratch / "examples"  # type: ignore[operator]
    try:
        workflow(folder)
    except StepFailed as failure:
        print(f"\nthe workflow did not behave: {failure}", file=sys.stderr)
        return 1
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    print("\nevery step behaved as examples/workflow/README.md says")
    return 0


if __name__ == "__main__":
    sys.exit(main())
