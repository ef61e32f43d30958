"""Fenced code blocks in a judge's answer, read as CommonMark reads them.

Lines split on "\\n" only: U+2028, U+0085, form feeds and the other characters that
`str.splitlines()` also splits on are ordinary characters inside a line, so text that
uses them cannot make a fence line. A fence is three or more backticks or tildes; its
closing fence uses the same character, is at least as long, has nothing after it, and is
indented at most three spaces deeper than the opening fence. A fence indented as a whole
(inside a Markdown list) has that indentation removed from its lines, and a fence may
follow a list marker (`- ```yaml`). A block without its closing fence runs to the end.

`fenced_blocks` pairs fences the way a Markdown reader does; `fenced_spans` yields every
stretch between a fence and any later fence that could close it, so that a block the
judge quoted is found even where a stray fence in the quote paired the fences otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .errors import ParseError

#: More fence lines than this in one text are refused: pairing every fence with every
#: later one is quadratic, and a judge's answer needs two.
MAX_FENCE_LINES = 64
#: The info strings of blocks that may hold the answer, first word, lowercased.
ANSWER_INFOS = frozenset({"", "yaml", "yml", "json"})

_FENCE_RE = re.compile(
    r"(?P<indent>[ \t]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)?)(?P<fence>`{3,}|~{3,})(?P<info>.*)"
)


@dataclass(frozen=True)
class Fence:
    """One fence line: where it is and what it is."""

    index: int
    indent: int  # columns before the fence (tabs count 4, a list marker counts)
    char: str
    length: int
    info: str  # the info string, stripped

    def closed_by(self, other: Fence) -> bool:
        """Whether `other`, a later fence line, is a closing fence for this one."""
        return (
            other.char == self.char
            and other.length >= self.length
            and not other.info
            and other.indent <= self.indent + 3
        )


@dataclass(frozen=True)
class Block:
    """A fenced block: its lines (opening fence to closing fence) and its dedented body."""

    start: int  # line index of the opening fence
    stop: int  # line index of the closing fence, or the number of lines when unclosed
    info: str  # first word of the info string, lowercased
    body: str


def split_lines(text: str) -> list[str]:
    """The lines of `text`, split on "\\n" only; a "\\r" before it is dropped."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def fence_of(index: int, line: str) -> Fence | None:
    """The fence on `line`, or None when it is not a fence line."""
    match = _FENCE_RE.fullmatch(line)
    if match is None:
        return None
    char, info = match["fence"][0], match["info"].strip()
    if char == "`" and "`" in info:  # CommonMark: inline code, not a fence
        return None
    indent = len(match["indent"].expandtabs(4))
    return Fence(index, indent, char, len(match["fence"]), info)


def fences(lines: Sequence[str]) -> list[Fence]:
    """Every fence line of `lines`; ParseError when there are more than `MAX_FENCE_LINES`."""
    found = [fence for index, line in enumerate(lines) if (fence := fence_of(index, line))]
    if len(found) > MAX_FENCE_LINES:
        raise ParseError(
            f"answer has {len(found)} fence lines, more than {MAX_FENCE_LINES}; answer with "
            "one fenced block and do not quote the responses' code blocks"
        )
    return found


def dedent(lines: Sequence[str], indent: int) -> str:
    """`lines` joined with "\\n", each with up to `indent` columns of leading space removed."""
    if indent == 0:
        return "\n".join(lines)
    kept = []
    for line in lines:
        stripped = line.lstrip(" \t")
        leading = line[: len(line) - len(stripped)].expandtabs(4)
        kept.append(leading[indent:] + stripped if len(leading) >= indent else stripped)
    return "\n".join(kept)


def _block(lines: Sequence[str], opening: Fence, stop: int) -> Block:
    info = opening.info.split(maxsplit=1)[0].lower() if opening.info else ""
    return Block(opening.index, stop, info, dedent(lines[opening.index + 1 : stop], opening.indent))


def fenced_blocks(text: str) -> list[Block]:
    """The fenced blocks of `text`, paired as a Markdown reader pairs them, in order."""
    if "```" not in text and "~~~" not in text:
        return []  # no fence line without three backticks or tildes
    lines = split_lines(text)
    found = fences(lines)
    blocks: list[Block] = []
    position = 0
    while position < len(found):
        opening = found[position]
        closing = next((other for other in found[position + 1 :] if opening.closed_by(other)), None)
        if closing is None:
            blocks.append(_block(lines, opening, len(lines)))
            break
        blocks.append(_block(lines, opening, closing.index))
        position = found.index(closing) + 1
    return blocks


def fenced_spans(text: str) -> Iterator[Block]:
    """Every block any fence of `text` opens: closed by each later fence that can close
    it, and also running to the end of the text (unless only blank lines follow its last
    possible closing fence: that would add nothing but the fence line)."""
    if "```" not in text and "~~~" not in text:
        return  # no fence line without three backticks or tildes
    lines = split_lines(text)
    found = fences(lines)
    for position, opening in enumerate(found):
        last = opening.index
        for other in found[position + 1 :]:
            if opening.closed_by(other):
                yield _block(lines, opening, other.index)
                last = other.index
        if last == opening.index or any(line.strip() for line in lines[last + 1 :]):
            yield _block(lines, opening, len(lines))
