"""Model families from model names, and the self-preference warning of calibration.

An LLM judge tends to prefer text written by its own model family (self-preference bias:
it rates its own family's phrasing, structure and habits as better, beyond their merit).
When a gold file names the models that wrote its responses and one of them is of the
judge's family, agreement measured on those rows may not carry over to other generators.

A family is read from the name by patterns on its lower-cased tokens (split at anything but
letters, digits and dots), the organisation prefix included: `Qwen/Qwen2.5-7B-Instruct`,
`qwen2.5:7b` and `qwen2.5-7b-instruct-q4_k_m.gguf` are all `qwen`. A name can belong to
two families (`DeepSeek-R1-Distill-Qwen-7B` is `deepseek` and `qwen`); a name no pattern
knows has none, and never warns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["FAMILIES", "model_families", "self_preference_warning"]

#: (family, pattern matched against each token of the lower-cased name).
FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern))
    for family, pattern in (
        ("qwen", r"^(qwen|qwq|qvq)"),
        ("llama", r"(?<!o)llama"),  # codellama, tinyllama; not ollama
        ("gpt", r"^(chat)?gpt|^o[1-9]$"),  # OpenAI: gpt-4o, gpt-oss, o1, o3
        ("claude", r"^claude"),
        ("gemma", r"gemma"),  # codegemma, recurrentgemma
        ("gemini", r"^gemini"),
        ("mistral", r"^(mistral|mixtral|ministral|codestral|magistral|devstral|pixtral)"),
        ("phi", r"^phi[0-9.]*$"),
        ("deepseek", r"^deepseek"),
        ("cohere", r"^(command|c4ai|aya)$"),
        ("glm", r"^(chat)?glm"),
        ("granite", r"^granite"),
        ("olmo", r"^olmo"),
        ("internlm", r"^internlm"),
        ("yi", r"^yi$"),
    )
)
_SPLIT = re.compile(r"[^a-z0-9.]+")


def model_families(name: str) -> frozenset[str]:
    """The families a model name belongs to; empty when no pattern knows it."""
    tokens = [token for token in _SPLIT.split(name.lower()) if token]
    return frozenset(
        family for family, pattern in FAMILIES if any(pattern.search(token) for token in tokens)
    )


def self_preference_warning(
    judge_model: str, row_generators: Iterable[Sequence[str]]
) -> str | None:
    """A warning when a generator named by the gold rows is of the judge's family.

    `row_generators` holds, per row, the models the row says wrote its responses."""
    judge_families = model_families(judge_model)
    if not judge_families:
        return None
    rows = 0
    shared: set[str] = set()
    names: dict[str, None] = {}
    for generators in row_generators:
        hit = False
        for name in generators:
            common = model_families(name) & judge_families
            if common:
                hit = True
                shared |= common
                names.setdefault(name)
        rows += hit
    if not rows:
        return None
    listed = ", ".join(list(names)[:5]) + (", ..." if len(names) > 5 else "")
    family = ", ".join(sorted(shared))
    return (
        f"self-preference bias: the judge {judge_model} is of the same model family "
        f"({family}) as the model that wrote responses in {rows} gold "
        f"row{'' if rows == 1 else 's'} ({listed}); judges tend to prefer text written by "
        "their own family, so agreement on those rows may not hold for other generators. "
        "Judge with a model of another family, or compare those rows with the rest."
    )
