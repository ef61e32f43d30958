"""The format-bias probe of calibration: the same content as plain text and as Markdown.

A judge that prefers a response for its formatting rather than its content rewards models
for headings and bullets. The probe takes a sample of the gold rows, writes one plain
response of each as Markdown with exactly the same words (`to_markdown`), and judges the
pair, Markdown against the plain original, in both slot orders as every comparison is.
An unbiased judge calls the pair a tie, or splits its decisive verdicts evenly.

The transformation is deterministic and adds markup only: the text is split into
sentences (at `.`, `!` or `?` followed by white space, and at line breaks); the first
sentence becomes a `##` heading, the others `-` bullets, the first bullet in bold. A text
of one sentence is set in bold. `plain_words(to_markdown(text)) == text.split()`.

The sample: rows in the order of a hash of their id (the same rows on every run, spread
over the file), taking the labelled winner (response A for a tie) or else the other
response, whichever is first to be plain text (no Markdown of its own) and not empty.
The Markdown version sits in slot A for even-numbered probe pairs and in slot B for odd.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from .agreement import Rate
from .gold import GoldRow
from .models import Verdict
from .scoring import LABEL_VALUE
from .stats import DEFAULT_LEVEL

if TYPE_CHECKING:
    from .judge import Judge

__all__ = [
    "DEFAULT_FORMAT_PROBE",
    "TRANSFORMATION",
    "FormatProbe",
    "ProbePair",
    "looks_like_markdown",
    "plain_words",
    "probe_pairs",
    "run_format_probe",
    "summarize_probe",
    "to_markdown",
]

#: Probe pairs `rubric-judge calibrate` judges unless told otherwise (`--format-probe`).
DEFAULT_FORMAT_PROBE = 10
TRANSFORMATION = (
    "same words in the same order; first sentence as a '##' heading, the others as '-' "
    "bullets, the first bullet bold (a one-sentence text: bold)"
)

_BLOCK = re.compile(r"^\s{0,3}(#{1,6}\s|[-*+]\s|\d{1,9}[.)]\s|>|```|~~~|\|)", re.MULTILINE)
_INLINE = re.compile(r"\*\*|__|`|\[[^\]\n]+\]\([^)\n]+\)|\*[^*\s][^*\n]*\*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def looks_like_markdown(text: str) -> bool:
    """True when the text already uses Markdown: headings, lists, quotes, fences, tables,
    bold or italic, code spans or links."""
    return bool(_BLOCK.search(text) or _INLINE.search(text))


def sentences(text: str) -> list[str]:
    """The sentences of a text, white space inside each collapsed to single spaces."""
    found: list[str] = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            found.extend(part for part in _SENTENCE_END.split(line) if part)
    return found


def to_markdown(text: str) -> str:
    """The text as Markdown with the same words: a heading, bullets and bold."""
    parts = sentences(text)
    if not parts:
        return text
    if len(parts) == 1:
        return f"**{parts[0]}**"
    lines = [f"## {parts[0]}", "", f"- **{parts[1]}**"]
    lines.extend(f"- {part}" for part in parts[2:])
    return "\n".join(lines)


def plain_words(markdown: str) -> list[str]:
    """The words of `to_markdown`'s output with its markup taken out."""
    text = re.sub(r"^(## |- )", "", markdown, flags=re.MULTILINE).replace("**", "")
    return text.split()


@dataclass(frozen=True)
class ProbePair:
    """One probe pair: a gold row's plain response and its Markdown version."""

    row: GoldRow
    plain: str
    markdown: str
    markdown_in: str  # "A" or "B"

    def job(self) -> dict[str, object]:
        a, b = (
            (self.markdown, self.plain) if self.markdown_in == "A" else (self.plain, self.markdown)
        )
        return {
            "id": f"format-probe:{self.row.id}",
            "prompt": self.row.prompt,
            "response_A": a,
            "response_B": b,
            "context": self.row.context,
        }


def _eligible(text: str) -> bool:
    return (
        bool(text.strip())
        and not looks_like_markdown(text)
        and plain_words(to_markdown(text)) == text.split()
    )


def probe_pairs(gold: Sequence[GoldRow], n: int) -> list[ProbePair]:
    """Up to `n` probe pairs from the gold rows (fewer when fewer rows have plain text)."""
    pairs: list[ProbePair] = []
    if n <= 0:
        return pairs
    order = sorted(gold, key=lambda row: hashlib.sha256(f"format-probe:{row.id}".encode()).digest())
    for row in order:
        first, second = (
            (row.response_b, row.response_a) if row.label < 0 else (row.response_a, row.response_b)
        )
        text = next((t for t in (first, second) if _eligible(t)), None)
        if text is None:
            continue
        slot = "A" if len(pairs) % 2 == 0 else "B"
        pairs.append(ProbePair(row, text, to_markdown(text), slot))
        if len(pairs) == n:
            break
    return pairs


class FormatProbe(BaseModel):
    """How often the judge prefers the Markdown version of the same content."""

    model_config = ConfigDict(frozen=True)

    requested: int
    pairs: int
    errors: list[dict[str, str]]
    markdown_preferred: Rate
    plain_preferred: Rate
    ties: Rate
    #: Markdown wins among decisive pairs: 0.5 is no format preference.
    markdown_share_of_decisive: Rate
    position_consistency: Rate
    transformation: str = TRANSFORMATION
    note: str | None = None

    def summary_lines(self) -> list[str]:
        head = (
            f"format probe (same content, plain vs Markdown, both orders): {self.pairs} of "
            f"{self.requested} pairs judged ({len(self.errors)} errors)"
        )
        lines = [head] + ([f"  note: {self.note}"] if self.note else [])
        for title, rate in (
            ("Markdown preferred", self.markdown_preferred),
            ("plain preferred", self.plain_preferred),
            ("tie (ideal: all)", self.ties),
            ("Markdown share of decisive (ideal 0.5)", self.markdown_share_of_decisive),
        ):
            lines.append(f"  {title:<38} {rate.describe()}")
        return lines


def summarize_probe(
    requested: int,
    judged: Sequence[tuple[ProbePair, Verdict]],
    errors: Sequence[dict[str, str]] = (),
    *,
    eligible: int | None = None,
    level: float = DEFAULT_LEVEL,
) -> FormatProbe:
    """The probe's rates from its judged pairs (the reconciled label of each)."""
    markdown = plain = consistent = 0
    for pair, verdict in judged:
        towards_markdown = LABEL_VALUE[verdict.preference] * (1 if pair.markdown_in == "A" else -1)
        markdown += towards_markdown > 0
        plain += towards_markdown < 0
        consistent += verdict.consistent
    n = len(judged)
    available = len(judged) + len(errors) if eligible is None else eligible
    note = None
    if available < requested:
        note = (
            f"only {available} gold rows have a plain-text response to reformat "
            "(responses already in Markdown are not used)"
        )
    return FormatProbe(
        requested=requested,
        pairs=n,
        errors=list(errors),
        markdown_preferred=Rate.of(markdown, n, level),
        plain_preferred=Rate.of(plain, n, level),
        ties=Rate.of(n - markdown - plain, n, level),
        markdown_share_of_decisive=Rate.of(markdown, markdown + plain, level),
        position_consistency=Rate.of(consistent, n, level),
        note=note,
    )


def run_format_probe(
    judge: Judge,
    gold: Sequence[GoldRow],
    n: int = DEFAULT_FORMAT_PROBE,
    *,
    concurrency: int = 16,
    level: float = DEFAULT_LEVEL,
    on_result: Callable[[bool], None] | None = None,
) -> FormatProbe:
    """Judge up to `n` probe pairs in both orders; `on_result(ok)` after each pair."""
    pairs = probe_pairs(gold, n)
    judged: list[tuple[ProbePair, Verdict]] = []
    errors: list[dict[str, str]] = []
    if pairs:
        jobs = (pair.job() for pair in pairs)
        for result in judge.compare_many(jobs, concurrency=concurrency):
            pair = pairs[result.index]
            if on_result is not None:
                on_result(result.verdict is not None)
            if result.verdict is None:
                errors.append({"id": pair.row.id, "error": f"{result.error_type}: {result.error}"})
            else:
                judged.append((pair, result.verdict))
    judged.sort(key=lambda item: item[0].row.index)
    return summarize_probe(n, judged, errors, eligible=len(pairs), level=level)
