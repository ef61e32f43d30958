"""Images in a judge request: passed through as OpenAI `image_url` content parts.

An image is part of a structured input (`inputs.Structured.images`, by SHA-256); the text
sent to the judge holds a header line naming its digest and carrying the block's code, and
the request's user message becomes text and image parts at those headers. A judge whose
server refuses images gets a clear error (`refused_images`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from .callspec import Request, excerpt
from .dialects import rejects_format
from .errors import ImagesRefusedError, JudgeError, JudgeUnavailableError
from .inputs import Structured

__all__ = ["content_parts", "images_of", "refused_images"]

_IMAGE_RE: Final = re.compile(
    r"^<<image sha256:(?P<digest>[0-9a-f]{64}) (?P<code>[0-9a-f]{8,64})>>$", re.MULTILINE
)
_BEGIN_RE: Final = re.compile(
    r"^<<begin (?P<tag>[A-Za-z_]+) (?P<code>[0-9a-f]{8,64})>>$", re.MULTILINE
)


def images_of(*texts: str | None) -> dict[str, str]:
    """The images of the structured texts among `texts`, by SHA-256."""
    found: dict[str, str] = {}
    for text in texts:
        if isinstance(text, Structured):
            found.update(text.images)
    return found


def _image_headers(text: str, codes: set[str]) -> Iterator[re.Match[str]]:
    """The image header lines of `text` that lie inside a block whose code is one of
    `codes` and carry that block's own code, in order. A block is skipped whole, so a
    begin marker quoted inside it (a plain response may quote the prompt block's code,
    seen in an earlier request) starts nothing."""
    position = 0
    while (begin := _BEGIN_RE.search(text, position)) is not None:
        code = begin["code"]
        end = text.find(f"\n<<end {begin['tag']} {code}>>", begin.end())
        if end < 0:
            return
        if code in codes:
            for match in _IMAGE_RE.finditer(text, begin.end(), end):
                if match["code"] == code:
                    yield match
        position = end + 1


def content_parts(
    text: str, images: Mapping[str, str], codes: Iterable[str]
) -> str | list[dict[str, Any]]:
    """A user message's content: `text` itself, or text and image parts when it holds
    image header lines that name one of `images` inside a block whose code is one of
    `codes` (the request's block codes) and carry that block's code. A header forged
    inside a text has no valid code (or not its block's) and stays text."""
    if not images:
        return text
    parts: list[dict[str, Any]] = []
    position = 0
    for match in _image_headers(text, set(codes)):
        url = images.get(match["digest"])
        if url is None:
            continue
        parts.append({"type": "text", "text": text[position : match.end()]})
        parts.append({"type": "image_url", "image_url": {"url": url}})
        position = match.end()
    if not parts:
        return text
    parts.append({"type": "text", "text": text[position:]})
    return parts


def refused_images(error: JudgeUnavailableError, request: Request) -> JudgeError | None:
    """The clear error for a server that refuses a request because it holds images, or
    None when `request` has none or the server did not refuse it outright."""
    images = sum(
        1
        for message in request.messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image_url"
    )
    if not images or error.cause != "status" or error.status is None:
        return None
    if not 400 <= error.status < 600 or error.status in (408, 429, 502, 503, 504):
        return None
    if rejects_format(error.status, error.said):
        return None  # the structured-output fallback decides
    return ImagesRefusedError(
        f"the judge refused a request with {images} image(s) (HTTP {error.status}: "
        f"{excerpt(error.said or '', 200)}); judge with a model that accepts OpenAI "
        "image_url content parts (a vision model, e.g. --judge-model of a VLM), or leave "
        "the images out"
    )
