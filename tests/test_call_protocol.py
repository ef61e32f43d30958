"""The judge-call protocol (`CallCore.protocol`) driven by hand: it does no I/O, so each
rule of a call (cache first, one repair, the structured-output fallback, what counts as a
judge error, what the repair request re-sends) is checked step by step, with a real
SQLite-backed cache where the cache matters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_rubric_judge.cache import JudgeCache
from pytest_rubric_judge.calls import CallCore, drive_blocking
from pytest_rubric_judge.callspec import REPAIR_QUOTE_CHARS, Request
from pytest_rubric_judge.config import JudgeConfig
from pytest_rubric_judge.dialects import PROBE_ORDER
from pytest_rubric_judge.errors import (
    CacheMissError,
    JudgeNotConfiguredError,
    JudgeOutputError,
    JudgeUnavailableError,
)
from pytest_rubric_judge.http_policy import Completion
from pytest_rubric_judge.models import Rubric, Usage

RUBRIC_ANSWER = json.dumps(
    {
        "criteria": [
            {"name": "accuracy", "description": "Facts right.", "weight": 0.6, "type": "scale"},
            {"name": "clarity", "description": "Easy to read.", "weight": 0.4, "type": "scale"},
        ]
    }
)


def completion(text: str, *, retries: int = 0, finish: str = "stop") -> Completion:
    return Completion(
        text=text,
        usage=Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
        finish_reason=finish,
        latency_s=0.01,
        retries=retries,
        model="m",
    )


def core(tmp_path: Path | None = None, mode: str = "rw", **config: object) -> CallCore:
    cache = JudgeCache(tmp_path, mode) if tmp_path is not None else JudgeCache(None, "off")  # type: ignore[arg-type]
    return CallCore(JudgeConfig(model="m", **config), cache, model=lambda: "m", can_ask=True)  # type: ignore[arg-type]


def refused(status: int, said: str = "") -> JudgeUnavailableError:
    error = JudgeUnavailableError(f"HTTP {status}")
    error.status, error.cause, error.said = status, "status", said
    return error


def test_a_fresh_answer_is_one_request_and_is_stored(tmp_path: Path) -> None:
    judge = core(tmp_path)
    sent: list[Request] = []

    def send(request: Request) -> Completion:
        sent.append(request)
        return completion(RUBRIC_ANSWER)

    rubric, info = drive_blocking(judge.protocol(judge.rubric_spec("q", None)), send)
    assert isinstance(rubric, Rubric) and rubric.names == ("accuracy", "clarity")
    assert len(sent) == 1 and sent[0].response_format is not None
    assert not info.cached and info.usage.total_tokens == 15
    # The second time the cache answers: the protocol asks nothing.
    call = judge.protocol(judge.rubric_spec("q", None))
    with pytest.raises(StopIteration) as done:
        next(call)
    cached_rubric, cached_info = done.value.value
    assert cached_rubric == rubric and cached_info.cached
    assert judge.stats.as_dict()["requests"] == 1
    assert judge.stats.as_dict()["cache_hits"] == 1


def test_an_unreadable_answer_earns_one_repair_quoting_at_most_the_cap() -> None:
    judge = core()
    runaway = "no yaml here " * 50_000  # 650 kB
    call = judge.protocol(judge.rubric_spec("q", None))
    first = next(call)
    repair = call.send(completion(runaway))
    quoted = [m["content"] for m in repair.messages if runaway[:100] in str(m["content"])]
    assert quoted, "the repair request shows the judge what it wrote"
    assert all(len(text) < REPAIR_QUOTE_CHARS + 500 for text in quoted)
    assert (
        len(json.dumps(repair.messages)) < len(json.dumps(first.messages)) + 2 * REPAIR_QUOTE_CHARS
    )
    with pytest.raises(StopIteration) as done:
        call.send(completion(RUBRIC_ANSWER))
    rubric, info = done.value.value
    assert info.repaired and rubric.names == ("accuracy", "clarity")
    assert judge.stats.as_dict()["repairs"] == 1
    assert judge.stats.as_dict()["judge_errors"] == 0


def test_a_second_unreadable_answer_is_one_judge_error() -> None:
    judge = core()
    with pytest.raises(JudgeOutputError):
        drive_blocking(judge.protocol(judge.rubric_spec("q", None)), lambda _: completion("junk"))
    stats = judge.stats.as_dict()
    assert stats["judge_errors"] == 1 and stats["requests"] == 2 and stats["repairs"] == 1


def test_an_answer_cut_at_max_tokens_is_repaired_even_if_it_parses() -> None:
    judge = core()
    answers = iter([completion(RUBRIC_ANSWER, finish="length"), completion(RUBRIC_ANSWER)])
    _, info = drive_blocking(judge.protocol(judge.rubric_spec("q", None)), lambda _: next(answers))
    assert info.repaired


@pytest.mark.parametrize(
    ("status", "said", "dialects"),
    [
        # A server without structured output at all: straight to no constraint.
        (415, "", ["json_schema", None]),
        (501, "", ["json_schema", None]),
        # A refusal that names the request field: each dialect in turn, then none.
        (400, "response_format is not supported", [*PROBE_ORDER[:1], *PROBE_ORDER[2:], None]),
        (404, "unknown field json_schema", [*PROBE_ORDER[:1], *PROBE_ORDER[2:], None]),
        (422, "response_format: unknown variant", [*PROBE_ORDER[:1], *PROBE_ORDER[2:], None]),
        (
            500,
            "Input should be 'text' or 'json_object'",
            [*PROBE_ORDER[:1], *PROBE_ORDER[2:], None],
        ),
        # OpenAI's strict subset refuses the length bounds: the same form without them.
        (400, "'maxLength' is not permitted", [*PROBE_ORDER, None]),
    ],
)
def test_a_schema_refusal_falls_back_and_is_not_a_judge_error(
    status: int, said: str, dialects: list[str | None]
) -> None:
    judge = core(structured_output="auto")
    sent: list[Request] = []

    def send(request: Request) -> Completion:
        sent.append(request)
        if request.response_format is not None:
            raise refused(status, said)
        return completion(RUBRIC_ANSWER)

    drive_blocking(judge.protocol(judge.rubric_spec("q", None)), send)
    assert [_dialect_of(r.response_format) for r in sent] == dialects
    stats = judge.stats.as_dict()
    assert stats["judge_errors"] == 0
    assert stats["structured_fallbacks"] == len(dialects) - 1
    assert stats["requests"] == len(dialects)
    assert not judge.structured_wanted()  # for the rest of the session


def _dialect_of(response_format: dict[str, object] | None) -> str | None:
    """Which dialect a request's `response_format` is written in."""
    if response_format is None:
        return None
    kind = response_format["type"]
    if kind == "json_schema":
        return "json_schema" if "maxLength" in json.dumps(response_format) else "openai_strict"
    if kind == "json":
        return "tgi_json"
    return "json_object_schema" if "schema" in response_format else "json_object"


@pytest.mark.parametrize(
    ("status", "said"), [(400, "context length exceeded"), (404, "model m not found")]
)
def test_a_refusal_that_does_not_name_the_schema_is_an_error(status: int, said: str) -> None:
    judge = core(structured_output="auto")

    def send(request: Request) -> Completion:
        raise refused(status, said)

    with pytest.raises(JudgeUnavailableError):
        drive_blocking(judge.protocol(judge.rubric_spec("q", None)), send)
    assert judge.stats.as_dict()["structured_fallbacks"] == 0
    assert judge.dialects.current == "json_schema"


def test_a_confirmed_dialect_is_kept_when_one_request_is_refused() -> None:
    judge = core(structured_output="auto")
    drive_blocking(
        judge.protocol(judge.rubric_spec("q", None)), lambda _: completion(RUBRIC_ANSWER)
    )
    assert judge.dialects.confirmed

    def send(request: Request) -> Completion:
        raise refused(400, "schema too complex for this request")

    with pytest.raises(JudgeUnavailableError):
        drive_blocking(judge.protocol(judge.rubric_spec("q2", None)), send)
    assert judge.dialects.current == "json_schema"
    assert judge.stats.as_dict()["structured_fallbacks"] == 0


@pytest.mark.parametrize(("mode", "status"), [("json_schema", 501), ("auto", 500), ("auto", 401)])
def test_other_failures_do_not_fall_back(mode: str, status: int) -> None:
    judge = core(structured_output=mode)

    def send(request: Request) -> Completion:
        raise refused(status)

    with pytest.raises(JudgeUnavailableError):
        drive_blocking(judge.protocol(judge.rubric_spec("q", None)), send)
    assert judge.stats.as_dict()["judge_errors"] == 1
    assert judge.stats.as_dict()["structured_fallbacks"] == 0


def test_a_failed_request_counts_its_retries() -> None:
    judge = core()
    error = refused(503)
    error.retries = 3

    def send(request: Request) -> Completion:
        raise error

    with pytest.raises(JudgeUnavailableError):
        drive_blocking(judge.protocol(judge.rubric_spec("q", None)), send)
    stats = judge.stats.as_dict()
    assert stats["retries"] == 3 and stats["requests"] == 1 and stats["judge_errors"] == 1


def test_replay_without_the_answer_is_a_cache_miss_error(tmp_path: Path) -> None:
    judge = core(tmp_path, mode="replay")
    with pytest.raises(CacheMissError, match="replay mode has no cached judge answer"):
        next(judge.protocol(judge.rubric_spec("q", None)))
    assert judge.stats.as_dict()["judge_errors"] == 1


def test_no_client_and_no_cached_answer_is_not_configured() -> None:
    judge = CallCore(JudgeConfig(), JudgeCache(None, "off"), model=lambda: "", can_ask=False)
    with pytest.raises(JudgeNotConfiguredError, match="--judge-url"):
        next(judge.protocol(judge.rubric_spec("q", None)))


def test_schema_and_plain_answers_are_cached_apart(tmp_path: Path) -> None:
    judge = core(tmp_path)
    spec = judge.rubric_spec("q", None)
    assert spec.keyed(True)[0] != spec.keyed(False)[0]


def test_a_lone_surrogate_in_any_input_is_sent_as_a_replacement_character() -> None:
    """Text decoded with errors kept can hold a lone surrogate, which has no UTF-8 form: the
    comparison still runs (keys, prompts and the request body all see U+FFFD)."""
    from pytest_rubric_judge.judge import Judge
    from pytest_rubric_judge.testing import FakeJudge

    broken = "caf\udce9 au lait"
    with FakeJudge() as fake, Judge(fake.url, fake.model) as judge:
        verdict = judge.compare(f"Describe {broken}.", broken, "Coffee with milk.")
        grade = judge.grade(f"Describe {broken}.", broken)
    assert verdict.response_a == "caf\ufffd au lait"
    assert 0.0 <= grade.score <= 1.0
    assert any("\ufffd" in str(r.body) for r in fake.requests)


def test_a_request_that_never_reached_a_server_is_not_counted_as_sent() -> None:
    judge = core()
    error = JudgeUnavailableError("refused")
    error.cause, error.retries = "refused", 2

    def send(request: Request) -> Completion:
        raise error

    with pytest.raises(JudgeUnavailableError):
        drive_blocking(judge.protocol(judge.rubric_spec("q", None)), send)
    stats = judge.stats.as_dict()
    assert stats["requests"] == 0 and stats["retries"] == 2 and stats["judge_errors"] == 1
