"""Request bodies and response envelopes go through orjson, falling back to `json`: the
bytes mean the same JSON, and a body is read exactly when `json` reads it."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rubric_judge.http_policy import chat_body
from pytest_rubric_judge.wire_json import json_bytes, read_json

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _no_surrogates(value: object) -> bool:
    if isinstance(value, str):
        return not any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, list):
        return all(_no_surrogates(v) for v in value)
    if isinstance(value, dict):
        return all(_no_surrogates(k) and _no_surrogates(v) for k, v in value.items())
    return True


@given(VALUES)
def test_a_value_is_written_as_json_reads_it_back(value: object) -> None:
    if _no_surrogates(value):
        assert json.loads(json_bytes(value)) == value
    else:  # as before: UTF-8 cannot carry a lone surrogate
        with pytest.raises(UnicodeEncodeError):
            json_bytes(value)


def test_what_orjson_refuses_is_written_by_json() -> None:
    value = {"big": 2**70, 3: "int key"}
    assert json.loads(json_bytes(value)) == {"big": 2**70, "3": "int key"}


@given(VALUES)
def test_an_envelope_reads_as_json_reads_it(value: object) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
        try:
            body = text.encode("utf-8")
        except UnicodeEncodeError:
            body = text.encode("utf-8", "surrogatepass")
        _same_as_json(body)


@given(st.binary(max_size=64) | st.text(max_size=64).map(lambda t: t.encode("utf-8", "replace")))
def test_any_bytes_are_read_or_refused_as_json_would(body: bytes) -> None:
    _same_as_json(body)


@pytest.mark.parametrize(
    "body",
    [b"NaN", b"1e400", b"\xef\xbb\xbf{}", b'{"a": 1, "a": 2}', b"[" * 5000 + b"]" * 5000, b""],
)
def test_the_edges_where_orjson_and_json_differ(body: bytes) -> None:
    _same_as_json(body)


def _same_as_json(body: bytes) -> None:
    try:
        expected = json.loads(body)
    except (ValueError, RecursionError) as error:
        with pytest.raises(type(error)):
            read_json(body)
        return
    got = read_json(body)
    assert _equal(got, expected)


def _equal(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(b, int) and not isinstance(b, bool) and abs(b) >= 2**64:
        return isinstance(a, (int, float))  # the one documented difference: over 64 bits
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def test_a_chat_body_holds_the_request_in_order() -> None:
    messages = [{"role": "system", "content": "Judge.\n"}, {"role": "user", "content": "é ✓"}]
    body = chat_body(messages, model="m", seed=3, response_format={"type": "json_object"}).decode(
        "utf-8"
    )
    assert list(json.loads(body)) == ["model", "temperature", "seed", "messages", "response_format"]
    assert json.loads(body)["messages"] == messages
    assert "é ✓" in body  # UTF-8 as is, not escaped
