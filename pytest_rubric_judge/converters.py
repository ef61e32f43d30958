"""Converters from common agent-framework exports to the chat messages the judge takes.

`split_conversation` cuts one whole conversation into the prompt and the response;
`from_langchain` and `from_responses_items` read LangChain messages and OpenAI Responses
API items (what the OpenAI Agents SDK's `result.to_input_list()` gives) by duck typing,
without importing either library.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from .inputs import Message, plain_message

__all__ = ["from_langchain", "from_responses_items", "split_conversation"]


def split_conversation(messages: Sequence[Message]) -> tuple[list[Message], list[Message]]:
    """A whole conversation split into the prompt (up to and including the last user
    message) and the response (what the assistant did after it)."""
    items = list(messages)
    last = max(
        (i for i, m in enumerate(items) if plain_message(m, "a message").get("role") == "user"),
        default=-1,
    )
    if last < 0:
        raise ValueError("the conversation has no user message to split at")
    if last == len(items) - 1:
        raise ValueError("the conversation ends with a user message: there is no response")
    return items[: last + 1], items[last + 1 :]


_LANGCHAIN_ROLES: Final = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "HumanMessageChunk": "user",
    "AIMessageChunk": "assistant",
    "SystemMessageChunk": "system",
    "ToolMessageChunk": "tool",
}
#: Content blocks LangChain keeps beside what the judge reads: a provider's copy of the
#: tool calls (already in `tool_calls`) and the model's hidden reasoning.
_LANGCHAIN_DROPPED: Final = frozenset({"tool_use", "thinking", "redacted_thinking", "reasoning"})


def _langchain_content(content: object) -> object:
    """A LangChain message's content without the blocks the judge does not read."""
    if isinstance(content, list):
        return [
            part
            for part in content
            if not (isinstance(part, Mapping) and part.get("type") in _LANGCHAIN_DROPPED)
        ]
    return content


def from_langchain(messages: Iterable[Any]) -> list[dict[str, Any]]:
    """LangChain messages (`HumanMessage`, `AIMessage` with `tool_calls`, `ToolMessage`,
    `SystemMessage`) as OpenAI-format chat messages. Read by duck typing: LangChain is
    not imported."""
    converted: list[dict[str, Any]] = []
    for number, message in enumerate(messages, 1):
        kind = getattr(message, "type", None)
        role = _LANGCHAIN_ROLES.get(str(kind))
        if kind == "chat":  # a ChatMessage carries its role
            role = str(getattr(message, "role", ""))
        if role is None:
            raise ValueError(
                f"LangChain message {number} has type {kind!r}; expected human, ai, system or tool"
            )
        content = _langchain_content(getattr(message, "content", ""))
        item: dict[str, Any] = {"role": role, "content": content}
        calls = getattr(message, "tool_calls", None) or []
        if calls:
            item["tool_calls"] = [
                {
                    "id": call.get("id") or f"call_{index}",
                    "type": "function",
                    "function": {
                        "name": call.get("name"),
                        "arguments": json.dumps(
                            call.get("args", {}), ensure_ascii=False, default=str
                        ),
                    },
                }
                for index, call in enumerate(calls, 1)
            ]
        if role == "tool":
            item["tool_call_id"] = getattr(message, "tool_call_id", "?")
        converted.append(item)
    return converted


def from_responses_items(items: Iterable[Any]) -> list[dict[str, Any]]:
    """OpenAI Responses API items (what the OpenAI Agents SDK's `result.to_input_list()`
    gives: messages, `function_call` and `function_call_output`) as chat messages."""
    converted: list[dict[str, Any]] = []
    for number, raw in enumerate(items, 1):
        item = plain_message(raw, f"item {number}")
        kind = item.get("type", "message")
        if kind == "message":
            content = _responses_content(item.get("content", ""))
            converted.append({"role": item.get("role", "assistant"), "content": content})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id") or item.get("id") or f"call_{number}",
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
            }
            last = converted[-1] if converted else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                converted.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output", "")
            if not isinstance(output, str) and not _is_content(output):
                output = json.dumps(output, ensure_ascii=False, default=str)
            converted.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id", "?"),
                    "content": _responses_content(output),
                }
            )
        elif kind == "reasoning":
            continue  # the model's hidden reasoning is not part of what it did
        else:
            raise ValueError(
                f"item {number} has type {kind!r}; expected message, function_call, "
                "function_call_output or reasoning"
            )
    return converted


def _is_content(value: object) -> bool:
    """Whether `value` is a list of typed content parts (text, images)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(part, Mapping) and isinstance(part.get("type"), str) for part in value)
    )


def _responses_content(content: object) -> object:
    """Responses API content parts as the judge reads them: a refusal is its text."""
    if not isinstance(content, list):
        return content
    return [
        {"type": "text", "text": part["refusal"]}
        if isinstance(part, Mapping)
        and part.get("type") == "refusal"
        and isinstance(part.get("refusal"), str)
        else part
        for part in content
    ]
