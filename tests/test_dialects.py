"""Structured-output dialects: `auto` finds the form each kind of server takes, remembers
it, names it in the summary, and a second run is served from the cache.

The servers are the fake judge acting out each engine's refusals (`testing.engines`),
over real HTTP; tests/test_llama_cpp_server.py does the same against the real
llama-cpp-python server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rubric_judge import Judge, JudgeUnavailableError
from pytest_rubric_judge.dialects import (
    PROBE_ORDER,
    TEXT_BOUNDS,
    DialectState,
    names_format,
    next_dialect,
    rejects_format,
    shape,
)
from pytest_rubric_judge.models import Rubric
from pytest_rubric_judge.schemas import grade_format, pass_format, rubric_format
from pytest_rubric_judge.testing import FakeJudge
from pytest_rubric_judge.testing.engines import ENGINES

pytest_plugins = ["pytester"]

CRITERIA = [
    {"name": "accuracy", "weight": 0.7},
    {"name": "cites_source", "weight": 0.3, "type": "binary"},
]

#: The dialect `auto` ends with on each engine, and how many dialects it was refused.
EXPECTED = {
    "openai": ("json_schema", 0),
    "llama-cpp-python": ("json_object_schema", 1),
    "tgi": ("tgi_json", 2),
    "plain": ("off", 1),
}


def _formats(server: FakeJudge) -> list[Any]:
    return [r.body.get("response_format") for r in server.requests]


@pytest.mark.parametrize("engine", sorted(EXPECTED))
def test_auto_finds_the_dialect_each_engine_takes_and_a_rerun_is_cached(
    engine: str, tmp_path: Path
) -> None:
    dialect, refusals = EXPECTED[engine]
    with FakeJudge(engine=engine) as server:
        # Retries allowed: a refusal must still cost one request, not four.
        with Judge(server.url, server.model, cache_dir=str(tmp_path), max_retries=3) as judge:
            verdict = judge.compare("Name three primes.", "No idea.", "2, 3 and 5.")
            judge.compare("Name three primes.", "2, 3, 5", "7, 11 and 13 are prime.")
            stats = judge.stats.as_dict()
            assert judge.structured_dialect == dialect
            summary = judge.structured_summary
        assert verdict.consistent
        assert stats["judge_errors"] == 0 and stats["retries"] == 0
        assert stats["structured_fallbacks"] == refusals
        # One rubric and four passes, plus one request per refused dialect.
        assert server.request_count == 5 + refusals
        sent = _formats(server)
        # Everything after the probe is in the dialect found.
        assert all(ENGINES[engine].takes(f) for f in sent[refusals + 1 :])
        if dialect == "off":
            assert sent[-1] is None and summary.startswith("none")
        else:
            assert summary.startswith(dialect)
        if refusals:
            assert "refused: json_schema (HTTP" in summary

        # A second run, same cache: every answer is found, in whichever dialect it was
        # written; the server is not asked even to find the dialect again.
        with Judge(server.url, server.model, cache_dir=str(tmp_path)) as again:
            cached = again.compare("Name three primes.", "No idea.", "2, 3 and 5.")
            assert (cached.preference, cached.margin) == (verdict.preference, verdict.margin)
            assert again.stats.as_dict()["requests"] == 0
        assert server.request_count == 5 + refusals


def test_llama_cpp_python_500_is_a_refusal_not_an_outage(tmp_path: Path) -> None:
    """Its HTTP 500 names response_format: not retried, and the next dialect is asked."""
    with FakeJudge(engine="llama-cpp-python") as server:
        with Judge(server.url, server.model, max_retries=3, cache_dir=str(tmp_path)) as judge:
            judge.rubric("q")
        first, second = _formats(server)
        assert first["type"] == "json_schema"
        assert second["type"] == "json_object" and second["schema"]["required"] == ["criteria"]


def test_a_500_that_does_not_name_the_schema_is_retried(fake_judge: FakeJudge) -> None:
    fake_judge.fail(500, times=2, body=json.dumps({"error": {"message": "CUDA out of memory"}}))
    with Judge(fake_judge.url, fake_judge.model, max_retries=3) as judge:
        judge.rubric("q")
        assert judge.stats.as_dict()["retries"] == 2
        assert judge.structured_dialect == "json_schema"


def test_a_fixed_dialect_is_sent_and_its_refusal_is_an_error_naming_the_fix() -> None:
    with FakeJudge(engine="llama-cpp-python") as server:
        with Judge(
            server.url, server.model, structured_output="json_object_schema", max_retries=0
        ) as judge:
            judge.rubric("q")
        assert _formats(server)[0]["type"] == "json_object"
        with Judge(server.url, server.model, structured_output="json_schema") as judge:
            with pytest.raises(JudgeUnavailableError) as raised:
                judge.rubric("q")
        message = str(raised.value)
        assert "HTTP 500" in message and "--judge-structured-output=auto" in message
        assert server.request_count == 2  # the refusal was not retried


def test_the_summary_names_the_dialect(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pytester.makepyfile(
        """
        from pytest_rubric_judge import assert_not_worse

        def test_not_worse(judge):
            assert_not_worse("2, 3 and 5.", "No idea.", prompt="Name three primes.")
        """
    )
    cache = tmp_path_factory.mktemp("cache")
    with FakeJudge(engine="llama-cpp-python") as server:
        result = pytester.runpytest(
            f"--judge-url={server.url}", f"--judge-model={server.model}",
            f"--judge-cache-dir={cache}", "-p", "no:cacheprovider",
        )  # fmt: skip
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*judge structured output: json_object_schema; refused: json_schema (HTTP 500)*"]
    )


# -- the schemas ----------------------------------------------------------------------------


def _strings(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every string-typed node of a JSON Schema, with where it is."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(schema, dict):
        if schema.get("type") == "string":
            found.append((path, schema))
        for key, value in schema.items():
            found.extend(_strings(value, f"{path}/{key}"))
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found.extend(_strings(value, f"{path}/{index}"))
    return found


RUBRIC = Rubric.of(CRITERIA, source="user")


@pytest.mark.parametrize("dialect", [d for d in PROBE_ORDER if d not in ("openai_strict",)])
def test_every_free_text_field_is_bounded(dialect: str) -> None:
    formats = [rubric_format(2, 8, dialect), pass_format(RUBRIC, dialect)]  # type: ignore[arg-type]
    formats.append(grade_format(RUBRIC, dialect))  # type: ignore[arg-type]
    if dialect == "json_object":
        assert all(f == {"type": "json_object"} for f in formats)
        return
    for response_format in formats:
        strings = _strings(response_format)
        assert strings
        for where, node in strings:
            if "enum" in node:
                continue
            assert 0 < node.get("maxLength", 0) <= max(TEXT_BOUNDS.values()), where


def test_openai_strict_is_the_same_schema_without_length_bounds() -> None:
    bounded = pass_format(RUBRIC, "json_schema")
    strict = pass_format(RUBRIC, "openai_strict")
    assert "maxLength" not in json.dumps(strict)
    assert json.dumps(strict).replace(" ", "") != json.dumps(bounded).replace(" ", "")
    assert strict["type"] == bounded["type"] == "json_schema"


def test_every_dialect_carries_the_same_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}}
    assert shape("json_schema", "n", schema)["json_schema"]["schema"] == schema  # type: ignore[index]
    assert shape("json_object_schema", "n", schema) == {"type": "json_object", "schema": schema}
    assert shape("tgi_json", "n", schema) == {"type": "json", "value": schema}
    assert shape("json_object", "n", schema) == {"type": "json_object"}


# -- the probe, for any sequence of refusals --------------------------------------------------

_STATUSES = st.sampled_from([400, 401, 404, 415, 422, 429, 500, 501, 503])
_SAID = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["response_format unknown", "'maxLength' is not permitted", "", "oops"]),
)


@given(st.lists(st.tuples(_STATUSES, _SAID), max_size=20))
def test_the_probe_ends_and_only_moves_forward(refusals: list[tuple[int, str]]) -> None:
    state = DialectState("auto")
    seen = [state.current]
    for status, said in refusals:
        current = state.current
        if current is None:
            break
        moved = state.refused(current, status, said)
        assert moved == (state.current != current)
        if moved:
            before = PROBE_ORDER.index(current)
            after = len(PROBE_ORDER) if state.current is None else PROBE_ORDER.index(state.current)
            assert after > before
            seen.append(state.current)
    assert len(seen) <= len(PROBE_ORDER) + 1
    assert len(set(seen)) == len(seen)  # no dialect is tried twice


@given(st.one_of(st.none(), st.text()), st.integers(min_value=0, max_value=999))
def test_refusal_rules_never_fail(said: str | None, status: int) -> None:
    refused = rejects_format(status, said)
    assert refused == (
        status in (415, 501) or (status in (400, 404, 422, 500) and names_format(said))
    )
    if refused:
        for dialect in PROBE_ORDER:
            following = next_dialect(dialect, status, said)
            assert following is None or PROBE_ORDER.index(following) > PROBE_ORDER.index(dialect)


def test_a_confirmed_dialect_is_not_given_up() -> None:
    state = DialectState("auto")
    state.answered("json_schema")
    assert not state.refused("json_schema", 400, "response_format: schema too deep")
    assert state.current == "json_schema"
    assert state.fallbacks("json_schema") == []


def test_fixed_modes_and_off() -> None:
    assert DialectState("off").current is None
    assert DialectState("tgi_json").current == "tgi_json"
    assert DialectState("tgi_json").fallbacks("tgi_json") == []
    assert DialectState("auto").fallbacks("json_schema") == [*PROBE_ORDER[1:], None]
