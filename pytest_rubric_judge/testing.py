"""A fake judge: a real OpenAI-compatible HTTP server on 127.0.0.1 for tests.

The project's own tests use it, and so can yours: it lets a suite that asserts with the
judge run offline, fast and deterministically, and it can misbehave on request (HTTP
errors, resets, hangs, malformed bodies) so that the failure paths get tested too.

    from pytest_rubric_judge.judge import Judge
    from pytest_rubric_judge.testing import FakeJudge, FixedPolicy

    with FakeJudge() as fake, Judge(fake.url, fake.model) as judge:  # heuristic policy
        verdict = judge.compare("What is 2+2?", "4", "2 + 2 is 4.")
        assert fake.request_count == 3              # one rubric, two passes

    with FakeJudge(FixedPolicy("A>B", 5, 2)) as fake:  # a judge that always prefers slot A
        fake.fail(503, times=2)                     # the next two requests get HTTP 503
        fake.script("not yaml at all")              # then this answer, then the policy
        ...

A *policy* turns the request, read back with `prompts.parse_request`, into the judge's
raw answer text. `HeuristicPolicy` (the default) is not a language model: it scores text
features (shared key words, length, sentences), so its verdicts are deterministic and the
same in both slot orders. `FixedPolicy` answers in slot terms whatever the responses, which
is how a position-biased judge looks. `ByResponsePolicy` prefers the response containing a
marker. The server never reads a verdict from the responses under test: it only sees what
`parse_request` finds between the delimiters.

Run it by hand with `python -m pytest_rubric_judge.testing [--port N] [--model M]`.
"""

from __future__ import annotations

import argparse
import http
import json
import logging
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, get_args

import yaml

from .prompts import ParsedRequest, parse_request

__all__ = [
    "DEFAULT_CRITERIA",
    "Answer",
    "ByResponsePolicy",
    "FakeJudge",
    "FaultKind",
    "FixedPolicy",
    "HeuristicPolicy",
    "Policy",
    "RecordedRequest",
    "TextFeatures",
    "grade_yaml_answer",
    "main",
    "pass_yaml_answer",
    "rubric_yaml_answer",
]

log = logging.getLogger(__name__)

#: Turns a judge request into the judge's raw answer text.
Policy = Callable[[ParsedRequest], str]
#: A scripted answer: the text itself, or a function of the request.
Answer = str | Callable[[ParsedRequest], str]
FaultKind = Literal["reset", "hang", "non_json", "no_choices", "empty", "truncated"]
_FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
ScoreValue = bool | int

#: The rubric the fixed policies write: the article's three criteria.
DEFAULT_CRITERIA: tuple[dict[str, object], ...] = (
    {
        "name": "accuracy",
        "description": "Whether the facts stated are correct.",
        "weight": 0.5,
        "type": "scale",
    },
    {
        "name": "completeness",
        "description": "Whether the response covers everything the prompt asks.",
        "weight": 0.3,
        "type": "scale",
    },
    {
        "name": "clarity",
        "description": "Whether the response is clear and well organised.",
        "weight": 0.2,
        "type": "scale",
    },
)


#: Set by the fake judge while a policy answers a request that carries a JSON Schema: the
#: answer helpers below then write bare JSON, as a server constrained by the schema does.
_ANSWER_JSON: ContextVar[bool] = ContextVar("fake_judge_answer_json", default=False)
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _answer_text(data: Mapping[str, object], width: int = 1000) -> str:
    """`data` as the judge's answer: fenced YAML, or JSON under a JSON Schema."""
    if _ANSWER_JSON.get():
        return json.dumps(data, ensure_ascii=False)
    body = yaml.dump(data, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=width)
    return f"```yaml\n{body}```"


def rubric_yaml_answer(criteria: Sequence[Mapping[str, object]]) -> str:
    """A rubric answer in the protocol's shape: `criteria` in a fenced yaml block."""
    return _answer_text({"criteria": [dict(c) for c in criteria]})


def grade_yaml_answer(
    scores: Sequence[Mapping[str, object]],
    overall: str = "Scored the response on every criterion of the rubric.",
) -> str:
    """A pointwise answer in the protocol's shape, fenced as a judge would write it."""
    data = {"scores": [dict(item) for item in scores], "overall_justification": overall}
    return _answer_text(data, width=80)


def pass_yaml_answer(
    scores: Sequence[Mapping[str, object]] | Mapping[str, tuple[ScoreValue, ScoreValue]],
    preference: str,
    overall: str = "Scored each response on every criterion of the rubric.",
) -> str:
    """A pairwise answer in the protocol's shape, in a fenced yaml block.

    `scores` is either the list of items as the protocol writes them (name, score_A,
    score_B, justification_A, justification_B) or a mapping `{name: (score_A, score_B)}`.
    Nothing is validated, so out-of-range scores or bad labels can test a parser.
    """
    if isinstance(scores, Mapping):
        items: list[dict[str, object]] = [
            {
                "name": name,
                "score_A": a,
                "score_B": b,
                "justification_A": f"Scored {a}.",
                "justification_B": f"Scored {b}.",
            }
            for name, (a, b) in scores.items()
        ]
    else:
        items = [dict(item) for item in scores]
    return _answer_text(
        {"scores": items, "overall_justification": overall, "preference": preference}
    )


def _request_criteria(request: ParsedRequest) -> list[tuple[str, str, float]]:
    """(name, type, weight) of the rubric the request carries; the default one if none."""
    raw = request.rubric.get("criteria") if request.rubric else None
    items = raw if isinstance(raw, list) and raw else list(DEFAULT_CRITERIA)
    found: list[tuple[str, str, float]] = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        kind = "binary" if item.get("type") == "binary" else "scale"
        weight = item.get("weight", 1.0)
        found.append((name, kind, float(weight) if isinstance(weight, (int, float)) else 1.0))
    return found


# -- the heuristic policy -------------------------------------------------------------

_WORD_RE = re.compile(r"[^\W_]+")
_STOPWORDS = frozenset(
    """a about all also an and any are as at be been but by can could did do does each for
    from had has have how i if in into is it its just many me more most much my no not of on
    one or our so some such than that the their them then there these they this to was we
    were what when where which who why will with would yes you your""".split()
)


def _content_words(text: str) -> list[str]:
    words = (w.casefold() for w in _WORD_RE.findall(text))
    return [w for w in words if w not in _STOPWORDS and (len(w) > 2 or w.isdigit())]


@dataclass(frozen=True)
class TextFeatures:
    """What the heuristic policy measures in one response; the three scores are in [0, 1]."""

    overlap: float
    completeness: float
    clarity: float
    shared: int
    keys: int
    content: int
    sentences: int
    words: int


class HeuristicPolicy:
    """An offline stand-in for a judge, scoring simple text features. Not a language model.

    Rubric requests get the three article criteria, described in terms of the prompt's
    subject. Pass requests score each response on its own, from the key words it shares
    with the reference (or the prompt when there is none), its length up to a cap, and its
    sentence structure. Each response is scored independently of its slot, so swapping the
    responses mirrors the verdict exactly.
    """

    def __init__(self, *, length_cap: int = 25, tie_band: float = 0.05) -> None:
        self.length_cap = length_cap
        self.tie_band = tie_band

    def __call__(self, request: ParsedRequest) -> str:
        if request.task == "pass":
            return self._pass(request)
        if request.task == "grade":
            return self._grade(request)
        return self._rubric(request)

    def _grade(self, request: ParsedRequest) -> str:
        """A pointwise answer: the response scored alone, as in a pass."""
        feats = self.features(request.response_a or "", request.prompt, request.reference)
        source = "reference" if request.reference else "prompt"
        items: list[dict[str, object]] = []
        for name, kind, _ in _request_criteria(request):
            value, why = self._criterion(name, feats, source)
            score: ScoreValue = (
                feats.words > 0 and value >= 0.5
                if kind == "binary"
                else max(1, min(5, 1 + round(4 * value)))
            )
            items.append({"name": name, "score": score, "justification": why})
        return grade_yaml_answer(items, "Scored the response on shared key words and length.")

    def _rubric(self, request: ParsedRequest) -> str:
        words = [w for w in _WORD_RE.findall(request.prompt) if w.casefold() not in _STOPWORDS]
        subject = " ".join(words[:5]) or "the prompt"
        checked = "and agree with the reference" if request.reference else "and verifiable"
        return rubric_yaml_answer(
            [
                {
                    "name": "accuracy",
                    "description": f"Whether the facts about {subject} are correct {checked}.",
                    "weight": 0.5,
                    "type": "scale",
                },
                {
                    "name": "completeness",
                    "description": f"Whether the response covers what is asked about {subject}.",
                    "weight": 0.3,
                    "type": "scale",
                },
                {
                    "name": "clarity",
                    "description": f"Whether the answer about {subject} is clear and organised.",
                    "weight": 0.2,
                    "type": "scale",
                },
            ]
        )

    def features(self, text: str, prompt: str, reference: str | None) -> TextFeatures:
        """The features of one response; public so tests can see why a verdict came out."""
        against = reference if reference else prompt
        keys = set(_content_words(against))
        content = _content_words(text)
        words = _WORD_RE.findall(text)
        shared = len(keys & set(content))
        if keys:
            overlap = shared / len(keys)
        else:
            overlap = 1.0 if content else 0.0
        cap = max(5, len(keys)) if reference else self.length_cap
        length = min(1.0, len(content) / cap)
        sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if _WORD_RE.search(s)]
        clarity = 0.0
        if words:
            stripped = text.rstrip()
            listed = re.search(r"^\s*(?:[-*]|\d+[.)])\s", text, re.MULTILINE) is not None
            clarity = 0.4
            clarity += 0.3 if stripped.endswith((".", "!", "?")) or listed else 0.0
            clarity += 0.3 if len(words) / max(1, len(sentences)) <= 25 else 0.0
        return TextFeatures(
            overlap=overlap,
            completeness=(overlap + length) / 2,
            clarity=clarity,
            shared=shared,
            keys=len(keys),
            content=len(content),
            sentences=len(sentences),
            words=len(words),
        )

    def _pass(self, request: ParsedRequest) -> str:
        source = "the reference" if request.reference else "the prompt"
        slots = {
            slot: self.features(text or "", request.prompt, request.reference)
            for slot, text in (("A", request.response_a), ("B", request.response_b))
        }
        criteria = _request_criteria(request)
        total_weight = sum(w for _, _, w in criteria) or 1.0
        weighted = {"A": 0.0, "B": 0.0}
        items: list[dict[str, object]] = []
        for name, kind, weight in criteria:
            scores: dict[str, ScoreValue] = {}
            reasons: dict[str, str] = {}
            for slot, feats in slots.items():
                value, why = self._criterion(name, feats, source)
                score: ScoreValue
                if kind == "binary":
                    score = feats.words > 0 and value >= 0.5
                    normalized = 1.0 if score else 0.0
                else:
                    score = 1 if feats.words == 0 else max(1, min(5, 1 + round(4 * value)))
                    normalized = (score - 1) / 4
                weighted[slot] += weight / total_weight * normalized
                scores[slot], reasons[slot] = score, why
            items.append(
                {
                    "name": name,
                    "score_A": scores["A"],
                    "score_B": scores["B"],
                    "justification_A": reasons["A"],
                    "justification_B": reasons["B"],
                }
            )
        a, b = weighted["A"], weighted["B"]
        if a < 0.15 and b < 0.15:
            preference = "A=B (bothbad)"
        elif a - b > self.tie_band:
            preference = "A>B"
        elif b - a > self.tie_band:
            preference = "B>A"
        else:
            preference = "A=B"
        overall = (
            f"By shared key words, length and sentence structure, response A scores "
            f"{a:.2f} and response B {b:.2f} (a text heuristic, not a language model)."
        )
        return pass_yaml_answer(items, preference, overall)

    @staticmethod
    def _criterion(name: str, feats: TextFeatures, source: str) -> tuple[float, str]:
        if feats.words == 0:
            return 0.0, "The response is empty."
        shares = f"shares {feats.shared} of {feats.keys} key words with {source}"
        shape = (
            f"{feats.sentences} sentence{'s' if feats.sentences != 1 else ''}, "
            f"{feats.words / max(1, feats.sentences):.0f} word(s) per sentence on average"
        )
        if re.search(r"accura|correct|fact|relevan|faithful|ground|precis", name):
            return feats.overlap, f"It {shares}."
        if re.search(r"complet|cover|thorough|detail|depth|scope", name):
            words = f"{feats.content} content word{'s' if feats.content != 1 else ''}"
            return feats.completeness, f"It has {words} and {shares}."
        if re.search(r"clar|struct|readab|organi|concis|style|format|fluen", name):
            return feats.clarity, f"It has {shape}."
        mean = (feats.overlap + feats.completeness + feats.clarity) / 3
        return mean, f"It {shares}; {shape}."


# -- fixed policies -------------------------------------------------------------------


def _slot_score(scores: Mapping[str, ScoreValue] | ScoreValue, name: str, kind: str) -> Any:
    """The score a fixed policy gives one criterion; None when a mapping leaves it out."""
    if isinstance(scores, Mapping):
        return scores.get(name)
    if kind == "binary":
        return scores if isinstance(scores, bool) else scores >= 3
    if isinstance(scores, bool):
        return 5 if scores else 1
    return scores


class FixedPolicy:
    """Always the same answer, in *slot* terms, whatever the responses say.

    `FixedPolicy("A>B", 5, 2)` prefers whatever sits in slot A: the position-biased judge
    that both-order evaluation exists to catch. Scores are an int (bool for binary
    criteria: true when >= 3) applied to every criterion, or a mapping by criterion name;
    a criterion left out of the mapping is left out of the answer, to test a parser.
    Rubric requests get `rubric`, or `DEFAULT_CRITERIA`.
    """

    def __init__(
        self,
        preference: str,
        scores_a: Mapping[str, ScoreValue] | ScoreValue = 4,
        scores_b: Mapping[str, ScoreValue] | ScoreValue = 2,
        rubric: Sequence[Mapping[str, object]] | None = None,
        *,
        overall: str = "A fixed answer from the fake judge.",
    ) -> None:
        self.preference = preference
        self.scores_a = scores_a
        self.scores_b = scores_b
        self.rubric = list(rubric) if rubric is not None else list(DEFAULT_CRITERIA)
        self.overall = overall

    def __call__(self, request: ParsedRequest) -> str:
        if request.task == "grade":
            return self.grade_answer(request, self.scores_a)
        if request.task != "pass":
            return rubric_yaml_answer(self.rubric)
        return self.answer(request, self.preference, self.scores_a, self.scores_b)

    def grade_answer(
        self, request: ParsedRequest, scores: Mapping[str, ScoreValue] | ScoreValue
    ) -> str:
        """A pointwise answer for the request's rubric with these scores."""
        items: list[dict[str, object]] = []
        for name, kind, _ in _request_criteria(request):
            value = _slot_score(scores, name, kind)
            if value is not None:
                items.append({"name": name, "score": value, "justification": f"Fixed {value}."})
        return grade_yaml_answer(items, self.overall)

    def answer(
        self,
        request: ParsedRequest,
        preference: str,
        scores_a: Mapping[str, ScoreValue] | ScoreValue,
        scores_b: Mapping[str, ScoreValue] | ScoreValue,
    ) -> str:
        """A pass answer for the request's rubric with these slot scores and label."""
        items: list[dict[str, object]] = []
        for name, kind, _ in _request_criteria(request):
            a, b = _slot_score(scores_a, name, kind), _slot_score(scores_b, name, kind)
            if a is None or b is None:
                continue
            items.append(
                {
                    "name": name,
                    "score_A": a,
                    "score_B": b,
                    "justification_A": f"Fixed score {a}.",
                    "justification_B": f"Fixed score {b}.",
                }
            )
        return pass_yaml_answer(items, preference, self.overall)


class ByResponsePolicy(FixedPolicy):
    """Prefers the response that contains `winner_contains`, in whichever slot it sits.

    Consistent in both orders, so a test decides pass or fail by where it puts the marker.
    When both or neither response contains it, the answer is A=B with equal scores.
    """

    def __init__(
        self,
        winner_contains: str,
        *,
        high: int = 5,
        low: int = 2,
        rubric: Sequence[Mapping[str, object]] | None = None,
    ) -> None:
        super().__init__("A=B", high, low, rubric, overall="The fake judge looked for a marker.")
        self.winner_contains = winner_contains
        self.high = high
        self.low = low

    def __call__(self, request: ParsedRequest) -> str:
        if request.task == "grade":
            found = self.winner_contains in (request.response_a or "")
            return self.grade_answer(request, self.high if found else self.low)
        if request.task != "pass":
            return rubric_yaml_answer(self.rubric)
        in_a = self.winner_contains in (request.response_a or "")
        in_b = self.winner_contains in (request.response_b or "")
        if in_a and not in_b:
            return self.answer(request, "A>B", self.high, self.low)
        if in_b and not in_a:
            return self.answer(request, "B>A", self.low, self.high)
        middle = (self.high + self.low) // 2
        return self.answer(request, "A=B", middle, middle)


# -- the server -----------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake judge received, as it arrived."""

    method: str
    path: str
    #: The decoded JSON body ({} for GET or a body that was not JSON).
    body: dict[str, Any]
    #: The chat request read back with `prompts.parse_request`; None for other requests.
    parsed: ParsedRequest | None
    #: Header names lowercased.
    headers: dict[str, str]


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: str | None
    body: str | None


@dataclass
class _Reply:
    status: int
    payload: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None  # "reset" or "hang": the handler misbehaves instead


def _json_reply(status: int, data: object, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(data).encode(), headers=headers or {})


def _error_reply(status: int, message: str, kind: str = "invalid_request_error") -> _Reply:
    return _json_reply(status, {"error": {"message": message, "type": kind, "code": status}})


def _message_text(content: object) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict)]
        if all(isinstance(t, str) for t in texts):
            return "".join(t for t in texts if isinstance(t, str))
    return None


class FakeJudge:
    """An OpenAI-compatible judge server on 127.0.0.1, answering from a policy.

    Endpoints: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`. Each chat
    request first consumes a queued failure or fault (`fail`, `fault`), then a scripted
    answer (`script`), and only then asks the policy. The server stops itself after
    `max_lifetime` seconds so that a forgotten one cannot outlive a test run.

    A request carrying a JSON Schema (`response_format` of type `json_schema`) gets bare
    JSON from the answer helpers (`pass_yaml_answer` and the others), as a server that
    constrains its output writes; `structured_answers=False` keeps fenced YAML for every
    request. Scripted text is sent as it is.
    """

    #: How long a "hang" fault keeps the connection open without answering.
    hang_s: float = 30.0

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        model: str = "fake-judge",
        latency: float = 0.0,
        max_lifetime: float = 900.0,
        port: int = 0,
        structured_answers: bool = True,
    ) -> None:
        self.policy: Policy = policy if policy is not None else HeuristicPolicy()
        self.structured_answers = structured_answers
        self.model = model
        self.latency = latency
        self.max_lifetime = max_lifetime
        self._port = port
        self._lock = threading.Lock()  # the logs and queues, shared with handler threads
        self._life = threading.Lock()  # start and stop
        self._log: list[RecordedRequest] = []
        self._count = 0
        self._serial = 0
        self._scripts: deque[Answer] = deque()
        self._actions: deque[_Failure | str] = deque()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Timer | None = None
        self._stopped = threading.Event()
        self._stopped.set()
        self._url: str | None = None

    def __repr__(self) -> str:
        state = self._url if self.running else "stopped"
        return f"FakeJudge({state}, model={self.model!r}, policy={type(self.policy).__name__})"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeJudge:
        """Bind a free port on 127.0.0.1 (or `port`) and serve in a daemon thread."""
        with self._life:
            if self._server is not None:
                return self
            server = _Server(("127.0.0.1", self._port), self)
            self._stopped.clear()
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name=f"FakeJudge:{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            watchdog = threading.Timer(self.max_lifetime, self.stop)
            watchdog.daemon = True
            watchdog.start()
            self._server, self._thread, self._watchdog = server, thread, watchdog
            self._url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections. Idempotent, safe from any thread."""
        with self._life:
            server, thread, watchdog = self._server, self._thread, self._watchdog
            self._server = self._thread = self._watchdog = None
            self._stopped.set()  # wakes hanging and sleeping handlers
        if server is None:
            return
        if watchdog is not None:
            watchdog.cancel()
        if thread is not threading.current_thread():
            server.shutdown()
        server.drop_connections()
        server.server_close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped (by `stop` or the watchdog); True if it has."""
        return self._stopped.wait(timeout)

    @property
    def running(self) -> bool:
        return not self._stopped.is_set()

    def __enter__(self) -> FakeJudge:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, "http://127.0.0.1:<port>/v1" (kept after `stop`)."""
        if self._url is None:
            raise RuntimeError("FakeJudge has not been started; call start() or use `with`")
        return self._url

    # -- scripting ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received, in order."""
        with self._lock:
            return list(self._log)

    @property
    def request_count(self) -> int:
        """How many chat-completion requests arrived (failed ones included)."""
        with self._lock:
            return self._count

    def reset(self) -> None:
        """Forget the request log and drop queued answers, failures and faults."""
        with self._lock:
            self._log.clear()
            self._count = 0
            self._scripts.clear()
            self._actions.clear()

    def script(self, *answers: Answer) -> None:
        """Queue raw answers (or functions of the request), used FIFO before the policy."""
        with self._lock:
            self._scripts.extend(answers)

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        body: str | None = None,
    ) -> None:
        """Answer the next `times` chat requests with HTTP `status` (and a Retry-After).

        `body` is sent as is; by default an OpenAI-style JSON error.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"fail() takes an HTTP error status 400-599, got {status}")
        header: str | None
        if retry_after is None or isinstance(retry_after, str):
            header = retry_after
        else:
            header = f"{retry_after:g}"
        with self._lock:
            self._actions.extend([_Failure(status, header, body)] * times)

    def fault(self, kind: FaultKind, *, times: int = 1) -> None:
        """Misbehave on the next `times` chat requests.

        reset: headers with a Content-Length, half the body, then an abrupt close.
        hang: never answer (until `hang_s` passes or the server stops).
        non_json: HTTP 200 with an HTML body. no_choices: a completion without `choices`.
        empty: `content` is "". truncated: half the answer, finish_reason "length".
        """
        if kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(_FAULT_KINDS)}")
        with self._lock:
            self._actions.extend([kind] * times)

    # -- answering ----------------------------------------------------------------------

    def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> _Reply:
        body: dict[str, Any] = {}
        decoded: object = None
        if raw:
            try:
                decoded = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                decoded = None
            body = decoded if isinstance(decoded, dict) else {}
        route = path.split("?", 1)[0]
        if route == "/v1/chat/completions" and method == "POST":
            return self._chat(route, headers, body, valid_json=isinstance(decoded, dict))
        with self._lock:
            self._log.append(RecordedRequest(method, route, body, None, headers))
        if route == "/v1/models" and method == "GET":
            data = [{"id": self.model, "object": "model", "owned_by": "pytest-rubric-judge"}]
            return _json_reply(200, {"object": "list", "data": data})
        if route == "/health" and method == "GET":
            return _json_reply(200, {"status": "ok"})
        if route in ("/v1/chat/completions", "/v1/models", "/health"):
            return _error_reply(405, f"method {method} not allowed on {route}")
        return _error_reply(404, f"no route for {method} {route}", "not_found_error")

    def _chat(
        self, path: str, headers: dict[str, str], body: dict[str, Any], *, valid_json: bool
    ) -> _Reply:
        messages = body.get("messages")
        texts: list[dict[str, str]] | None = None
        if isinstance(messages, list) and messages:
            texts = []
            for message in messages:
                role = message.get("role") if isinstance(message, dict) else None
                text = _message_text(message.get("content")) if isinstance(message, dict) else None
                if not isinstance(role, str) or text is None:
                    texts = None
                    break
                texts.append({"role": role, "content": text})
        parsed: ParsedRequest | None = None
        if texts is not None:
            try:
                parsed = parse_request(texts)
            except Exception:  # a request not built by our templates; answer it anyway
                log.debug("fake judge could not parse a request", exc_info=True)
        with self._lock:
            self._log.append(RecordedRequest("POST", path, body, parsed, headers))
            self._count += 1
            self._serial += 1
            serial = self._serial
            action = self._actions.popleft() if self._actions else None
        if self.latency > 0 and action != "hang":
            self._stopped.wait(self.latency)
        if isinstance(action, _Failure):
            return self._failure(action)
        if action in ("hang", "reset"):
            return _Reply(200, fault=action, payload=b'{"id": "chatcmpl-fake", "choices": []}')
        if action == "non_json":
            return _Reply(200, b"<html><body>not a chat completion</body></html>", "text/html")
        if not valid_json or texts is None or parsed is None:
            return _error_reply(400, "body must be JSON with messages: [{role, content}, ...]")
        prompt_chars = sum(len(m["content"]) for m in texts)
        if action == "empty":
            return _json_reply(200, self._completion(serial, "", "stop", prompt_chars))
        if action == "no_choices":
            data = self._completion(serial, "", "stop", prompt_chars)
            del data["choices"]
            return _json_reply(200, data)
        try:
            text = self._answer(parsed, structured=self._wants_json(body))
        except Exception as exc:
            log.exception("fake judge policy failed")
            return _error_reply(500, f"fake judge policy raised {exc!r}", "server_error")
        if action == "truncated":
            text = text[: len(text) // 2]
            return _json_reply(200, self._completion(serial, text, "length", prompt_chars))
        return _json_reply(200, self._completion(serial, text, "stop", prompt_chars))

    def _wants_json(self, body: Mapping[str, Any]) -> bool:
        response_format = body.get("response_format")
        return (
            self.structured_answers
            and isinstance(response_format, dict)
            and response_format.get("type") == "json_schema"
        )

    def _answer(self, parsed: ParsedRequest, *, structured: bool = False) -> str:
        with self._lock:
            scripted = self._scripts.popleft() if self._scripts else None
        token = _ANSWER_JSON.set(structured)
        try:
            if scripted is None:
                return self.policy(parsed)
            return scripted if isinstance(scripted, str) else scripted(parsed)
        finally:
            _ANSWER_JSON.reset(token)

    @staticmethod
    def _failure(failure: _Failure) -> _Reply:
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
        if failure.body is not None:
            try:
                json.loads(failure.body)
                kind = "application/json"
            except json.JSONDecodeError:
                kind = "text/plain; charset=utf-8"
            return _Reply(failure.status, failure.body.encode(), kind, headers)
        phrase = http.HTTPStatus(failure.status).phrase
        reply = _error_reply(failure.status, f"fake judge failure: {phrase}", "fake_failure")
        reply.headers.update(headers)
        return reply

    def _completion(self, serial: int, text: str, finish: str, prompt_chars: int) -> dict[str, Any]:
        prompt_tokens, completion_tokens = prompt_chars // 4 + 1, len(text) // 4 + 1
        return {
            "id": f"chatcmpl-fake-{serial}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], judge: FakeJudge) -> None:
        self.judge = judge
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def drop_connections(self) -> None:
        """Shut down kept-alive connections so no handler thread outlives `stop`."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx's pool expects
    timeout = 120  # an idle kept-alive connection is closed after this
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake judge: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        reply = self.server.judge._handle(method, self.path, headers, raw)
        if reply.fault == "hang":
            self.server.judge._stopped.wait(self.server.judge.hang_s)
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.payload)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if reply.fault == "reset":
            self.wfile.write(reply.payload[: len(reply.payload) // 2])
            self.wfile.flush()
            # Linger 0: close with a TCP reset instead of an orderly shutdown.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.wfile.write(reply.payload)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a fake judge in the foreground until Ctrl-C or its maximum lifetime."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_rubric_judge.testing",
        description="A fake OpenAI-compatible judge on 127.0.0.1 (heuristic policy).",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument("--model", default="fake-judge", help="model name to report")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--max-lifetime", type=float, default=900.0, help="stop after this many seconds"
    )
    args = parser.parse_args(argv)
    fake = FakeJudge(
        model=args.model, latency=args.latency, max_lifetime=args.max_lifetime, port=args.port
    )
    fake.start()
    print(f"fake judge at {fake.url} (model {fake.model!r}); Ctrl-C to stop", flush=True)
    try:
        fake.wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
