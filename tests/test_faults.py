"""Server faults, end to end: `Judge.compare` against a misbehaving fake judge on 127.0.0.1.

Every case ends in a verdict after retries or in a `JudgeError` that names the cause, within
a bounded time, and its retries are counted. Backoff goes through the client's injectable
`sleep`, so the delays the policy chose are recorded and no test really waits for them.
The first request of a comparison is the rubric request and the two passes follow it, so a
fault queued before `compare` always hits the rubric request.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_rubric_judge import Judge, JudgeOutputError
from pytest_rubric_judge.client import ChatClient
from pytest_rubric_judge.errors import JudgeError, JudgeUnavailableError
from pytest_rubric_judge.models import Verdict
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

pytest_plugins = ["pytester"]

PROMPT = "What is the capital of France?"
WEAK = "I think it is Lyon."
GOOD = "Paris is the capital of France. GOOD"
#: No fault case may take longer than this, retries and timeouts included.
BOUND_S = 5.0


class Sleeps(list[float]):
    """A `sleep` that records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake() -> Iterator[FakeJudge]:
    with FakeJudge(ByResponsePolicy("GOOD")) as server:
        yield server


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_judge(fake: FakeJudge, sleeps: Sleeps) -> Iterator[Callable[..., Judge]]:
    """Judges on the fake server (or `url`) whose client records its backoff sleeps."""
    made: list[Judge] = []

    def make(url: str | None = None, **client_options: Any) -> Judge:
        options: dict[str, Any] = {
            "timeout": 5.0,
            "max_retries": 2,
            "backoff_base": 0.05,
            "sleep": sleeps,
            **client_options,
        }
        client = ChatClient(url or fake.url, **options)
        judge = Judge(url or fake.url, fake.model, client=client)
        made.append(judge)
        return judge

    yield make
    for judge in made:
        judge.close()


def compare(judge: Judge) -> Verdict:
    return judge.compare(PROMPT, WEAK, GOOD)


def assert_good_verdict(verdict: Verdict) -> None:
    assert verdict.preference == "B>A" and verdict.consistent


def judge_error(judge: Judge) -> tuple[JudgeError, float]:
    """The JudgeError a comparison raises, and how long it took to give up."""
    started = time.perf_counter()
    with pytest.raises(JudgeError) as caught:
        compare(judge)
    return caught.value, time.perf_counter() - started


def free_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- connection refused, timeout, reset ---------------------------------------------------


def test_connection_refused_is_unavailable_after_bounded_retries(
    make_judge: Callable[..., Judge], sleeps: Sleeps
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    judge = make_judge(url)
    error, elapsed = judge_error(judge)
    assert isinstance(error, JudgeUnavailableError)
    assert "refused the connection after 3 attempts" in str(error)
    assert "is the server running?" in str(error)
    assert error.retries == 2 and len(sleeps) == 2
    assert judge.stats.judge_errors == 1
    assert elapsed < BOUND_S


def test_hanging_server_times_out_and_names_the_option(
    fake: FakeJudge, make_judge: Callable[..., Judge]
) -> None:
    fake.fault("hang", times=2)
    judge = make_judge(timeout=0.3, max_retries=1)
    error, elapsed = judge_error(judge)
    assert isinstance(error, JudgeUnavailableError)
    assert "no answer within 0.3s (timeout) after 2 attempts" in str(error)
    assert "--judge-timeout" in str(error)
    assert error.retries == 1
    assert elapsed < BOUND_S


def test_one_hang_then_an_answer_is_a_verdict(
    fake: FakeJudge, make_judge: Callable[..., Judge]
) -> None:
    fake.fault("hang")
    judge = make_judge(timeout=0.3, max_retries=1)
    started = time.perf_counter()
    assert_good_verdict(compare(judge))
    assert time.perf_counter() - started < BOUND_S
    assert judge.stats.retries == 1


def test_reset_mid_body_is_retried_then_a_verdict(
    fake: FakeJudge, make_judge: Callable[..., Judge]
) -> None:
    fake.fault("reset")
    judge = make_judge()
    assert_good_verdict(compare(judge))
    assert judge.stats.retries == 1
    assert fake.request_count == 4  # the reset rubric request, its retry, two passes


def test_reset_on_every_attempt_is_unavailable(
    fake: FakeJudge, make_judge: Callable[..., Judge]
) -> None:
    fake.fault("reset", times=3)
    error, elapsed = judge_error(make_judge())
    assert isinstance(error, JudgeUnavailableError)
    assert "closed or reset the connection before answering after 3 attempts" in str(error)
    assert error.retries == 2
    assert elapsed < BOUND_S


# -- rate limits and server errors ----------------------------------------------------------


def test_429_retry_after_is_honoured(
    fake: FakeJudge, make_judge: Callable[..., Judge], sleeps: Sleeps
) -> None:
    fake.fail(429, retry_after=7)
    judge = make_judge()
    assert_good_verdict(compare(judge))
    assert sleeps == [7.0]
    assert judge.stats.retries == 1


def test_429_retry_after_is_capped(
    fake: FakeJudge, make_judge: Callable[..., Judge], sleeps: Sleeps
) -> None:
    fake.fail(429, retry_after=3600)
    judge = make_judge(retry_after_max=2.5)
    assert_good_verdict(compare(judge))
    assert sleeps == [2.5]


def test_429_without_retry_after_backs_off_with_jitter(
    fake: FakeJudge, make_judge: Callable[..., Judge], sleeps: Sleeps
) -> None:
    fake.fail(429, times=3)
    judge = make_judge(max_retries=3, backoff_base=1.0, backoff_max=3.0)
    assert_good_verdict(compare(judge))
    assert len(sleeps) == 3
    # full jitter: uniform in [0, min(backoff_max, base * 2**attempt)]
    for attempt, delay in enumerate(sleeps):
        assert 0.0 <= delay <= min(3.0, 2.0**attempt)
    assert judge.stats.retries == 3


def test_429_on_every_attempt_says_rate_limited(
    fake: FakeJudge, make_judge: Callable[..., Judge]
) -> None:
    fake.fail(429, times=3, retry_after=1)
    error, elapsed = judge_error(make_judge())
    assert "HTTP 429 Too Many Requests after 3 attempts" in str(error)
    assert "rate limiting" in str(error)
    assert error.retries == 2
    assert elapsed < BOUND_S


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_is_retried_then_a_verdict(
    fake: FakeJudge, make_judge: Callable[..., Judge], sleeps: Sleeps, status: int
) -> None:
    fake.fail(status, times=2)
    judge = make_judge(max_retries=2, backoff_base=0.5, backoff_max=0.75)
    assert_good_verdict(compare(judge))
    assert judge.stats.retries == 2
    assert fake.request_count == 5  # two failures, the rubric, two passes
    assert len(sleeps) == 2 and all(0.0 <= delay <= 0.75 for delay in sleeps)


@pytest.mark.parametrize(
    ("status", "phrase"),
    [(500, "Internal Server Error"), (502, "Bad Gateway"), (503, "Service Unavailable")],
)
def test_server_error_on_every_attempt_is_unavailable(
    fake: FakeJudge, make_judge: Callable[..., Judge], status: int, phrase: str
) -> None:
    fake.fail(status, times=3)
    judge = make_judge(max_retries=2)
    error, elapsed = judge_error(judge)
    assert isinstance(error, JudgeUnavailableError)
    assert f"HTTP {status} {phrase} after 3 attempts" in str(error)
    assert "check its logs or try later" in str(error)
    assert error.retries == 2
    assert fake.request_count == 3  # bounded: no request beyond max_retries + 1
    assert judge.stats.judge_errors == 1
    assert elapsed < BOUND_S


def test_retries_of_a_request_that_finally_failed_are_counted(
    fake: FakeJudge, make_judge: Callable[..., Judge]
) -> None:
    """The error carries its retries; the judge's totals must include them too."""
    fake.fail(503, times=3)
    judge = make_judge(max_retries=2)
    error, _ = judge_error(judge)
    assert error.retries == 2
    assert judge.stats.retries == 2
    assert judge.stats.requests == 1
    assert judge.stats.judge_errors == 1


# -- bodies that are not chat completions ---------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "cause"),
    [("non_json", "a body that is not JSON"), ("no_choices", "a body without `choices`")],
)
def test_malformed_body_is_unavailable_without_retrying(
    fake: FakeJudge, make_judge: Callable[..., Judge], fault: str, cause: str
) -> None:
    fake.fault(fault)  # type: ignore[arg-type]
    error, elapsed = judge_error(make_judge())
    assert isinstance(error, JudgeUnavailableError)
    assert cause in str(error) and "OpenAI-compatible" in str(error)
    assert fake.request_count == 1  # a wrong endpoint does not heal by asking again
    assert elapsed < BOUND_S


def test_malformed_body_after_retries_carries_them(
    fake: FakeJudge, make_judge: Callable[..., Judge]
) -> None:
    fake.fail(503)
    fake.fault("no_choices")
    error, _ = judge_error(make_judge())
    assert "without `choices`" in str(error)
    assert error.retries == 1


# -- empty and truncated answers: parse errors, one repair request --------------------------


def test_empty_content_earns_a_repair_request_then_a_verdict(
    fake: FakeJudge, make_judge: Callable[..., Judge]
) -> None:
    fake.fault("empty")
    judge = make_judge()
    assert_good_verdict(compare(judge))
    assert judge.stats.repairs == 1
    repair = fake.requests[1].body["messages"]
    assert repair[-2] == {"role": "assistant", "content": ""}
    assert "answer is empty" in repair[-1]["content"]


def test_empty_content_twice_is_an_output_error(
    fake: FakeJudge, make_judge: Callable[..., Judge]
) -> None:
    fake.fault("empty", times=2)
    judge = make_judge()
    error, elapsed = judge_error(judge)
    assert isinstance(error, JudgeOutputError)
    assert "could not be read after one repair request: answer is empty" in str(error)
    assert error.raw == ""
    assert fake.request_count == 2
    assert elapsed < BOUND_S


def test_truncated_answer_repair_hints_at_max_tokens_then_verdict(
    fake: FakeJudge, make_judge: Callable[..., Judge]
) -> None:
    fake.fault("truncated")
    judge = make_judge()
    assert_good_verdict(compare(judge))
    assert judge.stats.repairs == 1
    repair = fake.requests[1].body["messages"][-1]["content"]
    assert "cut off at max_tokens; raise --judge-max-tokens" in repair


def test_truncated_answer_twice_is_an_output_error_naming_the_option(
    fake: FakeJudge, make_judge: Callable[..., Judge]
) -> None:
    fake.fault("truncated", times=2)
    error, elapsed = judge_error(make_judge())
    assert isinstance(error, JudgeOutputError)
    assert "raise --judge-max-tokens" in str(error)
    assert elapsed < BOUND_S


def _rubric_cut_at_a_criterion_boundary(_: object) -> str:
    """A rubric answer whose first half alone is a valid two-criterion rubric."""
    head = "criteria:\n" + "".join(
        f"- name: {name}\n  description: Whether it is {name}.\n  weight: 0.25\n  type: scale\n"
        for name in ("accuracy", "completeness")
    )
    tail_start = "- name: clarity\n  description: "
    tail_end = "\n  weight: 0.5\n  type: scale\n"
    padding = "x" * (len(head) - len(tail_start) - len(tail_end))
    text = head + tail_start + padding + tail_end
    assert text[: len(text) // 2] == head
    return text


def test_truncated_answer_that_still_parses_is_not_accepted(
    fake: FakeJudge, make_judge: Callable[..., Judge]
) -> None:
    """An answer cut at max_tokens may parse and silently lose its last criteria."""
    fake.script(_rubric_cut_at_a_criterion_boundary)
    fake.fault("truncated")
    judge = make_judge()
    rubric = judge.rubric(PROMPT)
    # The cut answer was refused and the repair request answered in full.
    assert judge.stats.repairs == 1
    assert fake.request_count == 2
    assert rubric.names != ("accuracy", "completeness")
    assert judge.stats.judge_errors == 0


# -- the run's report counts retries ----------------------------------------------------------


def test_pytest_report_counts_retries(pytester: pytest.Pytester, fake: FakeJudge) -> None:
    pytester.makeconftest(
        f"""
        from pytest_rubric_judge import Judge
        from pytest_rubric_judge.client import ChatClient

        def pytest_rubric_judge_make_judge(config):
            client = ChatClient({fake.url!r}, max_retries=2, backoff_base=0.01)
            return Judge({fake.url!r}, {fake.model!r}, client=client)
        """
    )
    pytester.makepyfile(
        f"""
        from pytest_rubric_judge import assert_preferred

        def test_new_is_better(judge):
            assert_preferred({GOOD!r}, {WEAK!r}, prompt={PROMPT!r})
        """
    )
    fake.fail(503, times=2)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*1 judged assertion, 0 judge errors; 3 judge requests (2 retries*"]
    )
