"""Several judge endpoints: least outstanding requests, and failover when one stops."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from pytest_rubric_judge import Judge, JudgeUnavailableError
from pytest_rubric_judge.client import ChatClient
from pytest_rubric_judge.endpoints import MultiClient, split_urls
from pytest_rubric_judge.testing import FakeJudge

CRITERIA = [{"name": "accuracy", "weight": 1.0}]
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def pair() -> Iterator[tuple[FakeJudge, FakeJudge]]:
    with FakeJudge() as first, FakeJudge() as second:
        yield first, second


def test_split_urls() -> None:
    assert split_urls("http://a/v1, http://b/v1,") == ["http://a/v1", "http://b/v1"]
    with pytest.raises(ValueError):
        split_urls(" , ")


def test_least_outstanding_sends_less_to_the_slow_replica(
    pair: tuple[FakeJudge, FakeJudge],
) -> None:
    fast, slow = pair
    slow.latency = 0.4
    fast.latency = 0.02
    multi = MultiClient([ChatClient(fast.url, max_retries=0), ChatClient(slow.url, max_retries=0)])
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: multi.complete(MESSAGES, model="fake-judge"), range(40)))
    served = multi.served()
    assert sum(served.values()) == 40
    assert served[fast.url] > 3 * served[slow.url] > 0
    multi.close()


def test_failover_when_an_endpoint_stops(pair: tuple[FakeJudge, FakeJudge]) -> None:
    first, second = pair
    url = f"{first.url},{second.url}"
    with Judge(url, "fake-judge", max_retries=0, timeout=5) as judge:
        judge.compare("q", "a", "b", criteria=CRITERIA)
        first.stop()
        started = time.monotonic()
        for index in range(4):
            verdict = judge.compare("q", f"a{index}", "b", criteria=CRITERIA)
            assert verdict.forward.call.raw  # answered by the remaining endpoint
        assert time.monotonic() - started < 10
        assert isinstance(judge.client, MultiClient)
        assert judge.client.served()[second.url] >= 8


def test_all_endpoints_down_is_a_judge_error(pair: tuple[FakeJudge, FakeJudge]) -> None:
    first, second = pair
    url = f"{first.url},{second.url}"
    first.stop()
    second.stop()
    with Judge(url, "fake-judge", max_retries=0, timeout=2) as judge:
        with pytest.raises(JudgeUnavailableError, match="every judge endpoint failed"):
            judge.compare("q", "a", "b", criteria=CRITERIA)


def test_client_errors_are_not_failed_over(pair: tuple[FakeJudge, FakeJudge]) -> None:
    first, second = pair
    first.fail(400, body='{"error": {"message": "bad request"}}')
    second.fail(400, body='{"error": {"message": "bad request"}}')
    multi = MultiClient(
        [ChatClient(first.url, max_retries=0), ChatClient(second.url, max_retries=0)]
    )
    with pytest.raises(JudgeUnavailableError, match="400"):
        multi.complete(MESSAGES, model="fake-judge")
    assert first.request_count + second.request_count == 1
