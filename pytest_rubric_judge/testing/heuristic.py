"""The default policy: an offline stand-in for a judge that scores text features.

It is not a language model. It scores the key words a response shares with the reference
(or the prompt), its length up to a cap and its sentence structure, so its verdicts are
deterministic, explainable (`HeuristicPolicy.features`) and the same in both slot orders.
The example suite and the project's own tests run on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .answers import ScoreValue, grade_yaml_answer, pass_yaml_answer, rubric_yaml_answer
from .policies import request_criteria
from .reading import ParsedRequest

__all__ = ["HeuristicPolicy", "TextFeatures"]

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
            return self.pass_answer(request)
        if request.task == "grade":
            return self.grade_answer(request)
        return self.rubric_answer(request)

    def grade_answer(self, request: ParsedRequest) -> str:
        """A pointwise answer: the response scored alone, as in a pass."""
        feats = self.features(request.response_a or "", request.prompt, request.reference)
        source = "reference" if request.reference else "prompt"
        items: list[dict[str, object]] = []
        for name, kind, _ in request_criteria(request):
            value, why = self._criterion(name, feats, source)
            score: ScoreValue = (
                feats.words > 0 and value >= 0.5
                if kind == "binary"
                else max(1, min(5, 1 + round(4 * value)))
            )
            items.append({"name": name, "score": score, "justification": why})
        return grade_yaml_answer(items, "Scored the response on shared key words and length.")

    def rubric_answer(self, request: ParsedRequest) -> str:
        """A rubric answer: the three article criteria, about the prompt's subject."""
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

    def pass_answer(self, request: ParsedRequest) -> str:
        """A pass answer: each slot scored on its own, the label from the weighted scores."""
        source = "the reference" if request.reference else "the prompt"
        slots = {
            slot: self.features(text or "", request.prompt, request.reference)
            for slot, text in (("A", request.response_a), ("B", request.response_b))
        }
        criteria = request_criteria(request)
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
