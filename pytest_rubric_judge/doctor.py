"""`rubric-judge doctor`: a preflight of a judge endpoint, run before a CI job gates on it.

`diagnose(judge)` asks the judge what a run would ask: its model list, one rubric, and a
few built-in pairs whose better response is plain, each judged in both slot orders by
`Judge.compare`. It measures latency and tokens, reads the context length when the server
reports one, notes the structured-output dialect that answered, and counts the verdicts
that changed with the order (position bias). The `DoctorReport` it returns holds the
findings, the options it recommends and its warnings; the command renders it.

The judge should be built with a throwaway cache in `refresh` mode, so that every call
reaches the server. Plain Python: no pytest.
"""

from __future__ import annotations

import json
import math
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .callspec import Request
from .completions import Completion
from .config import STRUCTURED_MODES
from .errors import JudgeError, JudgeUnavailableError
from .judge import Judge
from .server_info import context_length, get_json

__all__ = [
    "PAIRS",
    "DoctorReport",
    "Measure",
    "Pair",
    "PairOutcome",
    "diagnose",
    "recommended_timeout",
]

#: Failures that mean nothing answers at the URL: no use asking anything more.
UNREACHABLE = frozenset({"refused", "unreachable", "connect_timeout", "config"})
#: `--judge-timeout` is recommended at this many times the slowest answer ...
TIMEOUT_FACTOR = 4
#: ... and never below this many seconds.
MIN_TIMEOUT_S = 10
#: An answer using this share of `--judge-max-tokens` is near the cap.
NEAR_CAP = 0.8


@dataclass(frozen=True)
class Pair:
    """A built-in pair: a prompt, a reference, and two responses, one plainly better."""

    name: str
    prompt: str
    reference: str
    response_a: str
    response_b: str
    #: "A" or "B".
    better: str


PAIRS: tuple[Pair, ...] = (
    Pair(
        "capital",
        "What is the capital of France?",
        "Paris is the capital of France.",
        "The capital of France is Paris, on the Seine.",
        "Lyon, I think.",
        "A",
    ),
    Pair(
        "spider",
        "How many legs does a spider have?",
        "Spiders have eight legs.",
        "Six.",
        "A spider has eight legs; spiders are arachnids, not insects.",
        "B",
    ),
    Pair(
        "units",
        "Convert 3 kilometres to metres.",
        "3 kilometres is 3000 metres.",
        "3 kilometres is 3000 metres, since 1 kilometre is 1000 metres.",
        "About 300 metres.",
        "A",
    ),
    Pair(
        "planet",
        "Which planet is the largest in the solar system?",
        "Jupiter is the largest planet in the solar system.",
        "Mars is the largest planet.",
        "Jupiter is the largest planet in the solar system, more massive than all the "
        "other planets combined.",
        "B",
    ),
)


@dataclass(frozen=True)
class Measure:
    """One judge call as measured: wall time, tokens, and the requests it took."""

    seconds: float
    prompt_tokens: int
    completion_tokens: int
    requests: int


@dataclass(frozen=True)
class PairOutcome:
    """A built-in pair's verdict (both passes mapped back to the original A and B)."""

    name: str
    better: str
    preference: str | None = None
    forward: str | None = None
    reversed: str | None = None
    consistent: bool | None = None
    error: str | None = None

    @property
    def flipped(self) -> bool:
        """Both passes decided, for opposite responses: the slot decided, not the text."""
        return {self.forward, self.reversed} == {"A>B", "B>A"}

    @property
    def picked_better(self) -> bool:
        return self.preference == ("A>B" if self.better == "A" else "B>A")


@dataclass
class DoctorReport:
    """What `diagnose` found, what it recommends, and what it warns of."""

    url: str
    model: str | None = None
    model_given: bool = False
    models: list[str] | None = None
    models_error: str | None = None
    context_length: int | None = None
    context_source: str | None = None
    #: `Judge.structured_dialect` after the calls: "json_schema", ..., "off", "unprobed".
    dialect: str = "unprobed"
    #: `Judge.structured_summary`: the dialect with the ones the server refused.
    dialect_summary: str = ""
    #: Every constrained answer was something other than a JSON object: the server took
    #: `response_format` and ignored it.
    constraint_ignored: bool = False
    rubric: Measure | None = None
    rubric_error: str | None = None
    one_pass: Measure | None = None
    pairs: list[PairOutcome] = field(default_factory=list)
    slowest_s: float | None = None
    truncated: int = 0
    longest_answer_tokens: int = 0
    max_tokens: int | None = None
    #: Whether a request ran past `--judge-timeout`.
    timed_out: bool = False
    stats: dict[str, int] = field(default_factory=dict)
    #: (option, why) pairs, in the order they are printed.
    recommendations: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Why the check stopped early (nothing answers at the URL, no model to ask for).
    fatal: str | None = None

    @property
    def verdicts(self) -> int:
        return sum(1 for p in self.pairs if p.preference is not None)

    @property
    def flips(self) -> int:
        return sum(1 for p in self.pairs if p.flipped)

    @property
    def inconsistent(self) -> int:
        return sum(1 for p in self.pairs if p.consistent is False)

    @property
    def picked_better(self) -> int:
        return sum(1 for p in self.pairs if p.picked_better)

    @property
    def ok(self) -> bool:
        """Whether the judge produced at least one verdict."""
        return self.fatal is None and self.verdicts > 0

    @property
    def problem(self) -> str | None:
        """Why no verdict came, in one line; None when one did."""
        if self.ok:
            return None
        if self.fatal:
            return self.fatal
        errors = [p.error for p in self.pairs if p.error]
        cause = errors[0] if errors else self.rubric_error or "no pair was judged"
        return f"the judge produced no verdict: {cause}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pairs"] = [
            {**asdict(p), "flipped": p.flipped, "picked_better": p.picked_better}
            for p in self.pairs
        ]
        data["recommendations"] = [
            {"option": option, "why": why} for option, why in self.recommendations
        ]
        data.update(
            ok=self.ok,
            problem=self.problem,
            verdicts=self.verdicts,
            flips=self.flips,
            inconsistent=self.inconsistent,
            picked_better=self.picked_better,
        )
        return data


class _Observer:
    """Wraps a judge's blocking send to see every completion (finish reason, latency,
    tokens), which the judge's counters do not keep. Safe from its worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: list[Completion] = []
        #: Constrained requests, and those whose answer was not a JSON object at all: a
        #: server that takes `response_format` but ignores it (`transformers serve`).
        self.constrained = 0
        self.not_json = 0

    def wrap(self, send: Callable[[Request], Completion]) -> Callable[[Request], Completion]:
        def observed(request: Request) -> Completion:
            completion = send(request)
            ignored = request.response_format is not None and not _is_json_object(completion.text)
            with self._lock:
                self.seen.append(completion)
                self.constrained += request.response_format is not None
                self.not_json += ignored
            return completion

        return observed


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def recommended_timeout(slowest_s: float) -> int:
    """`TIMEOUT_FACTOR` times the slowest answer, rounded up to 5 s, at least `MIN_TIMEOUT_S`."""
    return max(MIN_TIMEOUT_S, 5 * math.ceil(TIMEOUT_FACTOR * slowest_s / 5))


def _read_context(judge: Judge, report: DoctorReport) -> None:
    listing = get_json(judge.config, "models")
    entries = listing.get("data") if listing else None
    entries = entries if isinstance(entries, list) else []
    found = context_length(entries, report.model)
    if found is None or "n_ctx_train" in found[1]:  # llama-server says what it serves here
        found = context_length(entries, report.model, get_json(judge.config, "props")) or found
    if found is not None:
        report.context_length, report.context_source = found


def _list_models(judge: Judge, report: DoctorReport) -> None:
    assert judge.client is not None
    try:
        report.models = judge.client.list_models()
    except JudgeUnavailableError as error:
        report.models_error = str(error)
        if error.cause in UNREACHABLE:
            report.fatal = f"cannot reach the judge at {report.url}: {error}"
            return
    if report.model_given:
        report.model = judge.model
        return
    if report.models_error is not None:
        report.fatal = (
            f"the judge's model list could not be read ({report.models_error}); "
            "name the model with --judge-model"
        )
        return
    try:
        with warnings.catch_warnings():  # the report names the choice itself
            warnings.simplefilter("ignore", UserWarning)
            report.model = judge.model
    except JudgeError as error:
        report.fatal = str(error)


def _measured(judge: Judge, before: Mapping[str, int], seconds: float) -> Measure:
    after = judge.stats_totals()
    return Measure(
        seconds=round(seconds, 3),
        prompt_tokens=after["prompt_tokens"] - before["prompt_tokens"],
        completion_tokens=after["completion_tokens"] - before["completion_tokens"],
        requests=after["requests"] - before["requests"],
    )


def _judge_pair(judge: Judge, pair: Pair, report: DoctorReport) -> None:
    try:
        verdict = judge.compare(
            pair.prompt, pair.response_a, pair.response_b, reference=pair.reference, samples=1
        )
    except JudgeError as error:
        report.timed_out |= isinstance(error, JudgeUnavailableError) and error.cause == "timeout"
        report.pairs.append(
            PairOutcome(pair.name, pair.better, error=f"{type(error).__name__}: {error}")
        )
        return
    report.pairs.append(
        PairOutcome(
            pair.name,
            pair.better,
            preference=verdict.preference,
            forward=verdict.forward.preference,
            reversed=verdict.reversed.preference,
            consistent=verdict.consistent,
        )
    )
    if report.one_pass is None:
        call = verdict.forward.call
        report.one_pass = Measure(
            seconds=round(call.latency_s, 3),
            prompt_tokens=call.usage.prompt_tokens,
            completion_tokens=call.usage.completion_tokens,
            requests=1 + int(call.repaired) + call.retries,
        )


def diagnose(
    judge: Judge,
    *,
    pairs: tuple[Pair, ...] = PAIRS,
    model_given: bool | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> DoctorReport:
    """Check `judge` (which must have a URL) and return what was found.

    `progress` is called with a short line as each step starts. `model_given` says
    whether the model was configured (default: whether the judge had one when called).
    """
    if judge.client is None or not judge.config.urls:
        raise ValueError("the doctor needs a judge with a URL")
    report = DoctorReport(url=judge.base_url or "", max_tokens=judge.config.max_tokens)
    report.model_given = judge.config.model is not None if model_given is None else model_given
    observer = _Observer()
    if judge.core.send is not None:
        judge.core.send = observer.wrap(judge.core.send)
    steps = 2 + len(pairs)
    progress(f"[1/{steps}] asking for the model list (GET /v1/models)")
    _list_models(judge, report)
    if report.fatal is None:
        _read_context(judge, report)
        progress(f"[2/{steps}] one rubric call ({pairs[0].name})")
        before, started = judge.stats_totals(), time.perf_counter()
        try:
            judge.rubric(pairs[0].prompt, reference=pairs[0].reference)
        except JudgeError as error:
            report.rubric_error = f"{type(error).__name__}: {error}"
            cause = error.cause if isinstance(error, JudgeUnavailableError) else ""
            report.timed_out = cause == "timeout"
            if cause in UNREACHABLE:
                report.fatal = f"cannot reach the judge at {report.url}: {error}"
        report.rubric = _measured(judge, before, time.perf_counter() - started)
    # Each pair starts with a rubric call of its own: after this one failed, they would
    # only repeat its failure, as slowly.
    if report.fatal is None and report.rubric_error is None:
        for number, pair in enumerate(pairs, 3):
            progress(f"[{number}/{steps}] pair {pair.name!r}, judged in both orders")
            _judge_pair(judge, pair, report)
    _observe(judge, observer, report)
    report.stats = judge.stats_totals()
    _recommend(judge, report)
    if report.ok:
        _warn(report)
    return report


def _observe(judge: Judge, observer: _Observer, report: DoctorReport) -> None:
    seen = list(observer.seen)
    if seen:
        report.slowest_s = round(max(c.latency_s for c in seen), 3)
        report.truncated = sum(1 for c in seen if c.finish_reason == "length")
        report.longest_answer_tokens = max(c.usage.completion_tokens for c in seen)
    report.dialect = judge.structured_dialect
    report.dialect_summary = judge.structured_summary
    report.constraint_ignored = observer.not_json > 0 and observer.not_json == observer.constrained


def _recommend(judge: Judge, report: DoctorReport) -> None:
    """The options to run with. For a judge that gave no verdict, only those that may be
    why: a longer timeout, more tokens; the rest would be tuned to a judge that fails."""
    add, ok = report.recommendations.append, report.ok
    if ok and report.model and not report.model_given:
        why = "pin the model: cache keys carry its name"
        if len(report.models or ()) > 1:
            why += f"; the server lists {len(report.models or ())}"
        add((f"--judge-model={report.model}", why))
    if ok and report.constraint_ignored:
        why = "the server takes response_format but does not follow it"
        add(("--judge-structured-output=off", why))
    elif ok and report.dialect in STRUCTURED_MODES and report.dialect != "auto":
        why = "the structured-output dialect that answered; no probing at start"
        if report.dialect == "off":
            why = "the server took no JSON Schema; answers are read from plain text"
        add((f"--judge-structured-output={report.dialect}", why))
    timeout = judge.config.timeout
    if report.timed_out:
        add((f"--judge-timeout={2 * timeout:g}", f"a request timed out at {timeout:g} s"))
    elif ok and report.slowest_s is not None:
        why = f"{TIMEOUT_FACTOR}x the slowest answer ({report.slowest_s:.2f} s), at least "
        add((f"--judge-timeout={recommended_timeout(report.slowest_s)}", f"{why}{MIN_TIMEOUT_S} s"))
    cap, longest = report.max_tokens, report.longest_answer_tokens
    if cap and report.truncated:
        why = f"{report.truncated} answer(s) were cut at {cap} tokens (finish_reason length)"
        add((f"--judge-max-tokens={2 * cap}", why))
    elif ok and cap and longest >= NEAR_CAP * cap:
        add((f"--judge-max-tokens={2 * cap}", f"the longest answer used {longest} of {cap} tokens"))


def _warn(report: DoctorReport) -> None:
    warn, judged = report.warnings.append, report.verdicts
    listed = report.models or []
    if report.model_given and listed and report.model not in listed:
        warn(f"the server does not list the model {report.model!r}; it lists {', '.join(listed)}")
    if report.flips:
        warn(
            f"position bias: {report.flips} of {judged} verdicts flipped with the order (each "
            "pass preferred whatever sat in the same slot); assertions report such verdicts "
            "as inconsistent. Try a stronger judge model, or measure the bias on your own "
            "labelled pairs with `rubric-judge calibrate`."
        )
    if report.inconsistent > report.flips:
        changed = report.inconsistent - report.flips
        warn(f"{changed} of {judged} verdicts changed with the order (one pass decided, one tied)")
    if judged and report.picked_better < judged:
        better = report.picked_better
        warn(f"the judge picked the clearly better response in only {better} of {judged} pairs")
    errors = [p.error for p in report.pairs if p.error]
    if errors and judged:
        warn(f"{len(errors)} of {len(report.pairs)} pairs were judge errors: {errors[0]}")
    if report.stats.get("repairs", 0):
        warn(
            f"{report.stats['repairs']} answer(s) could not be read at first and needed a "
            "repair request (slower, and more tokens)"
        )
