"""The judge's templates never rewrite the user's own text."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_rubric_judge
from pytest_rubric_judge import prompts
from pytest_rubric_judge.models import Rubric

RUBRIC = Rubric.of([{"name": "accuracy", "weight": 0.6}, {"name": "clarity", "weight": 0.4}])
TRICKY = "Say exactly: The two responses follow. Then stop."


@pytest.mark.parametrize("field", ["prompt", "reference"])
def test_the_pointwise_prompt_keeps_the_users_text_verbatim(field: str) -> None:
    prompt = TRICKY if field == "prompt" else "q"
    reference = TRICKY if field == "reference" else None
    messages = prompts.grade_messages(
        prompt, RUBRIC, "an answer", reference=reference, context_code="0" * 16,
        response_code="1" * 16,
    )  # fmt: skip
    user = messages[1]["content"]
    assert TRICKY in user
    assert "The response follows." in user
    assert user.count("The two responses follow.") == 1  # the user's, not the template's
    parsed = prompts.parse_request(messages)
    assert (parsed.prompt if field == "prompt" else parsed.reference) == TRICKY


def test_the_pairwise_prompt_keeps_the_users_text_verbatim() -> None:
    messages = prompts.pass_messages(
        TRICKY, RUBRIC, "a", "b", reference=None, context_code="0" * 16, response_code="1" * 16
    )
    user = messages[1]["content"]
    assert user.count("The two responses follow.") == 2
    assert prompts.parse_request(messages).prompt == TRICKY


def test_the_grading_head_differs_from_the_pairwise_head_only_in_its_last_line() -> None:
    pairwise = prompts.pass_messages(
        "q", RUBRIC, "a", "b", reference=None, context_code="0" * 16, response_code="1" * 16
    )[1]["content"]
    grading = prompts.grade_messages(
        "q", RUBRIC, "a", reference=None, context_code="0" * 16, response_code="1" * 16
    )[1]["content"]
    head = pairwise.split("The two responses follow.")[0]
    assert grading.startswith(head + "The response follows.\n")


def _private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.name}: from .{node.module} import {alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level > 0
        for alias in node.names
        if alias.name.startswith("_")
    ]


@pytest.mark.parametrize(
    "module",
    ["prompts", "parsing", "scoring", "models", "schemas", "assertions", "fences", "loading",
     "answers", "values"],
)  # fmt: skip
def test_no_private_name_is_imported_from_another_module(module: str) -> None:
    path = Path(pytest_rubric_judge.__file__).parent / f"{module}.py"
    assert _private_imports(path) == []
