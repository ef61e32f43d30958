"""A batch collects the young generation less often, and leaves the thresholds as it found them."""

from __future__ import annotations

import gc
import threading

from pytest_rubric_judge import Judge
from pytest_rubric_judge.loops import BATCH_GC_THRESHOLD, fewer_collections
from pytest_rubric_judge.testing import FakeJudge, HeuristicPolicy
from pytest_rubric_judge.testing.reading import ParsedRequest


def test_thresholds_are_raised_while_held_and_restored_by_the_last_holder() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] == max(BATCH_GC_THRESHOLD, before[0])
        with fewer_collections():  # a second batch at the same time
            pass
        assert gc.get_threshold()[0] == max(BATCH_GC_THRESHOLD, before[0])
    assert gc.get_threshold() == before


def test_a_batch_runs_with_raised_thresholds_and_restores_them() -> None:
    seen: list[int] = []
    lock = threading.Lock()
    heuristic = HeuristicPolicy()

    def policy(request: ParsedRequest) -> str:
        with lock:
            seen.append(gc.get_threshold()[0])  # the fake judge runs in this process
        return heuristic(request)

    before = gc.get_threshold()
    rows = [
        {"prompt": f"Question {i}?", "response_A": f"Answer {i}.", "response_B": "No idea."}
        for i in range(6)
    ]
    with FakeJudge(policy=policy) as fake, Judge(fake.url, fake.model, cache_mode="off") as judge:
        results = list(judge.compare_many(rows, concurrency=4))
    assert len(results) == 6 and all(r.verdict is not None for r in results)
    assert seen and all(value >= BATCH_GC_THRESHOLD for value in seen)
    assert gc.get_threshold() == before
