"""Reading a judge request back into its parts, the way the fake judge sees it.

A real judge reads the request's text; so does this reader, and it trusts only what the
protocol makes unforgeable: a block of untrusted text begins with a marker carrying a
random code and ends only at the end marker with that same code (see
`pytest_rubric_judge.prompts.block`). A response that contains text shaped like a marker
therefore stays inside its block, and a rubric forged inside the prompt block is not
mistaken for the real one, which is the last rubric before the first response.

A block may hold a structured input (a conversation, a trajectory, retrieved documents):
then each message, tool call, tool result, document and image starts at a header line
carrying the block's own code, `<<message 2 user CODE>>`. `ParsedRequest.structure` splits
a block at those headers only: a line shaped like a header with any other code (written
by a tool result or a document) is text of the part it sits in.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import yaml

from ..loading import safe_load

__all__ = [
    "BlockStructure",
    "ParsedRequest",
    "StructuredMessage",
    "ToolCall",
    "ToolResult",
    "chat_messages",
    "message_text",
    "read_request",
    "split_block",
]

_BEGIN_RE = re.compile(r"<<begin (?P<tag>[A-Za-z_]+) (?P<code>[0-9a-f]{8,64})>>\n")
_RUBRIC_HEADING = "The rubric:\n```yaml\n"
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_HEADER_RE = re.compile(r"<<(?P<head>[^\n]+) (?P<code>[0-9a-f]{8,64})>>")
_MESSAGE_RE = re.compile(
    r"message (?P<number>\d+) (?P<role>[a-z]+)(?: result of call (?P<call>\S+))?"
)
_TOOL_CALL_RE = re.compile(
    r"tool call \d+ of message (?P<number>\d+): (?P<name>\S+) id (?P<id>\S+)"
)
_IMAGE_PARTS = ("image_url", "input_image")
#: The tag of each field of a request read back, by task ("grade" has one response).
_FIELD_TAGS = {"prompt": "prompt", "reference": "reference", "response_b": "response_B"}


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
    #: How many image parts the request's messages carry.
    images: int = 0
    #: The code of each block read (by tag), so a structured block can be split at the
    #: header lines that carry it (`structure`).
    codes: dict[str, str] = field(default_factory=dict)

    def structure(self, name: str) -> BlockStructure:
        """The parts of "prompt", "reference", "response_a" or "response_b" (see
        `split_block`); a plain text, or a field the request lacks, has none."""
        text = getattr(self, name)
        if name == "response_a":
            tag = "response" if self.task == "grade" else "response_A"
        else:
            tag = _FIELD_TAGS[name]
        return split_block(text or "", self.codes.get(tag))


@dataclass(frozen=True)
class StructuredMessage:
    """A message of a structured block: its number, role and text (images left out);
    a tool message names the call it answers."""

    number: int
    role: str
    text: str
    call_id: str | None = None


@dataclass(frozen=True)
class ToolCall:
    """A tool call of a trajectory, in the message numbered `message`."""

    message: int
    name: str
    call_id: str
    arguments: str


@dataclass(frozen=True)
class ToolResult:
    """A tool result of a trajectory: message `message`, the result of call `call_id`."""

    message: int
    call_id: str
    text: str


@dataclass(frozen=True)
class BlockStructure:
    """A block split at its real header lines. A plain text has no parts:
    `structured` is False and everything else is empty."""

    structured: bool = False
    #: Every message, tool results included, in order.
    messages: tuple[StructuredMessage, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    #: The retrieved context documents' texts (a "(source: ...)" line first when given).
    documents: tuple[str, ...] = ()
    #: True when the prompt block says that the responses are agent trajectories.
    trajectories: bool = False
    images: int = 0

    def texts(self, role: str) -> list[str]:
        """The texts of the messages with this role, in order; empty ones left out."""
        return [m.text for m in self.messages if m.role == role and m.text.strip()]

    @property
    def last_user(self) -> str | None:
        """The text of the last user message, None when there is none."""
        users = self.texts("user")
        return users[-1] if users else None

    @property
    def tool_results(self) -> tuple[ToolResult, ...]:
        """The tool messages, each as the result of its call."""
        return tuple(
            ToolResult(m.number, m.call_id, m.text) for m in self.messages if m.call_id is not None
        )


def split_block(text: str, code: str | None) -> BlockStructure:
    """Split a block's text into messages, tool calls, tool results and documents at the
    header lines that carry `code`, the block's own code; any other line, a header with a
    wrong code included, is text of the part before it. Text after an image continues the
    message the image is in."""
    if not code or f" {code}>>" not in text:
        return BlockStructure()
    messages: list[StructuredMessage] = []
    calls: list[ToolCall] = []
    documents: list[str] = []
    trajectories = False
    images = 0
    # Each part: (kind, its header's match, its lines); kind "message", "call", "document"
    # or "" (a part read for nothing but its header, or the text before the first header).
    parts: list[tuple[str, re.Match[str] | None, list[str]]] = [("", None, [])]
    for line in text.split("\n"):
        match = _HEADER_RE.fullmatch(line)
        if match is None or match["code"] != code:
            parts[-1][2].append(line)
            continue
        head = match["head"]
        if head.startswith("image sha256:"):
            images += 1  # the text after it continues the part it is in
        elif (found := _MESSAGE_RE.fullmatch(head)) is not None:
            parts.append(("message", found, []))
        elif (found := _TOOL_CALL_RE.fullmatch(head)) is not None:
            parts.append(("call", found, []))
        elif re.fullmatch(r"document \d+", head):
            parts.append(("document", None, []))
        else:
            trajectories = trajectories or head.startswith("the responses are agent trajectories")
            parts.append(("", None, []))
    for kind, header, lines in parts:
        body = "\n".join(lines)
        if kind == "message" and header is not None:
            messages.append(
                StructuredMessage(int(header["number"]), header["role"], body, header["call"])
            )
        elif kind == "call" and header is not None:
            calls.append(ToolCall(int(header["number"]), header["name"], header["id"], body))
        elif kind == "document":
            documents.append(body)
    return BlockStructure(
        structured=True,
        messages=tuple(messages),
        tool_calls=tuple(calls),
        documents=tuple(documents),
        trajectories=trajectories,
        images=images,
    )


def _blocks(text: str) -> dict[str, tuple[int, str, str]]:
    """The fenced blocks of `text` by tag (the first of each), with their start offsets
    and codes."""
    found: dict[str, tuple[int, str, str]] = {}
    position = 0
    while (match := _BEGIN_RE.search(text, position)) is not None:
        end = f"\n<<end {match['tag']} {match['code']}>>"
        stop = text.find(end, match.end())
        if stop < 0:
            break
        found.setdefault(match["tag"], (match.start(), text[match.end() : stop], match["code"]))
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


def read_request(messages: Sequence[Mapping[str, object]], seed: object = None) -> ParsedRequest:
    """Read the messages of a judge request (rubric, pass, grade or a repair of one);
    `seed` is the body's `seed`, kept when it is a whole number. A message's content is
    a string or OpenAI content parts; image parts are counted, not read."""
    system = next((_text(m) for m in messages if m["role"] == "system"), "")
    user = next((_text(m) for m in messages if m["role"] == "user"), "")
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
        images=sum(_image_count(m.get("content")) for m in messages),
        codes={tag: code for tag, (_, _, code) in blocks.items()},
    )


def _text(message: Mapping[str, object]) -> str:
    return message_text(message.get("content")) or ""


def _image_count(content: object) -> int:
    if not isinstance(content, list):
        return 0
    return sum(1 for part in content if isinstance(part, dict) and part.get("type") in _IMAGE_PARTS)


def message_text(content: object) -> str | None:
    """A message's text: a string, or the joined text of OpenAI content parts (image
    parts are left out)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part.get("text")
            for part in content
            if isinstance(part, dict) and part.get("type") not in _IMAGE_PARTS
        ]
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
