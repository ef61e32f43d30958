"""JSON on the wire: a pass's request body and a completion's envelope, `json` against
orjson (`pytest_rubric_judge.wire_json`). No server: the body is the one a judge sends
for one pass (system, prompt, rubric, both responses, the pass's JSON Schema) and the
envelope the one the fake judge's handler answers it with.

    python benchmarks/bench_wire_json.py [--repeat 7] [--number 20000]

prints a Markdown table of the best of `--repeat` timings, in microseconds per call.
"""

from __future__ import annotations

import argparse
import json
import platform
import timeit

from pytest_rubric_judge.http_policy import chat_body
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.models import Criterion, Rubric
from pytest_rubric_judge.schemas import pass_format
from pytest_rubric_judge.testing import FakeJudgeHandler
from pytest_rubric_judge.wire_json import read_json

NAMES = ("accuracy", "completeness", "clarity", "concision")


def _pass_request() -> tuple[list[dict[str, object]], dict[str, object]]:
    rubric = Rubric.of(
        [
            Criterion(name=name, description=f"Is the response's {name} good?", weight=0.25)
            for name in NAMES
        ]
    )
    judge = Judge(None, "fake-judge", cache_mode="off")
    try:
        spec = judge.core.pass_spec(
            "Question 17: what is the capital of France, and why?",
            rubric,
            "Paris.",
            "Paris is the capital of France and its largest city.",
            None,
        )
        return spec.messages(), pass_format(rubric, "json_schema")
    finally:
        judge.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=20_000)
    args = parser.parse_args()
    messages, schema = _pass_request()
    options = {"model": "fake-judge", "seed": 0, "max_tokens": 1024, "response_format": schema}
    body = chat_body(messages, **options)
    envelope = FakeJudgeHandler().chat(json.loads(body)).payload  # the fake judge's answer

    def json_body() -> bytes:
        return json.dumps(
            {"model": "fake-judge", "temperature": 0.0, **options, "messages": messages},
            ensure_ascii=False,
        ).encode("utf-8")

    cases = [
        ("request body", len(body), json_body, lambda: chat_body(messages, **options)),
        ("completion envelope", len(envelope), lambda: json.loads(envelope),
         lambda: read_json(envelope)),
    ]  # fmt: skip
    print(f"Python {platform.python_version()}, {platform.machine()}; best of {args.repeat}")
    print("\n| what | bytes | json us | orjson path us | ratio |\n|---|---|---|---|---|")
    for what, size, old, new in cases:
        before = min(timeit.repeat(old, number=args.number, repeat=args.repeat)) / args.number
        after = min(timeit.repeat(new, number=args.number, repeat=args.repeat)) / args.number
        cells = f"{before * 1e6:.1f} | {after * 1e6:.1f} | {before / after:.1f}"
        print(f"| {what} | {size} | {cells} |")


if __name__ == "__main__":
    main()
