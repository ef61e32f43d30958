"""Batches and the judge's background loop run on the loop `RUBRIC_JUDGE_EVENT_LOOP` chooses:
uvloop's where it is installed, asyncio's on request; a wrong value is a clear error."""

from __future__ import annotations

import asyncio
import sys

import pytest

from pytest_rubric_judge import Judge
from pytest_rubric_judge.loops import LOOP_ENV, LoopThread, loop_factory, run_loop
from pytest_rubric_judge.testing import FakeJudge

uvloop = pytest.importorskip("uvloop")

ROWS = [
    {"prompt": f"Question {i}?", "response_A": f"Answer {i}, with reasons.", "response_B": "No."}
    for i in range(5)
]


async def _loop_kind() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


@pytest.fixture
def counted_uvloop(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """uvloop's loop factory, counting the loops it makes."""
    made: list[int] = []
    real = uvloop.new_event_loop

    def counting() -> asyncio.AbstractEventLoop:
        made.append(1)
        return real()

    monkeypatch.setattr(uvloop, "new_event_loop", counting)
    return made


def test_uvloop_by_default_and_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOOP_ENV, raising=False)
    assert run_loop(_loop_kind()) == "uvloop"
    for value in ("asyncio", " AsyncIO "):
        monkeypatch.setenv(LOOP_ENV, value)
        assert run_loop(_loop_kind()) == "asyncio"
    monkeypatch.setenv(LOOP_ENV, "uvloop")
    assert run_loop(_loop_kind()) == "uvloop"


def test_a_background_loop_is_uvloop_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOOP_ENV, raising=False)
    assert LoopThread("test-loop").run(_loop_kind()) == "uvloop"


def test_a_value_it_does_not_know_names_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOOP_ENV, "trio")
    with pytest.raises(
        ValueError, match=r"RUBRIC_JUDGE_EVENT_LOOP='trio'.*uvloop, asyncio or auto"
    ):
        loop_factory()


def test_uvloop_insisted_on_but_missing_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    monkeypatch.setenv(LOOP_ENV, "uvloop")
    with pytest.raises(ValueError, match="pip install uvloop"):
        loop_factory()
    monkeypatch.delenv(LOOP_ENV)
    assert loop_factory() is asyncio.new_event_loop  # auto falls back quietly


@pytest.mark.parametrize("choice", ["auto", "asyncio"])
def test_a_batch_gives_the_same_verdicts_on_either_loop(
    choice: str, monkeypatch: pytest.MonkeyPatch, counted_uvloop: list[int]
) -> None:
    monkeypatch.setenv(LOOP_ENV, choice)
    with FakeJudge() as fake, Judge(fake.url, fake.model, cache_mode="off") as judge:
        results = list(judge.compare_many(ROWS, concurrency=4))
    assert [r.verdict.preference if r.verdict else None for r in results] == ["A>B"] * 5
    assert len(counted_uvloop) == (1 if choice == "auto" else 0)


def test_a_bad_value_fails_the_batch_with_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOOP_ENV, "fast")
    with FakeJudge() as fake, Judge(fake.url, fake.model, cache_mode="off") as judge:
        with pytest.raises(ValueError, match="RUBRIC_JUDGE_EVENT_LOOP='fast'"):
            list(judge.compare_many(ROWS, concurrency=2))
