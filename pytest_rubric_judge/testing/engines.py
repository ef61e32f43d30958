"""How real inference servers answer a `response_format` they do not take, acted out by
the fake judge (`FakeJudge(engine=...)`), so that every structured-output dialect and
every refusal can be tested without the servers themselves.

The refusals copy the status and the shape of each server's answer: llama-cpp-python's
server validates the request with pydantic and answers HTTP 500 with the validation
message; TGI rejects an unknown `type` while deserializing the body (HTTP 422); a server
without structured output at all answers 501 or ignores the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["ENGINES", "Engine", "engine_refusal"]


@dataclass(frozen=True)
class Engine:
    """Which `response_format` shapes an engine takes, and how it refuses the others."""

    #: (type, has "schema", has "json_schema", has "value") of the accepted shapes.
    accepts: frozenset[tuple[str, bool, bool, bool]]
    status: int
    message: str

    def takes(self, response_format: object) -> bool:
        if response_format is None:
            return True
        if not isinstance(response_format, dict):
            return False
        shape = (
            str(response_format.get("type")),
            "schema" in response_format,
            "json_schema" in response_format,
            "value" in response_format,
        )
        return shape in self.accepts


_JSON_SCHEMA = ("json_schema", False, True, False)
_JSON_OBJECT = ("json_object", False, False, False)
_JSON_OBJECT_SCHEMA = ("json_object", True, False, False)
_TGI = ("json", False, False, True)

#: The engines the fake judge can act out. None of them is a complete emulation: only
#: what each does with `response_format` is copied.
ENGINES: dict[str, Engine] = {
    "openai": Engine(frozenset({_JSON_SCHEMA, _JSON_OBJECT}), 400, "Invalid response_format"),
    "llama-cpp-python": Engine(
        frozenset({_JSON_OBJECT, _JSON_OBJECT_SCHEMA}),
        500,
        "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
        "'msg': \"Input should be 'text' or 'json_object'\"}]",
    ),
    "tgi": Engine(
        frozenset({_TGI}),
        422,
        "Failed to deserialize the JSON body into the target type: response_format: "
        "unknown variant `json_schema`, expected `json` or `regex`",
    ),
    "plain": Engine(frozenset(), 501, "structured output is not implemented"),
}


def engine_refusal(engine: str, body: dict[str, Any]) -> tuple[int, bytes] | None:
    """The status and JSON body with which `engine` refuses this request's
    `response_format`; None when it takes it."""
    found = ENGINES[engine]
    if found.takes(body.get("response_format")):
        return None
    error = {"message": found.message, "type": "invalid_request_error", "code": found.status}
    return found.status, json.dumps({"error": error}).encode()
