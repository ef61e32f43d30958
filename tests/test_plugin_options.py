"""Plugin options for samples, panels, structured output, several endpoints, --judge-serve."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator

import httpx
import pytest

from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge, FixedPolicy

pytest_plugins = ["pytester"]

SUITE = """
from pytest_rubric_judge import assert_preferred

def test_candidate(judge):
    assert_preferred("GOOD new answer", "old answer", prompt="What is new?")
"""


@pytest.fixture
def servers() -> Iterator[list[FakeJudge]]:
    started = [FakeJudge(model=f"judge-{i}").start() for i in range(3)]
    try:
        yield started
    finally:
        for server in started:
            server.stop()


def test_samples_option(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    pytester.makepyfile(SUITE)
    result = pytester.runpytest(*judge_args, "--judge-samples=3", "--judge-seed=7")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["PASS *test_candidate*votes 3-0*"])
    seeds = sorted(
        {r.body.get("seed") for r in fake_judge.requests if r.parsed and r.parsed.task == "pass"}
    )
    assert seeds == [7, 8, 9]


def test_panel_option(
    pytester: pytest.Pytester, servers: list[FakeJudge], tmp_path: object
) -> None:
    servers[0].policy = ByResponsePolicy("GOOD")
    servers[1].policy = ByResponsePolicy("GOOD")
    servers[2].policy = FixedPolicy("A>B", 5, 1)
    panel = ",".join(f"{s.model}@{s.url}" for s in servers)
    pytester.makepyfile(SUITE)
    result = pytester.runpytest(
        f"--judge-panel={panel}", "--judge-max-retries=0", "--judge-cache=off", "-rA"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*panel (majority, agreement 0.33*",
            "*judge-0: new preferred (B>A), consistent*",
            "*judge-2: tie (A=B), INCONSISTENT*",
            "PASS *test_candidate*panel agreement 0.33*",
        ]
    )
    assert [r.parsed.task for r in servers[1].requests if r.parsed] == ["pass", "pass"]


def test_bad_panel_and_strategy_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--judge-panel=just-a-model")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*panel member 'just-a-model' is not MODEL@URL*"])
    result = pytester.runpytest("--judge-panel-strategy=loudest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'loudest' is not one of majority, unanimous, mean_margin*"])


@pytest.mark.parametrize(
    "option", ["--judge-timeout=inf", "--judge-temperature=nan", "--judge-serve-timeout=1e999"]
)
def test_a_number_that_is_not_finite_is_a_usage_error(
    pytester: pytest.Pytester, option: str
) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*is not a finite number*"])


def test_structured_output_off(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    pytester.makepyfile(SUITE)
    pytester.runpytest(*judge_args, "--judge-structured-output=off").assert_outcomes(passed=1)
    assert all("response_format" not in r.body for r in fake_judge.requests if r.parsed)
    fake_judge.reset()
    fake_judge.policy = ByResponsePolicy("GOOD")
    pytester.runpytest(*judge_args, "--judge-cache=off").assert_outcomes(passed=1)
    assert all("response_format" in r.body for r in fake_judge.requests if r.parsed)


def test_several_urls_share_the_work(pytester: pytest.Pytester, servers: list[FakeJudge]) -> None:
    for server in servers:
        server.policy = ByResponsePolicy("GOOD")
    pytester.makepyfile(
        """
        import pytest
        from pytest_rubric_judge import assert_preferred

        @pytest.mark.parametrize("n", range(6))
        def test_many(judge, n):
            assert_preferred(f"GOOD {n}", "old", prompt=f"q{n}")
        """
    )
    result = pytester.runpytest(
        f"--judge-url={servers[0].url},{servers[1].url}",
        f"--judge-url={servers[2].url}",
        "--judge-model=judge-0",
        "--judge-cache=off",
    )
    result.assert_outcomes(passed=6)
    counts = [s.request_count for s in servers]
    assert sum(counts) == 18 and all(c > 0 for c in counts)


def test_judge_serve_starts_and_stops_the_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SUITE.replace("GOOD new answer", "a much longer, clearer answer about what is new")
    )
    log = pytester.path / "serve.log"
    command = f"{sys.executable} -m pytest_rubric_judge.testing --port {{port}} --max-lifetime 120"
    result = pytester.runpytest(
        f"--judge-serve={command}", f"--judge-serve-log={log}", "--judge-cache=off", "-s"
    )
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "rubric judge: judge server ready at http://127.0.0.1:" in out
    port = re.search(r"ready at http://127\.0\.0\.1:(\d+)/v1", out)
    assert port is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port.group(1)}/health", timeout=2)


def test_judge_serve_early_exit_errors_every_judged_test_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SUITE
        + """
def test_second(judge):
    assert_preferred("GOOD", "old", prompt="again")
"""
    )
    command = f"{sys.executable} -c \"import sys; print('model not found {{port}}'); sys.exit(2)\""
    result = pytester.runpytest(f"--judge-serve={command}")
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    assert out.count("JudgeServerError: the judge server exited with status 2") >= 2
    assert "model not found" in out
    assert out.count("starting ") == 1  # started once, not once per test


def test_judge_serve_needs_the_port_placeholder(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--judge-serve=vllm serve model")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*must contain {port}*"])


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGKILL"])
def test_interrupted_run_leaves_no_server(tmp_path: object, signal_name: str) -> None:
    """Ctrl-C (SIGINT) stops the server through pytest's teardown; a killed pytest
    (SIGKILL, no teardown at all) takes it down through the parent-death signal."""
    import signal
    import subprocess
    import time
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "test_slow.py").write_text(
        "import time\n\ndef test_slow(judge):\n    judge.rubric('q')\n    time.sleep(60)\n"
    )
    command = f"{sys.executable} -m pytest_rubric_judge.testing --port {{port}} --max-lifetime 120"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUBRIC_JUDGE_", "OPENAI_"))}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-s",
            "-p",
            "no:cacheprovider",
            f"--judge-serve={command}",
            "--judge-cache=off",
            "test_slow.py",
        ],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    port = None
    deadline = time.monotonic() + 60
    while port is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        found = re.search(r"ready at http://127\.0\.0\.1:(\d+)/v1", line)
        port = found.group(1) if found else None
    assert port is not None, "the judge server never became ready"
    time.sleep(0.5)  # the test is now inside its sleep
    process.send_signal(getattr(signal, signal_name))
    process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        except httpx.ConnectError:
            return
        time.sleep(0.2)
    pytest.fail(f"the judge server on port {port} outlived the {signal_name}ed pytest run")
