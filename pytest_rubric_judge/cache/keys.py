"""Cache keys: the canonical JSON of everything that shapes a judge call's answer.

A key is the SHA-256 of the canonical JSON of the call's *key fields* (SPEC, "Cache
keys"): kind, protocol version, template hash, judge model, sampling parameters, prompt,
reference and, for a pass or a grading, the canonical rubric and the responses in slot
order. Two calls with the same fields would send the same request, so the stored answer
can stand in for a new one. API keys and headers never enter a key: a parameter whose
name looks like a credential, or a bearer string, is refused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

#: Sampling parameters that are floats by nature: an int value (``temperature=0``) is
#: stored as a float so that ``0`` and ``0.0`` give the same key.
_FLOAT_PARAMS: Final = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})
#: Sampling parameter names that are known not to be credentials.
_PLAIN_SAMPLING: Final = (
    frozenset({"temperature", "top_p", "max_tokens", "seed", "structured_output"}) | _FLOAT_PARAMS
)
#: Name parts that mark a value as a credential (matched per snake_case word).
_SECRET_WORDS: Final = frozenset(
    "apikey auth authorization bearer cookie cookies credential credentials header headers "
    "passwd password secret token".split()
)
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")


def canonical_json(value: object) -> str:
    """The one JSON spelling of `value` that keys are computed from.

    Sorted keys, no whitespace, UTF-8 kept as is, NaN and infinity refused: the same data
    always gives the same text, on every machine and Python version.
    Raises TypeError for values JSON cannot hold and ValueError for NaN or infinity.
    """
    return _CANONICAL.encode(value)


#: `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
#: allow_nan=False)`, with the encoder built once (it keeps no state between calls).
_CANONICAL: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def cache_key(fields: Mapping[str, object]) -> str:
    """The SHA-256 hex digest of the canonical JSON of `fields`."""
    return hashlib.sha256(canonical_json(dict(fields)).encode("utf-8", "surrogatepass")).hexdigest()


@functools.lru_cache(maxsize=1024)
def _looks_secret(name: str) -> bool:
    """Whether a parameter name names a credential (``api_key``, ``Authorization``, ...).

    Matched per word so that ``max_tokens`` is not mistaken for a ``token``. Remembered
    per name: every key scans the same few names.
    """
    words = _WORD_SPLIT.split(_CAMEL_BOUNDARY.sub("_", name).lower())
    if any(word in _SECRET_WORDS for word in words):
        return True
    return "_api_key_" in "_" + "_".join(words) + "_"


def _refuse_secrets(where: str, value: object, path: str = "") -> None:
    """Raise ValueError if `value` holds a credential-like name or a bearer string."""
    if isinstance(value, Mapping):
        for name, item in value.items():
            dotted = f"{path}.{name}" if path else str(name)
            if _looks_secret(str(name)):
                raise ValueError(
                    f"{where} parameter {dotted!r} looks like a credential; API keys and "
                    "headers are never part of a cache key"
                )
            _refuse_secrets(where, item, dotted)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_secrets(where, item, f"{path}[{index}]")
    elif isinstance(value, str) and value[:7].lower() == "bearer ":
        raise ValueError(
            f"{where} parameter {path!r} holds a bearer token; credentials are never part "
            "of a cache key"
        )


def _may_hold_secrets(sampling: Mapping[str, object]) -> bool:
    """Whether `_refuse_secrets` could find anything in `sampling`. It cannot when every
    name is a known sampling parameter (none of them looks like a credential) and every
    value a JSON scalar, no string a bearer token: the judge's own parameters, checked
    without the scan. Such parameters are also plain JSON as they are."""
    for name, value in sampling.items():
        if name not in _PLAIN_SAMPLING or (value is not None and type(value) not in _SCALARS):
            return True
        if type(value) is str and value[:7].lower() == "bearer ":
            return True
    return False


def _sampling(sampling: Mapping[str, object]) -> dict[str, object]:
    """Sampling parameters with float-natured ints made floats (see `_FLOAT_PARAMS`)."""
    result: dict[str, object] = {}
    for name, value in sampling.items():
        if name in _FLOAT_PARAMS and isinstance(value, int) and not isinstance(value, bool):
            result[name] = float(value)
        else:
            result[name] = value
    return result


def key_fields(**fields: Any) -> dict[str, object]:
    """The key fields alone; see `keyed_fields` for the arguments."""
    return keyed_fields(**fields)[1]


def keyed_fields(
    *,
    kind: Literal["rubric", "pass", "grade"],
    protocol_version: str,
    template_hash: str,
    model: str,
    sampling: Mapping[str, object],
    prompt: str,
    reference: str | None,
    rubric: list[dict[str, object]] | None = None,
    response_slot_a: str | None = None,
    response_slot_b: str | None = None,
    extra: Mapping[str, object] | None = None,
) -> tuple[str, dict[str, object]]:
    """The cache key of one judge call and its fields: everything that shapes the answer,
    as plain JSON data (SPEC, "Cache keys"). The key is `cache_key(fields)`, computed from
    the same canonical text in one go.

    `sampling` holds temperature, max_tokens, top_p, seed and whether structured output
    is on. A rubric call never sees responses, so it takes no rubric or responses; a pass
    needs the canonical rubric (`Rubric.canonical()`) and both responses in slot order.
    `extra` holds fields added later (a sample index, rubric size limits); it appears
    under ``"extra"`` only when given, so existing keys stay valid.

    The fields are exactly what `json.loads(canonical_json(...))` gives back, so an entry
    read from disk hashes to the same key. Raises ValueError for a credential-looking
    parameter, a value JSON cannot hold, or a rubric/response that does not fit `kind`.
    """
    if kind == "rubric":
        if rubric is not None or response_slot_a is not None or response_slot_b is not None:
            raise ValueError(
                "a rubric call never sees a rubric or responses; pass them only for kind='pass'"
            )
    elif kind == "pass":
        if rubric is None or response_slot_a is None or response_slot_b is None:
            raise ValueError("a pass needs the rubric and both responses in slot order")
    elif kind == "grade":
        if rubric is None or response_slot_a is None or response_slot_b is not None:
            raise ValueError("a grade needs the rubric and exactly one response (slot A)")
    else:
        raise ValueError(f"invalid cache key kind {kind!r}: expected 'rubric', 'pass' or 'grade'")
    scan = _may_hold_secrets(sampling)
    if scan and not (
        sampling.keys() <= _PLAIN_SAMPLING
        and not any(isinstance(v, str) for v in sampling.values())
    ):
        _refuse_secrets("sampling", sampling)  # (the judge's own parameters need no scan)
    fields: dict[str, object] = {
        "kind": kind,
        "protocol_version": protocol_version,
        "template_hash": template_hash,
        "model": model,
        "sampling": _sampling(sampling),
        "prompt": prompt,
        "reference": reference,
    }
    if kind == "pass":
        fields["rubric"] = rubric
        fields["response_slot_a"] = response_slot_a
        fields["response_slot_b"] = response_slot_b
    elif kind == "grade":
        fields["rubric"] = rubric
        fields["response_slot_a"] = response_slot_a
    try:
        if extra is not None:
            _refuse_secrets("extra", extra)
            fields["extra"] = json.loads(canonical_json(dict(extra)))  # tuples become lists
        if rubric is not None and not _plain_rubric(rubric):
            fields["rubric"] = json.loads(canonical_json(rubric))
        if scan and not _plain_rubric([fields["sampling"]]):
            fields["sampling"] = json.loads(canonical_json(fields["sampling"]))
        text = canonical_json(fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cache key fields must be finite JSON data: {exc}") from exc
    # Every value is now a str, None, a JSON scalar, or plain lists and dicts of them, so
    # `fields` equals json.loads(text) without reading it back.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(), fields


def _plain_rubric(rubric: object) -> bool:
    """Whether `rubric` is a list of dicts of str keys and JSON scalars (as `canonical()`
    gives), which JSON reads back as it is (also used for the sampling dict)."""
    return isinstance(rubric, list) and all(
        isinstance(item, dict)
        and all(
            isinstance(name, str) and (value is None or type(value) in _SCALARS)
            for name, value in item.items()
        )
        for item in rubric
    )


_SCALARS: Final = (str, int, float, bool)
