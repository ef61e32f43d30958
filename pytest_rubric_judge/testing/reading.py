"""Reading a judge request back into its parts, the way the fake judge sees it.

A real judge reads the request's text; so does this reader, and it trusts only what the
protocol makes unforgeable: a block of untrusted text begins with a marker carrying a
random code and ends only at the end marker with that same code (see
`pytest_rubric_judge.prompts.block`). A response that contains text shaped like a marker
therefore stays inside its block, and a rubric forged inside the prompt block is not
mistaken for the real one, which is the last rubric before the first response.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import yaml

from ..loading import safe_load

__all__ = ["ParsedRequest", "chat_messages", "message_text", "read_request"]

_BEGIN_RE = re.compile(r"<<begin (?P<tag>[A-Za-z_]+) (?P<code>[0-9a-f]{8,64})>>\n")
_RUBRIC_HEADING = "The rubric:\n```yaml\n"
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class ParsedRequest:
    """What a judge request contains, read back from its messages."""

    #: "rubric", "pass" or "grade" (then the one response is `response_a`); a request
    #: that is none of these reads as "rubric".
    task: str
    prompt: str
    reference: str | None
    #: The rubric the request carries, as plain data; None for a rubric request.
    rubric: dict[str, object] | None
    response_a: str | None
    response_b: str | None
    #: True for a repair request (the conversation has a second user message).
    repair: bool
    #: The system message, for policies that answer requests of other tools too.
    system: str = ""
    #: The request's sampling `seed` (None when it sent none): each sample of a sampled
    #: judgment has its own, so a policy may decide per sample.
    seed: int | None = None


def _blocks(text: str) -> dict[str, tuple[int, str]]:
    """The fenced blocks of `text` by tag (the first of each), with their start offsets."""
    found: dict[str, tuple[int, str]] = {}
    position = 0
    while (match := _BEGIN_RE.search(text, position)) is not None:
        end = f"\n<<end {match['tag']} {match['code']}>>"
        stop = text.find(end, match.end())
        if stop < 0:
            break
        found.setdefault(match["tag"], (match.start(), text[match.end() : stop]))
        position = stop + len(end)
    return found


@functools.lru_cache(maxsize=256)
def _load_rubric(text: str) -> object:
    """Every pass on a prompt carries the same rubric text: read it once."""
    return safe_load(text, _SAFE_LOADER)


def _rubric_before(user: str, offset: int) -> dict[str, object] | None:
    start = user.rfind(_RUBRIC_HEADING, 0, offset)
    if start < 0:
        return None
    body = start + len(_RUBRIC_HEADING)
    loaded = _load_rubric(user[body : user.find("```", body)])
    return copy.deepcopy(loaded) if isinstance(loaded, dict) else None


def read_request(messages: Sequence[Mapping[str, str]], seed: object = None) -> ParsedRequest:
    """Read the messages of a judge request (rubric, pass, grade or a repair of one);
    `seed` is the body's `seed`, kept when it is a whole number."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    if "TASK: compare" in system:
        task, first_response = "pass", "response_A"
    elif "TASK: grade" in system:
        task, first_response = "grade", "response"
    else:
        task, first_response = "rubric", ""
    blocks = _blocks(user)
    rubric = _rubric_before(user, blocks[first_response][0]) if first_response in blocks else None

    def text_of(tag: str) -> str | None:
        return blocks[tag][1] if tag in blocks else None

    return ParsedRequest(
        task=task,
        prompt=text_of("prompt") or "",
        reference=text_of("reference"),
        rubric=rubric,
        response_a=text_of("response" if task == "grade" else "response_A"),
        response_b=text_of("response_B"),
        repair=sum(1 for m in messages if m["role"] == "user") > 1,
        system=system,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
    )


def message_text(content: object) -> str | None:
    """A message's text: a string, or the joined text of OpenAI content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        if all(isinstance(text, str) for text in texts):
            return "".join(text for text in texts if isinstance(text, str))
    return None


def chat_messages(body: Mapping[str, object]) -> list[dict[str, str]] | None:
    """The `messages` of a chat-completion body as role and text; None if malformed."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    found: list[dict[str, str]] = []
    for message in messages:
        if not isinstance(message, dict):
            return None
        role, text = message.get("role"), message_text(message.get("content"))
        if not isinstance(role, str) or text is None:
            return None
        found.append({"role": role, "content": text})
    return found
