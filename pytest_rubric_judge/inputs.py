"""Conversations, agent trajectories, retrieved context and images, as the judge reads them.

A prompt may be a list of chat messages, a response a list of assistant messages with
tool calls and tool results (a trajectory), and `context=` a list of retrieved documents.
Each is turned here, once, into a `Structured` text: a `str` whose value is a canonical
rendering (what cache keys, size limits and reports see) and which remembers its parts,
so that `prompts.block` can render it again with the random code of the block it is sent
in. Every message, tool call, tool result, document and image then starts at a header
line that carries that code, `<<message 2 assistant CODE>>`. No text inside a part holds
the code: a response block's code is drawn after the text is known, and the prompt
block's (drawn once per judge, so seen in every request) is withheld where a text quotes
it (`render`). A tool result or a document can never forge a message, a tool call, or the
end of its block.

The canonical rendering has the parts' own digest for a code: stable across runs and
machines, so it can be in a cache key. An image is in it by its SHA-256; its data travels
beside the text (`Structured.images`) into the request's content parts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

__all__ = [
    "ContextInput",
    "Prepared",
    "PromptInput",
    "ResponseInput",
    "Structured",
    "plain_message",
    "prepare",
]

#: A chat message in the OpenAI format (`role`, `content`, `tool_calls`, `tool_call_id`),
#: or an object with `model_dump()` that gives one (the OpenAI SDK's message types).
Message: TypeAlias = Mapping[str, Any]
PromptInput: TypeAlias = "str | Sequence[Message]"
ResponseInput: TypeAlias = "str | Sequence[Message]"
#: Retrieved documents: strings, mappings with `content`/`text`/`page_content` (and
#: optionally `source`, `title`, `url`, `metadata`), or objects with `page_content`.
ContextInput: TypeAlias = "Sequence[Any] | None"

ROLES: Final = ("system", "developer", "user", "assistant", "tool")
#: A message's, tool call's, tool result's or document's text is cut beyond this many
#: characters (kept: its start and its end), with a warning in the verdict.
MAX_PART_CHARS: Final = 50_000
#: An image's data (a data: URL or a link) may be at most this long.
MAX_IMAGE_CHARS: Final = 20_000_000
_LABEL_RE: Final = re.compile(r"[^A-Za-z0-9_.:/@-]+")
_CODE_SLOT: Final = "{code}"


@dataclass(frozen=True)
class _Part:
    """One header line (with the code's slot) and the untrusted text under it (or none)."""

    header: str
    body: str | None
    #: Where the body came from, for truncation warnings ("message 3 (tool)").
    label: str = ""


class Structured(str):
    """A conversation, trajectory or prompt-with-context: a `str` (its canonical rendering)
    that can be rendered again with the code of the block it is sent in."""

    kind: str
    parts: tuple[_Part, ...]
    images: Mapping[str, str]
    warnings: tuple[str, ...]

    def __new__(
        cls,
        parts: Sequence[_Part],
        *,
        kind: str,
        images: Mapping[str, str] | None = None,
        warnings: Sequence[str] = (),
    ) -> Structured:
        parts = tuple(parts)
        code = _own_code(kind, parts)
        self = super().__new__(cls, _join(parts, code))
        self.kind = kind
        self.parts = parts
        self.images = dict(images or {})
        self.warnings = tuple(warnings)
        return self

    def render(self, code: str) -> str:
        """The text as the judge sees it in a block whose code is `code`.

        A body that contains `code` (the per-judge code of the prompt block, which is drawn
        before any text is seen and appears in every request, so a retrieved document or a
        tool result may quote it) has it replaced: no text can forge a header or an end
        marker with the code of the block it is sent in."""
        return _join(self.parts, code, withheld=code)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.parts, self.kind, dict(self.images), self.warnings))


def _rebuild(
    parts: tuple[_Part, ...], kind: str, images: dict[str, str], warnings: tuple[str, ...]
) -> Structured:
    return Structured(parts, kind=kind, images=images, warnings=warnings)


#: What replaces the block's code where a body quotes it (`Structured.render`).
WITHHELD_CODE: Final = "[code withheld]"


def _join(parts: Iterable[_Part], code: str, *, withheld: str | None = None) -> str:
    lines = []
    for part in parts:
        lines.append(part.header.replace(_CODE_SLOT, code))
        if part.body is not None:
            body = part.body
            if withheld and withheld in body:
                body = body.replace(withheld, WITHHELD_CODE)
            lines.append(body)
    return "\n".join(lines)


def _own_code(kind: str, parts: tuple[_Part, ...]) -> str:
    """The canonical code: the digest of the parts, which no part can contain."""
    data = json.dumps([kind, [(p.header, p.body) for p in parts]], ensure_ascii=False)
    for salt in range(100):
        code = hashlib.sha256(f"{salt}:{data}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
        if not any(p.body is not None and code in p.body for p in parts):
            return code
    raise AssertionError("unreachable: no part can contain its own digest")


def _sendable(text: str) -> str:
    """Text as it can be sent: a lone surrogate has no UTF-8 form, so it becomes U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _label(value: object, limit: int = 64) -> str:
    """An identifier (a tool's name, a call id) safe on a header line."""
    text = _LABEL_RE.sub("_", str(value))[:limit]
    return text or "?"


# -- reading messages ---------------------------------------------------------------------


def plain_message(message: object, where: str) -> Mapping[str, Any]:
    if isinstance(message, Mapping):
        return message
    dump = getattr(message, "model_dump", None)
    if callable(dump):
        data = dump(exclude_none=True)
        if isinstance(data, Mapping):
            return data
    raise TypeError(
        f"{where} is a {type(message).__name__}, not a chat message; give mappings with "
        "'role' and 'content' (OpenAI format), or convert LangChain messages with "
        "pytest_rubric_judge.from_langchain"
    )


@dataclass
class _Reader:
    """Turns messages into parts, collecting images; `what` names the input in errors."""

    what: str
    images: dict[str, str]

    def content(self, content: object, where: str) -> list[_Part]:
        """A message's content: a string, None, or OpenAI content parts (text, image_url)."""
        if content is None:
            return []
        if isinstance(content, str):
            return [_Part("", _sendable(content), where)]
        if not isinstance(content, Sequence) or isinstance(content, bytes | bytearray):
            raise TypeError(
                f"{where} has content of type {type(content).__name__}; content is a string "
                "or a list of parts ({'type': 'text', 'text': ...} or "
                "{'type': 'image_url', 'image_url': {'url': ...}})"
            )
        parts: list[_Part] = []
        for index, item in enumerate(content, 1):
            if isinstance(item, str):  # LangChain writes a text part as a bare string
                parts.append(_Part("", _sendable(item), where))
                continue
            item = plain_message(item, f"{where}, content part {index}")
            kind = item.get("type")
            if kind in ("text", "input_text", "output_text"):
                text = item.get("text")
                if not isinstance(text, str):
                    raise TypeError(
                        f"{where}, content part {index} is a text part whose 'text' is a "
                        f"{type(text).__name__}; give a string"
                    )
                parts.append(_Part("", _sendable(text), where))
            elif kind in ("image_url", "input_image"):
                parts.append(self.image(item, f"{where}, content part {index}"))
            else:
                raise ValueError(
                    f"{where}, content part {index} has type {kind!r}; the judge takes "
                    "'text' and 'image_url' parts"
                )
        return parts

    def image(self, item: Mapping[str, Any], where: str) -> _Part:
        ref = item.get("image_url")
        url = ref.get("url") if isinstance(ref, Mapping) else ref
        if not isinstance(url, str) or not url:
            raise ValueError(f"{where} is an image without a URL: give image_url={{'url': ...}}")
        if len(url) > MAX_IMAGE_CHARS:
            raise ValueError(
                f"{where} is an image of {len(url):,} characters, over the limit of "
                f"{MAX_IMAGE_CHARS:,}; send a smaller image"
            )
        digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
        self.images[digest] = url
        return _Part(f"<<image sha256:{digest} {_CODE_SLOT}>>", None, where)

    def messages(self, messages: object, *, response: bool) -> list[_Part]:
        if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
            raise TypeError(
                f"{self.what} must be a string or a list of chat messages, not "
                f"{type(messages).__name__}"
            )
        if not messages:
            raise ValueError(f"{self.what} is an empty list of messages; give at least one")
        parts: list[_Part] = []
        for number, raw in enumerate(messages, 1):
            where = f"{self.what}, message {number}"
            message = plain_message(raw, where)
            role = message.get("role")
            if role not in ROLES:
                raise ValueError(
                    f"{where} has role {role!r}; roles are {', '.join(ROLES)} (OpenAI format)"
                )
            if response and role in ("system", "developer", "user"):
                raise ValueError(
                    f"{where} is a {role} message; a response holds what the assistant "
                    "produced (assistant and tool messages). Put the conversation before it "
                    "in prompt=, e.g. prompt, response = "
                    "pytest_rubric_judge.split_conversation(messages)"
                )
            label = f"message {number} ({role})"
            header = f"<<message {number} {role}"
            if role == "tool":
                header += f" result of call {_label(message.get('tool_call_id', '?'))}"
            parts.append(_Part(f"{header} {_CODE_SLOT}>>", None, label))
            parts += [
                _Part(p.header, p.body, label) for p in self.content(message.get("content"), where)
            ]
            calls = message.get("tool_calls")
            if calls is not None and (
                isinstance(calls, str | bytes | Mapping) or not isinstance(calls, Sequence)
            ):
                raise TypeError(
                    f"{where} has tool_calls of type {type(calls).__name__}; give a list of "
                    "calls, each {'id': ..., 'type': 'function', 'function': {'name': ..., "
                    "'arguments': ...}}"
                )
            for call_number, call in enumerate(calls or (), 1):
                if not isinstance(call, Mapping) and not hasattr(call, "model_dump"):
                    raise TypeError(
                        f"{where}, tool call {call_number} is a {type(call).__name__}; give "
                        "{'id': ..., 'type': 'function', 'function': {'name': ..., "
                        "'arguments': ...}}"
                    )
                parts.append(self.tool_call(call, number, call_number))
        # A text part has no header of its own: it continues the line before it.
        return _fold(parts)

    def tool_call(self, call: object, number: int, call_number: int) -> _Part:
        where = f"{self.what}, message {number}, tool call {call_number}"
        call = plain_message(call, where)
        function = call.get("function")
        if isinstance(function, Mapping):
            name, arguments = function.get("name"), function.get("arguments", "")
        else:  # LangChain's flattened form: name, args
            name, arguments = call.get("name"), call.get("args", call.get("arguments", ""))
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where} has no function name: give function={{'name': ...}}")
        if not isinstance(arguments, str):
            arguments = _json(arguments)
        header = (
            f"<<tool call {call_number} of message {number}: {_label(name)} "
            f"id {_label(call.get('id', '?'))} {_CODE_SLOT}>>"
        )
        return _Part(header, _sendable(arguments), f"message {number}, tool call {call_number}")


def _json(value: object) -> str:
    """Tool arguments given as data, as canonical JSON (keys sorted where they can be)."""
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except TypeError:  # keys of mixed types cannot be sorted
        return json.dumps(value, ensure_ascii=False, default=str)


def _fold(parts: list[_Part]) -> list[_Part]:
    """Headerless text parts joined to the body of the header before them."""
    folded: list[_Part] = []
    for part in parts:
        if part.header == "" and folded and folded[-1].body is None:
            folded[-1] = _Part(folded[-1].header, part.body, folded[-1].label)
        elif part.header == "" and folded:
            last = folded[-1]
            folded[-1] = _Part(last.header, f"{last.body}\n{part.body}", last.label)
        else:
            folded.append(part)
    return folded


def _is_trajectory(messages: object) -> bool:
    if isinstance(messages, str) or not isinstance(messages, Sequence):
        return False
    for raw in messages:
        try:
            message = plain_message(raw, "")
        except TypeError:
            return False
        if message.get("role") == "tool" or message.get("tool_calls"):
            return True
    return False


def _documents(context: object, reader: _Reader) -> list[_Part]:
    if isinstance(context, str) or not isinstance(context, Sequence):
        raise TypeError(
            "context must be a list of retrieved documents (strings, or mappings with "
            f"'content'), not {type(context).__name__}; wrap one document as [text]"
        )
    parts = [_Part(f"<<retrieved context: {len(context)} documents {_CODE_SLOT}>>", None)]
    for number, doc in enumerate(context, 1):
        text, source = _document(doc, number)
        body = _sendable(text if source is None else f"(source: {source})\n{text}")
        parts.append(_Part(f"<<document {number} {_CODE_SLOT}>>", body, f"document {number}"))
    return parts


def _document(doc: object, number: int) -> tuple[str, str | None]:
    if isinstance(doc, str):
        return doc, None
    mapping: Mapping[str, Any] | None = doc if isinstance(doc, Mapping) else None
    if mapping is None and hasattr(doc, "page_content"):  # a LangChain Document
        mapping = {"page_content": doc.page_content, "metadata": getattr(doc, "metadata", {})}
    if mapping is not None:
        field = next((k for k in ("content", "text", "page_content") if k in mapping), None)
        text = mapping[field] if field is not None else None
        if field is not None and not isinstance(text, str):
            raise TypeError(
                f"context document {number} has {field!r} of type {type(text).__name__}; "
                "give the document's text as a string"
            )
        if isinstance(text, str):
            found = mapping.get("metadata")
            meta: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
            sources = [
                str(where[k])
                for where in (mapping, meta)
                for k in ("source", "title", "url", "id")
                if where.get(k) is not None
            ]
            return text, (sources[0] if sources else None)
    raise TypeError(
        f"context document {number} is a {type(doc).__name__}; give a string or a mapping "
        "with 'content' (and optionally 'source')"
    )


# -- limits ---------------------------------------------------------------------------------


def _cut_note(removed: int) -> str:
    return f"\n[... {removed:,} characters cut ...]\n"


def _cut(text: str, keep: int) -> str:
    """`text` cut in the middle to at most `keep` characters (the note saying how much was
    cut included): its start and its end are kept."""
    kept = max(0, keep - len(_cut_note(len(text))))
    head = kept * 2 // 3
    tail = kept - head
    return f"{text[:head]}{_cut_note(len(text) - kept)}{text[len(text) - tail :]}"


#: The length of a block code, as `prompts.new_code` draws it and `_own_code` makes it.
_CODE_CHARS: Final = 16
#: A cut body keeps at least this many characters, however many bodies share the limit.
_MIN_CUT: Final = 200


def _fit(parts: list[_Part], max_chars: int, what: str) -> tuple[list[_Part], list[str]]:
    """Parts whose bodies are cut, longest first, to `MAX_PART_CHARS` each and so that the
    whole rendering fits in `max_chars` (headers, line breaks and cut notes included); one
    warning per cut body."""
    sizes = [len(p.body) if p.body is not None else 0 for p in parts]
    fixed = sum(len(p.header) - len(_CODE_SLOT) + _CODE_CHARS for p in parts)
    fixed += sum(1 for p in parts if p.body is not None) + len(parts) - 1  # line breaks
    budget = max_chars - fixed
    cap = MAX_PART_CHARS
    if sum(min(size, cap) for size in sizes) > budget:
        low, high = 0, cap  # the largest cap that fits: every body over it is cut to it
        while low < high:
            middle = (low + high + 1) // 2
            if sum(min(size, middle) for size in sizes) <= budget:
                low = middle
            else:
                high = middle - 1
        cap = low
    cap = max(cap, _MIN_CUT)
    fitted, warnings = [], []
    for part, size in zip(parts, sizes, strict=True):
        if part.body is not None and size > cap:
            fitted.append(_Part(part.header, _cut(part.body, cap), part.label))
            warnings.append(
                f"{what}: {part.label} was cut from {size:,} to about {cap:,} characters "
                "to fit the judge's input limits (MAX_PART_CHARS, --judge-max-input-chars)"
            )
        else:
            fitted.append(part)
    return fitted, warnings


# -- the inputs of one judgment ---------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A judgment's inputs as texts (plain or `Structured`), and what was cut to fit."""

    prompt: str
    responses: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def structured(self) -> bool:
        return isinstance(self.prompt, Structured) or any(
            isinstance(r, Structured) for r in self.responses
        )


_TRAJECTORY_NOTE: Final = (
    f"<<the responses are agent trajectories: assistant messages, tool calls and tool "
    f"results {_CODE_SLOT}>>"
)


def prepare(
    prompt: object,
    responses: Sequence[object],
    *,
    context: object = None,
    max_chars: int,
    names: Sequence[str] | None = None,
) -> Prepared:
    """The texts a judge is sent for `prompt`, `responses` and `context`.

    Plain strings without context stay as they are (their cache keys are unchanged); a
    list of messages, a trajectory or a context makes a `Structured` text. Bodies are cut,
    with a warning each, to fit `MAX_PART_CHARS` and `max_chars` per input.
    """
    names = list(names or [f"response {chr(ord('A') + i)}" for i in range(len(responses))])
    trajectory = any(_is_trajectory(r) for r in responses)
    warnings: list[str] = []
    texts: list[str] = []
    for response, name in zip(responses, names, strict=True):
        if isinstance(response, str):
            texts.append(response)
            continue
        reader = _Reader(name, {})
        parts, cut = _fit(reader.messages(response, response=True), max_chars, name)
        kind = "trajectory" if _is_trajectory(response) else "messages"
        texts.append(Structured(parts, kind=kind, images=reader.images, warnings=cut))
        warnings += cut
    if isinstance(prompt, str) and context is None and not trajectory:
        return Prepared(prompt, tuple(texts), tuple(warnings))
    reader = _Reader("prompt", {})
    if isinstance(prompt, str):
        parts = [_Part(f"<<message 1 user {_CODE_SLOT}>>", _sendable(prompt), "the prompt")]
    else:
        parts = reader.messages(prompt, response=False)
    if context is not None:
        parts += _documents(context, reader)
    if trajectory:
        parts.append(_Part(_TRAJECTORY_NOTE, None))
    parts, cut = _fit(parts, max_chars, "prompt")
    warnings = cut + warnings
    kind = "context" if context is not None else "conversation"
    structured = Structured(parts, kind=kind, images=reader.images, warnings=cut)
    return Prepared(structured, tuple(texts), tuple(warnings))
