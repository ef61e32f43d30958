"""Cache entries as the judge stores them: a raw answer and what the parser reads from it.

The cache re-reads every stored answer from its raw text, so the cache tests need entries
whose `parsed` is exactly what `parse_rubric`, `parse_pass` or `parse_grade` gives for their
`raw`. The raw texts are written here by hand (JSON or fenced YAML, as judges answer), and
`parsed` comes from the real parser.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_rubric_judge.cache import CacheEntry, key_fields
from pytest_rubric_judge.models import Criterion, Rubric, Usage
from pytest_rubric_judge.parsing import parse_grade, parse_pass, parse_rubric

CRITERIA: list[dict[str, object]] = [
    {"name": "accuracy", "description": "Facts are right.", "weight": 0.6, "type": "scale"},
    {"name": "clarity", "description": "Easy to read.", "weight": 0.4, "type": "scale"},
]
SAMPLING: dict[str, object] = {
    "temperature": 0.0,
    "max_tokens": 1024,
    "top_p": 1.0,
    "seed": 1234,
    "structured_output": False,
}
USAGE = Usage(prompt_tokens=10, completion_tokens=3, total_tokens=13)
#: One recording time for every entry made here, so that the same call gives an equal entry.
RECORDED_AT = time.time()


def rubric_of(criteria: Sequence[Mapping[str, object]] = CRITERIA) -> Rubric:
    return Rubric(criteria=tuple(Criterion.model_validate(dict(c)) for c in criteria))


def rubric_text(criteria: Sequence[Mapping[str, object]] = CRITERIA, *, pad: int = 0) -> str:
    """A rubric answer as fenced YAML; `pad` lengthens the first description."""
    lines = ["Here is the rubric.", "```yaml", "criteria:"]
    for number, criterion in enumerate(criteria):
        description = str(criterion["description"]) + (" x" * (pad // 2) if number == 0 else "")
        lines += [
            f"  - name: {criterion['name']}",
            f"    description: {json.dumps(description)}",
            f"    weight: {criterion['weight']}",
            f"    type: {criterion['type']}",
        ]
    return "\n".join([*lines, "```", ""])


def pass_text(
    preference: str = "B>A",
    scores: Mapping[str, tuple[Any, Any]] | None = None,
    overall: str = "B is more accurate.",
) -> str:
    """A pairwise answer as one JSON object, as a server under a JSON Schema writes it."""
    chosen = scores if scores is not None else {"accuracy": (2, 4), "clarity": (3, 5)}
    return json.dumps(
        {
            "scores": [
                {
                    "name": name,
                    "score_A": a,
                    "score_B": b,
                    "justification_A": f"A scores {a}.",
                    "justification_B": f"B scores {b}.",
                }
                for name, (a, b) in chosen.items()
            ],
            "overall_justification": overall,
            "preference": preference,
        }
    )


def grade_text(scores: Mapping[str, Any] | None = None) -> str:
    """A pointwise answer as fenced YAML."""
    chosen = scores if scores is not None else {"accuracy": 4, "clarity": 3}
    lines = ["```yaml", "scores:"]
    for name, value in chosen.items():
        lines += [f"  - name: {name}", f"    score: {value}", "    justification: Fine."]
    return "\n".join([*lines, "overall_justification: Good enough.", "```", ""])


def _fields(kind: str, prompt: str, **more: Any) -> dict[str, object]:
    return key_fields(
        kind=kind,  # type: ignore[arg-type]
        protocol_version="1",
        template_hash="0123456789abcdef",
        model="judge-model",
        sampling=SAMPLING,
        prompt=prompt,
        reference=None,
        **more,
    )


def rubric_entry(
    index: int = 0,
    *,
    raw: str | None = None,
    criteria_count: tuple[int, int] = (2, 8),
    pad: int = 0,
) -> CacheEntry:
    """A stored rubric call on prompt number `index`."""
    text = raw if raw is not None else rubric_text(pad=pad)
    low, high = criteria_count
    fields = _fields("rubric", f"prompt {index} é", extra={"criteria_count": [low, high]})
    parsed = parse_rubric(text, min_criteria=low, max_criteria=high)
    return _entry(fields, text, parsed.model_dump(mode="json"))


def pass_entry(
    index: int = 0,
    *,
    preference: str = "B>A",
    scores: Mapping[str, tuple[Any, Any]] | None = None,
    raw: str | None = None,
    slot_a: str = "Three.",
    slot_b: str = "It depends on the university.",
) -> CacheEntry:
    """A stored pairwise pass on prompt number `index`."""
    text = raw if raw is not None else pass_text(preference, scores, overall=f"answer {index}")
    fields = _fields(
        "pass",
        f"prompt {index} é",
        rubric=[dict(c) for c in CRITERIA],
        response_slot_a=slot_a,
        response_slot_b=slot_b,
    )
    parsed = parse_pass(text, rubric_of())
    return _entry(fields, text, parsed.model_dump(mode="json"))


def grade_entry(
    index: int = 0, *, scores: Mapping[str, Any] | None = None, raw: str | None = None
) -> CacheEntry:
    """A stored pointwise grading on prompt number `index`."""
    text = raw if raw is not None else grade_text(scores)
    fields = _fields(
        "grade", f"prompt {index} é", rubric=[dict(c) for c in CRITERIA], response_slot_a="One."
    )
    parsed = parse_grade(text, rubric_of())
    return _entry(fields, text, parsed.model_dump(mode="json"))


def _entry(fields: dict[str, object], raw: str, parsed: dict[str, object]) -> CacheEntry:
    made = CacheEntry.for_fields(
        fields, raw=raw, parsed=parsed, usage=USAGE, latency_s=0.5, model="judge-model"
    )
    return made.model_copy(update={"created_at": RECORDED_AT})


def mixed_entries(count: int) -> list[CacheEntry]:
    """`count` entries of every kind, in turn."""
    makers = (rubric_entry, pass_entry, grade_entry)
    return [makers[index % 3](index) for index in range(count)]
