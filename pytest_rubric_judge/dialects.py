"""Structured-output dialects: how each kind of server is asked to constrain its answer.

Servers agree on the JSON Schema of an answer but not on the request field that carries
it. `shape` builds the `response_format` for one dialect; `auto` mode tries them in
`PROBE_ORDER` and keeps the first one the endpoint accepts (`next_dialect`,
`rejects_format`). The dialect in use is part of every cache key (`key_value`): an answer
written under one constraint is not reused under another.

- `json_schema`: `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`,
  the OpenAI form: vLLM, SGLang, llama.cpp's llama-server, Ollama, LM Studio.
- `openai_strict`: the same without `maxLength`, for OpenAI's strict subset; tried only
  after `json_schema` was refused for `maxLength`.
- `json_object_schema`: `{"type": "json_object", "schema": ...}`: llama-cpp-python's
  server (it answers `json_schema` with HTTP 500), llama-server.
- `tgi_json`: `{"type": "json", "value": ...}`: Hugging Face TGI.
- `json_object`: `{"type": "json_object"}`: JSON mode without a schema.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Literal

Dialect = Literal["json_schema", "openai_strict", "json_object_schema", "tgi_json", "json_object"]
#: The order in which `auto` tries dialects; after the last, answers are not constrained.
PROBE_ORDER: tuple[Dialect, ...] = (
    "json_schema",
    "openai_strict",
    "json_object_schema",
    "tgi_json",
    "json_object",
)
DIALECTS: frozenset[str] = frozenset(PROBE_ORDER)

#: Statuses with which a server says it implements no `response_format` at all: no other
#: dialect is tried.
NOT_IMPLEMENTED = frozenset({415, 501})
#: Statuses that refuse a dialect when the body names the field or its contents
#: (llama-cpp-python answers an unknown `type` with 500 and a validation message).
REFUSED_WHEN_NAMED = frozenset({400, 404, 422, 500})
_NAMES_FORMAT = re.compile(
    r"response_format|json_schema|json_object|schema|grammar|guided|maxlength|"
    r"unknown variant|structured output",
    re.IGNORECASE,
)

#: `maxLength` of the free-text fields: a small model cannot run to max_tokens inside a
#: string, and a bounded answer is a bounded cost.
TEXT_BOUNDS = {"description": 200, "justification": 300, "overall_justification": 600}


def names_format(said: str | None) -> bool:
    """Whether an error body speaks of the structured-output request."""
    return bool(said) and _NAMES_FORMAT.search(said or "") is not None


def rejects_format(status: int | None, said: str | None) -> bool:
    """Whether a final HTTP status (with the server's message) refuses the constraint."""
    if status in NOT_IMPLEMENTED:
        return True
    return status in REFUSED_WHEN_NAMED and names_format(said)


def next_dialect(failed: Dialect, status: int | None, said: str | None) -> Dialect | None:
    """The dialect to try after `failed` was refused; None: ask without a constraint."""
    if status in NOT_IMPLEMENTED:
        return None
    index = PROBE_ORDER.index(failed) + 1
    if failed == "json_schema" and "maxlength" not in (said or "").lower():
        index += 1  # openai_strict only helps a server that refused the length bounds
    return PROBE_ORDER[index] if index < len(PROBE_ORDER) else None


def key_value(dialect: Dialect | None) -> bool | str:
    """What a cache key records of the constraint: False (none), True (`json_schema`,
    as keys always recorded it) or the dialect's name."""
    if dialect is None:
        return False
    return True if dialect == "json_schema" else dialect


def _unbounded(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _unbounded(v) for k, v in schema.items() if k != "maxLength"}
    if isinstance(schema, list):
        return [_unbounded(v) for v in schema]
    return schema


def shape(dialect: Dialect, name: str, schema: dict[str, Any]) -> dict[str, object]:
    """The `response_format` of `dialect` for `schema` (the callers memoize it, so that the
    same object, and its JSON text, serve every request with the same schema)."""
    if dialect == "openai_strict":
        dialect, schema = "json_schema", _unbounded(schema)
    if dialect == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        }
    if dialect == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if dialect == "tgi_json":
        return {"type": "json", "value": schema}
    return {"type": "json_object"}


class DialectState:
    """The dialect one judge uses, shared by its concurrent calls.

    `auto` starts with the first of `PROBE_ORDER`; each refusal moves the judge on once,
    however many requests in flight were refused in the same dialect, until a dialect
    has been answered in (then it is kept for the session) or none is left (answers are
    then not constrained). A fixed mode keeps its dialect; `off` has none.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.current: Dialect | None = (
            None
            if mode == "off"
            else PROBE_ORDER[0]
            if mode == "auto"
            else next(d for d in PROBE_ORDER if d == mode)
        )
        #: Whether the server has answered a request in `current`.
        self.confirmed = False
        #: The dialects the server refused, with the status it gave.
        self.refusals: dict[str, str] = {}
        self._lock = threading.Lock()

    def refused(self, dialect: Dialect, status: int | None, said: str | None) -> bool:
        """Note that the server refused `dialect`; True when that moved the judge on."""
        with self._lock:
            if self.current != dialect or self.confirmed:
                return False
            self.current = next_dialect(dialect, status, said)
            self.refusals[dialect] = f"HTTP {status}"
            return True

    def answered(self, dialect: Dialect | None) -> None:
        """A request in `dialect` was answered: it works for the session."""
        if dialect is not None and not self.confirmed:
            with self._lock:
                if dialect == self.current:
                    self.confirmed = True

    def fallbacks(self, dialect: Dialect | None) -> list[Dialect | None]:
        """The dialects `auto` could still move to from `dialect` (then none), while no
        dialect is confirmed; [] once one is, or for a fixed mode."""
        if self.mode != "auto" or self.confirmed or dialect is None:
            return []
        return [*PROBE_ORDER[PROBE_ORDER.index(dialect) + 1 :], None]

    def summary(self) -> str:
        """For reports: the dialect, whether it is confirmed, and what was refused."""
        if self.current is None:
            text = "off" if self.mode == "off" else "none (answers not constrained)"
        elif self.confirmed:
            text = self.current
        else:
            text = f"{self.current} (no constrained answer yet)"
        if self.refusals:
            refused = ", ".join(f"{d} ({why})" for d, why in self.refusals.items())
            text += f"; refused: {refused}"
        return text
