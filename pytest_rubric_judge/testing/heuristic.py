"""The default policy: an offline stand-in for a judge that scores text features.

It is not a language model. It scores the key words a response shares with the reference
(or the prompt), its length up to a cap and its sentence structure, so its verdicts are
deterministic, explainable (`HeuristicPolicy.features`) and the same in both slot orders.
The example suite and the project's own tests run on it.

Structured inputs are read at their real header lines (`ParsedRequest.structure`): the
subject and key words come from the conversation's user messages, a trajectory is scored
on its assistant texts, and two criteria join the rubric when they apply: `groundedness`
(the share of the response's content words found in the retrieved documents) and
`tool_use` (a call made, none repeated, no tool error left unanswered, an answer after the
results).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .answers import ScoreValue, grade_yaml_answer, pass_yaml_answer, rubric_yaml_answer
from .policies import request_criteria
from .reading import BlockStructure, ParsedRequest

__all__ = ["HeuristicPolicy", "TextFeatures"]

_WORD_RE = re.compile(r"[^\W_]+")
_STOPWORDS = frozenset(
    """a about all also an and any are as at be been but by can could did do does each for
    from had has have how i if in into is it its just many me more most much my no not of on
    one or our so some such than that the their them then there these they this to was we
    were what when where which who why will with would yes you your""".split()
)


#: The raw weight of each criterion that structured inputs add, before renormalising.
_EXTRA_WEIGHT = 0.25
_GROUNDED_RE = re.compile(r"ground|faithful")
_TOOL_RE = re.compile(r"tool")
_TOOL_ERROR_RE = re.compile(
    r"\b(?:error|exception|traceback|failed|failure|not found|timed? ?out|unavailable|invalid)\b",
    re.IGNORECASE,
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
            return self.pass_answer(request)
        if request.task == "grade":
            return self.grade_answer(request)
        return self.rubric_answer(request)

    def grade_answer(self, request: ParsedRequest) -> str:
        """A pointwise answer: the response scored alone, as in a pass."""
        view = _View.of(request, the="")
        response, text = _response(request, "response_a")
        feats = self.features(text, view.against, request.reference)
        items: list[dict[str, object]] = []
        for name, kind, _ in request_criteria(request):
            value, why, empty = view.criterion(name, feats, response, text)
            score: ScoreValue = (
                not empty and value >= 0.5
                if kind == "binary"
                else max(1, min(5, 1 + round(4 * value)))
            )
            items.append({"name": name, "score": score, "justification": why})
        return grade_yaml_answer(items, "Scored the response on shared key words and length.")

    def rubric_answer(self, request: ParsedRequest) -> str:
        """A rubric answer: the three article criteria, about the prompt's subject (of a
        conversation: its last user message), with `groundedness` when the prompt holds
        retrieved documents and `tool_use` when the responses are agent trajectories."""
        prompt = request.structure("prompt")
        about = (prompt.last_user or "") if prompt.structured else request.prompt
        words = [w for w in _WORD_RE.findall(about) if w.casefold() not in _STOPWORDS]
        subject = " ".join(words[:5]) or "the prompt"
        checked = "and agree with the reference" if request.reference else "and verifiable"
        # (name, description, raw weight): renormalised below when criteria are added.
        criteria: list[tuple[str, str, float]] = [
            ("accuracy", f"Whether the facts about {subject} are correct {checked}.", 0.5),
            ("completeness", f"Whether the response covers what is asked about {subject}.", 0.3),
            ("clarity", f"Whether the answer about {subject} is clear and organised.", 0.2),
        ]
        if prompt.documents:
            count = len(prompt.documents)
            documents = f"{count} retrieved document{'s' if count != 1 else ''}"
            criteria.append(
                (
                    "groundedness",
                    f"Whether every claim about {subject} is supported by the {documents}.",
                    _EXTRA_WEIGHT,
                )
            )
        if prompt.trajectories:
            criteria.append(
                (
                    "tool_use",
                    "Whether the agent calls the right tools with the right arguments, makes "
                    "no needless calls, recovers from tool errors and answers from the results.",
                    _EXTRA_WEIGHT,
                )
            )
        total = sum(weight for _, _, weight in criteria)
        return rubric_yaml_answer(
            [
                {
                    "name": name,
                    "description": description,
                    "weight": weight if total == 1.0 else round(weight / total, 4),
                    "type": "scale",
                }
                for name, description, weight in criteria
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

    def pass_answer(self, request: ParsedRequest) -> str:
        """A pass answer: each slot scored on its own, the label from the weighted scores."""
        view = _View.of(request)
        responses = {
            slot: _response(request, name)
            for slot, name in (("A", "response_a"), ("B", "response_b"))
        }
        slots = {
            slot: self.features(text, view.against, request.reference)
            for slot, (_, text) in responses.items()
        }
        criteria = request_criteria(request)
        total_weight = sum(w for _, _, w in criteria) or 1.0
        weighted = {"A": 0.0, "B": 0.0}
        items: list[dict[str, object]] = []
        for name, kind, weight in criteria:
            scores: dict[str, ScoreValue] = {}
            reasons: dict[str, str] = {}
            for slot, feats in slots.items():
                value, why, empty = view.criterion(name, feats, *responses[slot])
                score: ScoreValue
                if kind == "binary":
                    score = not empty and value >= 0.5
                    normalized = 1.0 if score else 0.0
                else:
                    score = 1 if empty else max(1, min(5, 1 + round(4 * value)))
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


def _response(request: ParsedRequest, name: str) -> tuple[BlockStructure, str]:
    """A response's parts, and the text its features are computed on: a plain response's
    whole text, a structured one's assistant texts (no headers, tool calls or results)."""
    response = request.structure(name)
    if not response.structured:
        return response, getattr(request, name) or ""
    return response, "\n".join(response.texts("assistant"))


@dataclass(frozen=True)
class _View:
    """What the policy reads of a request's prompt to score its responses."""

    prompt: BlockStructure
    #: The text whose key words a response should share (without a reference): the
    #: prompt, or the user messages of a conversation.
    against: str
    #: Where the key words come from, as a justification says it.
    source: str
    #: Whether tool use is judged: the prompt says the responses are trajectories.
    tools: bool

    @classmethod
    def of(cls, request: ParsedRequest, the: str = "the ") -> _View:
        """The view of `request`; `the` starts the source's name in justifications."""
        prompt = request.structure("prompt")
        if request.reference:
            source = f"{the}reference"
        else:
            source = f"{the}user messages" if prompt.structured else f"{the}prompt"
        against = "\n".join(prompt.texts("user")) if prompt.structured else request.prompt
        return cls(prompt, against, source, prompt.trajectories)

    def criterion(
        self, name: str, feats: TextFeatures, response: BlockStructure, text: str
    ) -> tuple[float, str, bool]:
        """The value, justification and emptiness of one criterion for one response
        (an empty response scores lowest, except on tool use)."""
        if self.prompt.documents and _GROUNDED_RE.search(name) and feats.words > 0:
            value, why = _groundedness(text, self.prompt.documents)
            return value, why, False
        if (self.tools or response.tool_calls) and _TOOL_RE.search(name):
            value, why = _tool_use(response)
            return value, why, False
        value, why = HeuristicPolicy._criterion(name, feats, self.source)
        return value, why, feats.words == 0


def _groundedness(text: str, documents: tuple[str, ...]) -> tuple[float, str]:
    """The share of the response's distinct content words found in the documents."""
    words = list(dict.fromkeys(_content_words(text)))
    known = {word for document in documents for word in _content_words(document)}
    missing = [word for word in words if word not in known]
    found = len(words) - len(missing)
    count = f"{len(documents)} retrieved document{'s' if len(documents) != 1 else ''}"
    why = f"{found} of its {len(words)} content words appear in the {count}"
    if missing:
        why += f"; not there: {', '.join(missing[:3])}"
    return found / max(1, len(words)), why + "."


def _arguments(arguments: str) -> str:
    """A call's arguments in one form, so that equal JSON compares equal."""
    try:
        return json.dumps(json.loads(arguments), sort_keys=True)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read
        return " ".join(arguments.split())


def _tool_use(response: BlockStructure) -> tuple[float, str]:
    """Tool use from the trajectory's shape: a call made, no call repeated with the same
    arguments after it succeeded (a retry after an error is no repeat), no tool error
    without a later call, an assistant answer after the results."""
    calls = response.tool_calls
    if not calls:
        return 0.0, "It answers without calling any tool, though the task expects tool use."
    results = response.tool_results
    errors = [r for r in results if _TOOL_ERROR_RE.search(r.text)]
    failed = {r.call_id for r in errors}
    succeeded: set[tuple[str, str]] = set()
    repeats = 0
    for call in calls:
        key = (call.name, _arguments(call.arguments))
        repeats += key in succeeded
        if call.call_id not in failed:
            succeeded.add(key)
    unrecovered = [r for r in errors if not any(c.message > r.message for c in calls)]
    last_result = max((r.message for r in results), default=0)
    answered = any(
        m.role == "assistant" and m.text.strip() and m.number > last_result
        for m in response.messages
    )
    value = 1.0 - 0.4 * repeats - 0.5 * len(unrecovered) - (0.0 if answered else 0.25)
    names = ", ".join(dict.fromkeys(call.name for call in calls))
    issues = []
    if repeats:
        issues.append(
            f"{repeats} call{'s repeat' if repeats != 1 else ' repeats'} an earlier one with the "
            "same arguments, needlessly"
        )
    if unrecovered:
        issues.append("a tool error is left without a retry")
    if not answered:
        issues.append("no answer follows the last tool result")
    made = f"It makes {len(calls)} tool call{'s' if len(calls) != 1 else ''} ({names})"
    if not issues:
        return 1.0, f"{made}, none repeated, and answers from the results."
    return max(0.0, value), f"{made}; {'; '.join(issues)}."
