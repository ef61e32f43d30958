"""Shared fixtures: a fake judge server on 127.0.0.1 and pytester helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pytest_rubric_judge.testing import FakeJudge


@pytest.fixture(autouse=True)
def _clean_judge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No judge configuration leaks in from the environment of whoever runs the tests."""
    for name in list(os.environ):
        if name.startswith(("RUBRIC_JUDGE_", "OPENAI_")):
            monkeypatch.delenv(name)


@pytest.fixture
def fake_judge() -> Iterator[FakeJudge]:
    """A fresh fake judge server (heuristic policy) for one test."""
    with FakeJudge() as server:
        yield server


@pytest.fixture
def judge_args(fake_judge: FakeJudge, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Command-line options pointing a pytester run at the fake judge and a private cache."""
    cache = tmp_path_factory.mktemp("judge-cache")
    return [
        f"--judge-url={fake_judge.url}",
        f"--judge-model={fake_judge.model}",
        f"--judge-cache-dir={cache}",
        "--judge-max-retries=0",
        "--judge-timeout=10",
    ]


#: The ways the plugin's integration tests run: without an -n flag, with -n 0 (xdist loaded,
#: no workers), with two workers, and with xdist disabled altogether.
XDIST_MODES: dict[str, list[str]] = {
    "plain": [],
    "n0": ["-n", "0"],
    "n2": ["-n", "2"],
    "no-xdist": ["-p", "no:xdist"],
}


@pytest.fixture(params=list(XDIST_MODES))
def xdist_args(request: pytest.FixtureRequest) -> list[str]:
    """Extra pytester arguments for each xdist mode in turn."""
    return list(XDIST_MODES[request.param])
