"""A tool-using agent, judged on its whole trajectory: tool calls, tool results, answer.

A response may be a list of messages in the OpenAI format: assistant messages with
`tool_calls` and `tool` messages with the results. The judge's rubric then gets a
`tool_use` criterion beside the ones on the final answer. The new agent looks the order up
once and answers from the result; the baseline calls the same tool twice with the same
arguments and answers vaguely. Trajectories of other frameworks convert with
`from_langchain` and `from_responses_items`.
"""

from __future__ import annotations

import json
from typing import Any

from pytest_rubric_judge import Judge, assert_preferred

PROMPT = "Where is my order 8812? It was due yesterday."
RESULT = '{"order_id": "8812", "status": "in transit", "carrier": "DHL", "eta": "tomorrow"}'


def call(call_id: str, name: str, **arguments: str) -> dict[str, Any]:
    """An assistant message that calls one tool."""
    function = {"name": name, "arguments": json.dumps(arguments)}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call_id, "type": "function", "function": function}],
    }


def result(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


# In your suite: the messages your agent produced for PROMPT, e.g. this release's and the
# last one's.
NEW = [
    call("c1", "track_order", order_id="8812"),
    result("c1", RESULT),
    {
        "role": "assistant",
        "content": "Order 8812 is in transit with DHL and is now due tomorrow. Sorry it is late.",
    },
]
BASELINE = [
    call("c1", "track_order", order_id="8812"),
    result("c1", RESULT),
    call("c2", "track_order", order_id="8812"),  # the same call again: needless
    result("c2", RESULT),
    {"role": "assistant", "content": "It is on its way."},
]


def test_agent_uses_its_tool_once_and_answers_from_it(judge: Judge) -> None:
    assert_preferred(NEW, BASELINE, prompt=PROMPT, judge=judge)
