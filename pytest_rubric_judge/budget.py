"""What a run may ask the judge: a spend budget (`--judge-budget`) and a dry run
(`--judge-dry-run`).

Both are *gates* on the requests a judge really sends. `CallCore._ask` calls
`gate.reserve(request)` before it yields a request (a cache hit never gets there, nor does
a rubric that is locked or remembered), and `gate.settle(sent=..., tokens=...)` when the
request has ended. A repair request and the structured-output fallback's second request
are requests too; the HTTP client's retries of one request are part of that request.

`Budget` takes a request's slot under a lock before it is sent, so:

- **requests**: never more than the limit are sent. A reserved request that never reached
  a server (refused, unreachable: not counted as sent by the judge's counters either) gives
  its slot back.
- **tokens**: a request is sent only while the tokens of the requests already answered
  are under the limit. Requests in flight when it is reached still finish, so the total
  may pass the limit by at most the tokens of the requests that were in flight then (at
  most one per worker thread of the judge, each at most its prompt plus
  `--judge-max-tokens`).

A refused request is a `BudgetSpentError`, a judge error: the test that needed it is an
ERROR with one line naming the budget. Under pytest-xdist each worker gets its share of
the budget (`JudgeBudget.share`), so the run as a whole keeps the same guarantees.

`DryRun` sends nothing: it records each request a call would send (once per distinct
request, with a token estimate from its size) and raises `DryRunMiss`, which the plugin
reports as a skipped test. So that a prompt whose rubric is not cached still counts the
passes that would follow, `DryRun.rubric` answers it with a placeholder rubric (no cached
pass is keyed on it, so each pass counts as one to ask).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import JudgeError

if TYPE_CHECKING:  # nothing heavy at import: the option parser lives here
    from .calls import CallCore
    from .callspec import Request
    from .models import Rubric

__all__ = [
    "CHARS_PER_TOKEN",
    "Budget",
    "BudgetSpentError",
    "DryRun",
    "DryRunMiss",
    "JudgeBudget",
    "parse_budget",
]

#: The rough size of a token, for the dry run's estimate.
CHARS_PER_TOKEN = 4
_EXAMPLE = "e.g. --judge-budget requests=200,tokens=500000"
_FIX = "raise --judge-budget, or select fewer judged tests with -k or -m"


@dataclass(frozen=True)
class JudgeBudget:
    """The most requests and tokens a run may spend; None is no limit on that."""

    requests: int | None = None
    tokens: int | None = None

    def __str__(self) -> str:
        parts = [f"{name}={value}" for name, value in self.limits().items()]
        return ",".join(parts)

    def limits(self) -> dict[str, int]:
        found = {"requests": self.requests, "tokens": self.tokens}
        return {name: value for name, value in found.items() if value is not None}

    def share(self, index: int, workers: int) -> JudgeBudget:
        """Worker `index`'s (0-based) share among `workers`: the limits split as evenly as
        whole numbers allow, so the shares add up to the budget exactly."""

        def part(total: int | None) -> int | None:
            if total is None:
                return None
            return total // workers + (1 if index < total % workers else 0)

        return JudgeBudget(part(self.requests), part(self.tokens))


def parse_budget(text: str) -> JudgeBudget:
    """`requests=N,tokens=M` (either or both); ValueError naming the fix otherwise."""
    found: dict[str, int] = {}
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        name, sep, value = (item.strip() for item in part.partition("="))
        if not sep or name not in ("requests", "tokens"):
            raise ValueError(
                f"{part!r} is not a budget limit: give requests=N and/or tokens=M, {_EXAMPLE}"
            )
        if name in found:
            raise ValueError(f"{name} is given twice; give it once, {_EXAMPLE}")
        digits = value.replace("_", "")
        if not digits.isdigit() or not digits.isascii():
            raise ValueError(f"{name}={value!r}: give a whole number 0 or more, {_EXAMPLE}")
        found[name] = int(digits)
    if not found:
        raise ValueError(f"no budget given: give requests=N and/or tokens=M, {_EXAMPLE}")
    return JudgeBudget(found.get("requests"), found.get("tokens"))


class BudgetSpentError(JudgeError):
    """The run's judge budget is spent: the request was not sent."""

    kind = "budget"


class DryRunMiss(Exception):  # a signal (the test is skipped), not a failure
    """A dry run reached a judge call it would have to send: nothing was sent."""


class Budget:
    """The request gate of a spend budget (see the module docstring for the guarantee)."""

    def __init__(self, limit: JudgeBudget, *, whole: JudgeBudget | None = None) -> None:
        #: This process's limits; `whole` is the run's, when this is one worker's share.
        self.limit = limit
        self.whole = whole
        self._lock = threading.Lock()
        #: Requests sent or in flight, and tokens of the answered ones.
        self.requests = 0
        self.tokens = 0
        #: Requests refused.
        self.refused = 0

    def reserve(self, request: Request) -> None:
        with self._lock:
            spent = self._spent()
            if spent is None:
                self.requests += 1
                return
            self.refused += 1
        raise BudgetSpentError(spent)

    def settle(self, *, sent: bool, tokens: int) -> None:
        with self._lock:
            if not sent:
                self.requests -= 1
            self.tokens += tokens

    def _spent(self) -> str | None:
        limit = self.limit
        if limit.requests is not None and self.requests >= limit.requests:
            what = f"{self.requests:,} of {limit.requests:,} requests"
        elif limit.tokens is not None and self.tokens >= limit.tokens:
            what = f"{self.tokens:,} of {limit.tokens:,} tokens"
        else:
            return None
        share = ""
        if self.whole is not None and self.whole != limit:
            share = f" (this pytest-xdist worker's share of --judge-budget {self.whole})"
        return f"judge budget spent: {what}{share}; {_FIX}"

    def data(self) -> dict[str, int]:
        with self._lock:
            return {"requests": self.requests, "tokens": self.tokens, "refused": self.refused}


def budget_line(whole: JudgeBudget, spent: Mapping[str, int], workers: int) -> str:
    """The summary's line: spent and left of each limit."""
    parts = []
    for name, limit in whole.limits().items():
        used = spent.get(name, 0)
        over = (
            f" ({used - limit:,} over: requests in flight when it ran out)" if used > limit else ""
        )
        parts.append(f"{used:,} of {limit:,} {name} spent{over}, {max(0, limit - used):,} left")
    refused = spent.get("refused", 0)
    if refused:
        parts.append(f"{refused:,} request(s) refused")
    split = f" (split over {workers} pytest-xdist workers)" if workers > 1 else ""
    return f"judge budget{split}: " + "; ".join(parts)


#: The criteria of the rubric that stands in for one a dry run would ask for.
PLACEHOLDER_CRITERIA = (
    {"name": "accuracy", "description": "(dry run)", "weight": 0.5, "type": "scale"},
    {"name": "completeness", "description": "(dry run)", "weight": 0.3, "type": "scale"},
    {"name": "clarity", "description": "(dry run)", "weight": 0.2, "type": "scale"},
)


def _never_send(request: Request) -> object:
    raise AssertionError("a dry run sends nothing")


class DryRun:
    """The request gate of a dry run: records what would be sent, sends nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._placeholders: set[tuple[int, str, str | None]] = set()
        self._placeholder: Rubric | None = None
        #: Distinct requests that would be sent, and the characters of their messages.
        self.asked = 0
        self.chars = 0

    def reserve(self, request: Request) -> None:
        text = json.dumps(
            [request.messages, request.seed, request.response_format], sort_keys=True, default=str
        )
        digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
        size = sum(len(str(message.get("content", ""))) for message in request.messages)
        with self._lock:
            if digest not in self._seen:
                self._seen.add(digest)
                self.asked += 1
                self.chars += size
        raise DryRunMiss("dry run: the judge would be asked; nothing was sent")

    def settle(self, *, sent: bool, tokens: int) -> None:  # never reached: reserve raises
        return None

    def rubric(self, core: CallCore, prompt: str, reference: str | None) -> Rubric:
        """The cached rubric for the prompt (remembered by the judge), else the placeholder,
        counting the rubric request once."""
        from .calls import drive_blocking
        from .models import Rubric

        key = (id(core), prompt, reference)
        with self._lock:
            if self._placeholder is None:
                self._placeholder = Rubric.of(PLACEHOLDER_CRITERIA, source="judge")
            placeholder = self._placeholder
            if key in self._placeholders:
                return placeholder
        try:
            rubric, _ = drive_blocking(
                core.protocol(core.rubric_spec(prompt, reference)),
                _never_send,  # type: ignore[arg-type]
            )
        except DryRunMiss:
            with self._lock:
                self._placeholders.add(key)
            return placeholder
        core.remember_rubric(prompt, reference, rubric)
        return rubric

    def data(self) -> dict[str, int]:
        with self._lock:
            return {"asked": self.asked, "chars": self.chars}


def dry_run_line(cached: int, asked: int, chars: int, skipped: int) -> str:
    """The summary's line of a dry run."""
    tokens = chars // CHARS_PER_TOKEN
    estimate = (
        f" (~{tokens:,} prompt tokens at {CHARS_PER_TOKEN} characters a token, plus the answers)"
        if asked
        else ""
    )
    # A skipped test stopped at its first judge call to ask: what it would have asked
    # after that is not known, so the count is a lower bound.
    bound = "at least " if skipped else ""
    return (
        f"dry run: {cached:,} judge calls cached, {bound}{asked:,} would be asked{estimate}; "
        f"{skipped:,} test(s) skipped at their first judge call to ask; nothing was sent to "
        "the judge"
    )
