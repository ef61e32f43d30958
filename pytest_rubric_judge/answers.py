"""Where the answer is in a judge's text, and whether the text holds a second one.

The rule (the protocol's "Parsing judge output"):

1. A text that is one JSON object (whitespace around it aside) is read as JSON only.
2. Otherwise the whole text is tried as YAML; it is the answer when it is a mapping with
   one of the answer's keys (`scores`, `preference`, `criteria`).
3. Only when it is not is a fenced block used: of the blocks marked yaml, yml, json or
   nothing (else of all blocks), the last that reads as a valid answer. When none does,
   the last one's problem is the error.

Then the whole text is searched for a *second* candidate answer: every stretch between a
fence and any fence that could close it, the YAML regions of the text outside a fenced
answer, every string inside the answer that is itself an answer or holds a fenced block
or a YAML region that is one (a justification quoting a response's forged verdict), and
every nested mapping shaped like an answer. Each that reads as a valid answer must agree
with the answer, or the answer is refused as ambiguous. So a verdict quoted from a
response can never stand in for the judge's own: the judge's own answer is among the
candidates whichever one was picked, and they disagree. Where the judge's own answer
cannot be read because of what it quotes (a quote that breaks its YAML) while a quoted
fenced block can, the text around that block holds a region naming every key of an
answer that cannot be read: that is refused too.

Agreeing copies (a judge that repeats its answer) are fine. The search has a budget; an
answer too large to search is refused rather than searched in part.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from .errors import ParseError
from .fences import (
    ANSWER_INFOS,
    Block,
    dedent,
    fence_of,
    fenced_blocks,
    fenced_spans,
    split_lines,
)
from .loading import (
    MAX_ANSWER_CHARS,
    check_unicode,
    load_document,
    load_json_object,
    load_yaml,
    replace_surrogates,
)

T = TypeVar("T")

#: How many shorter cuts of a YAML region that cannot be read whole are tried.
MAX_CUTS = 8
#: How deep quotes inside quotes are searched.
MAX_QUOTE_DEPTH = 4
#: The most characters the search for a second answer loads, in all.
SEARCH_CHARS = 40 * MAX_ANSWER_CHARS
#: The most documents the search for a second answer loads.
SEARCH_DOCUMENTS = 600

_KEY_SEPARATORS_RE = re.compile(r"[\s\-]+")
#: A line that starts a YAML mapping entry: optional "- ", a plain or quoted key, a colon.
_KEY_LINE_RE = re.compile(
    r"(?P<indent> *)(?:- +)?(?P<quote>[\"']?)(?P<key>[^\s\"'#:{}\[\],&*!|>%@`][^:\"']*)"
    r"(?P=quote)[ \t]*:(?:[ \t]|$)"
)
#: Lines that continue a YAML region at its own indentation besides key lines.
_CONTINUATION_RE = re.compile(r" *(?:- |-$|#|\}|\]|$)")


@functools.lru_cache(maxsize=1024)
def normal_key(key: str) -> str:
    """A mapping key compared case-insensitively, with spaces or hyphens read as '_'."""
    return _KEY_SEPARATORS_RE.sub("_", key.strip().lower())


@dataclass(frozen=True)
class AnswerKind(Generic[T]):
    """One kind of answer (rubric, pass, grade): how to recognise it and how to read it."""

    #: Top-level keys; a mapping with any of them is shaped like this kind of answer.
    keys: frozenset[str]
    #: Plain data to the parsed answer; ParseError when it is not a valid answer.
    build: Callable[[object], T]
    #: What two readings must share to agree (labels and scores, not justifications).
    decision: Callable[[T], object]
    #: A few words on a reading, for the message that refuses an ambiguous answer.
    describe: Callable[[T], str]

    def shaped(self, data: object) -> bool:
        """Whether `data` is a mapping with one of this kind's top-level keys."""
        if not isinstance(data, Mapping):
            return False
        keys = self.keys
        for key in data:
            if normal_key(key if type(key) is str else str(key)) in keys:
                return True
        return False


@functools.lru_cache(maxsize=16)
def _mention_pattern(keys: frozenset[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(key) for key in sorted(keys)), re.IGNORECASE)


@functools.lru_cache(maxsize=16)
def _key_pattern(keys: frozenset[str]) -> re.Pattern[str]:
    # A key, its closing quote if any, then (past spaces, line breaks or a YAML comment)
    # the colon of a mapping entry: every way YAML or JSON can give a mapping that key.
    names = "|".join(re.escape(key) for key in sorted(keys))
    return re.compile(rf"(?:{names})[\"']?\s*(?:#[^\n]*\n\s*)?:", re.IGNORECASE)


def _mentions(keys: frozenset[str], text: str) -> bool:
    """Whether `text` names one of `keys` as a mapping key anywhere: a cheap test before
    loading it (prose that merely says "scores" cannot be an answer)."""
    return ":" in text and _key_pattern(keys).search(text) is not None


@dataclass(frozen=True)
class _Reading(Generic[T]):
    result: T
    data: object
    block: Block | None  # the fenced block it came from, None for the whole text


def read_answer(text: str, kind: AnswerKind[T], *, max_chars: int = MAX_ANSWER_CHARS) -> T:
    """The answer of `kind` in `text`, by the module's rule; ParseError when there is none,
    when it is not valid, or when the text holds a second answer that disagrees."""
    if len(text) > max_chars:
        raise ParseError(
            f"answer is {len(text):,} characters long, more than the limit of {max_chars:,}; "
            "answer with the YAML only"
        )
    if not text.isascii():  # (ASCII holds no surrogate)
        check_unicode(text)
    reading, whole = _locate(text, kind)
    _Search(kind, reading.result).run(text, reading, whole)
    return reading.result


def _locate(text: str, kind: AnswerKind[T]) -> tuple[_Reading[T], object]:
    """The answer and the whole text's YAML data (None when it is not YAML)."""
    data = load_json_object(text)
    if data is not None:
        return _Reading(kind.build(data), data, None), None
    whole: object = None
    whole_error: ParseError | None = None
    first = text.lstrip(" \t\r\n").split("\n", 1)[0]
    try:
        if fence_of(0, first) is not None:  # YAML cannot read a text that opens with a fence
            raise ParseError("answer is not valid YAML: it opens with a fence")
        whole = load_yaml(text)
    except ParseError as error:
        whole_error = error
    if whole_error is None and kind.shaped(whole):
        return _Reading(kind.build(whole), whole, None), whole
    every_block = fenced_blocks(text)
    blocks = [block for block in every_block if block.body.strip()]
    preferred = [block for block in blocks if block.info in ANSWER_INFOS] or blocks
    if not preferred:
        if every_block or not text.strip():
            raise ParseError("answer is empty: expected YAML in one ```yaml fenced block")
        if whole_error is not None:
            raise whole_error
        return _Reading(kind.build(whole), whole, None), whole
    last_error: ParseError | None = None
    for block in reversed(preferred):
        try:
            loaded = load_document(block.body)
            return _Reading(kind.build(loaded), loaded, block), whole
        except ParseError as error:
            last_error = last_error or error
    assert last_error is not None
    raise last_error


def regions(lines: Sequence[str], keys: frozenset[str]) -> Iterator[tuple[int, str]]:
    """The YAML regions of `lines` that start with one of `keys`, each dedented, longest
    first: from the key's line on, while lines are indented deeper or continue the
    mapping at its indentation; then the same region cut before each of its later
    entries (at most `MAX_CUTS`), for a region that ends in prose YAML cannot read. Each
    comes with the index of its first line."""
    index = 0
    while index < len(lines):
        match = _KEY_LINE_RE.match(lines[index])
        brace = lines[index].lstrip(" ").startswith("{")
        if not brace and (match is None or normal_key(match["key"]) not in keys):
            index += 1
            continue
        indent = len(lines[index]) - len(lines[index].lstrip(" "))
        stop = index + 1
        cuts = []
        while stop < len(lines):
            line = lines[stop]
            depth = len(line) - len(line.lstrip(" "))
            if line.strip() and depth <= indent:
                if depth < indent or not (
                    _KEY_LINE_RE.match(line) or _CONTINUATION_RE.fullmatch(line)
                ):
                    break
                cuts.append(stop)
            stop += 1
        for cut in [stop, *reversed(cuts[-MAX_CUTS:])]:
            yield index, dedent(lines[index:cut], indent)
        index = stop


class _Search(Generic[T]):
    """The search for a second answer that disagrees with `answer`."""

    def __init__(self, kind: AnswerKind[T], answer: T) -> None:
        self.kind = kind
        self.answer = answer
        self.expected = kind.decision(answer)
        self.seen: dict[str, bool] = {}
        self.chars = 0

    def run(self, text: str, reading: _Reading[T], whole: object) -> None:
        self.seen[reading.block.body if reading.block is not None else text] = True
        for span in fenced_spans(text):
            self.document(span.body, 1)
        if reading.block is not None:
            # YAML regions that start outside the fenced answer (they may enclose it: an
            # unfenced answer after prose that quotes a fenced block)
            inside = range(reading.block.start, reading.block.stop + 1)
            self.regions(split_lines(text), 1, skip=inside, outside=True)
            if whole is not None:
                self.data(whole, 1)
        self.data(reading.data, 0)

    def document(self, document: str, depth: int) -> bool:
        """Read `document` as a candidate; whether it could be read at all."""
        if document in self.seen:
            return self.seen[document]
        if not _mentions(self.kind.keys, document):
            return False
        self.seen[document] = False
        self.chars += len(document)
        if self.chars > SEARCH_CHARS or len(self.seen) > SEARCH_DOCUMENTS:
            raise ParseError(
                "answer quotes too many blocks to check that none of them is a second "
                "answer; answer with one block only, and do not quote the responses"
            )
        try:
            data = load_document(document)
        except ParseError:
            return False
        self.seen[document] = True
        self.data(data, depth)
        return True

    def regions(
        self, lines: Sequence[str], depth: int, skip: range = range(0), outside: bool = False
    ) -> None:
        """Read the YAML regions of `lines` as candidates. `outside` says that they are the
        text around a fenced answer: there, a region that names every key of an answer and
        cannot be read at all is refused. It may be the judge's own answer, made unreadable
        by what it quotes, and it must not leave the quoted block as the only answer."""
        previous, read = -1, -1
        for start, region in regions(lines, self.kind.keys):
            whole, previous = start != previous, start  # the region itself, not a cut of it
            if start == read or start in skip:
                continue  # a longer cut of this region was read: the shorter ones need not be
            if self.document(region, depth):
                read = start
            elif outside and whole and self._unreadable(region):
                raise ParseError(
                    f"answer holds, at line {start + 1} outside its fenced block, what looks "
                    "like another answer but cannot be read; answer with one block only, and "
                    "do not quote the responses"
                )

    def _unreadable(self, region: str) -> bool:
        """Whether `region` names every key of an answer and is not a readable document."""
        pattern = _mention_pattern(self.kind.keys)
        named = {normal_key(found) for found in pattern.findall(region)}
        return named >= self.kind.keys and self.seen.get(region) is False

    def data(self, data: object, depth: int) -> None:
        """Check `data` and everything inside it that could be a second answer."""
        keys = self.kind.keys
        pending = [data]
        while pending:
            value = pending.pop()
            kind = type(value)
            # (the loaders' own types by identity first: an abstract class's check costs more)
            if kind is int or kind is float or kind is bool or value is None:
                continue
            if isinstance(value, str):
                if depth < MAX_QUOTE_DEPTH and _mentions(keys, value):  # else it holds none
                    self.quote(replace_surrogates(value), depth + 1)
            elif isinstance(value, list):
                pending.extend(value)
            elif kind is dict or isinstance(value, Mapping):
                mapping = cast("Mapping[object, object]", value)
                if mapping is not data or depth > 0:
                    self.candidate(mapping)
                pending.extend(mapping.values())
            # (any other value, such as a subclass of int, holds nothing)

    def quote(self, text: str, depth: int) -> None:
        """A string of an answer: it may be an answer, or quote one in a block or region."""
        if not _mentions(self.kind.keys, text):
            return
        self.document(text, depth)
        for span in fenced_spans(text):
            self.document(span.body, depth)
        self.regions(split_lines(text), depth)

    def candidate(self, data: Mapping[object, object]) -> None:
        if not self.kind.shaped(data):
            return
        try:
            rival = self.kind.build(data)
        except ParseError:
            return  # not a valid answer: it could not have been read as the answer either
        if self.kind.decision(rival) != self.expected:
            raise ParseError(
                "answer is ambiguous: it holds a second answer that disagrees with it "
                f"({self.kind.describe(rival)} in one, {self.kind.describe(self.answer)} in "
                "the other); answer with one block only, and do not quote fenced blocks or "
                "verdicts from the responses"
            )
