"""Run the project's fake judge in its own process for the benchmarks.

    python benchmarks/fake_server.py --port 18500 --latency 0.1 [--libyaml] [--deepeval]

Several of these may share one port (`SO_REUSEPORT`; the kernel spreads connections
between them), so the server can be given more than one process. `--libyaml` makes
PyYAML's pure-Python SafeLoader/SafeDumper the libyaml ones in this process (the change
proposed for `parsing.py`, `prompts.py` and `testing.py`). `--deepeval` answers requests
that are not this project's (DeepEval's G-Eval prompts) with JSON that G-Eval reads.
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from pytest_rubric_judge import testing
from pytest_rubric_judge.prompts import ParsedRequest

GEVAL_ANSWER = json.dumps(
    {
        "steps": [
            "Check the actual output against the input.",
            "Judge whether it is accurate and complete.",
        ],
        "score": 7,
        "reason": "The output answers the input accurately, with some detail missing.",
    }
)


def use_libyaml() -> None:
    """Route yaml.safe_load / safe_dump / scan(SafeLoader) through libyaml."""
    if not getattr(yaml, "__with_libyaml__", False):
        raise SystemExit("PyYAML was built without libyaml")
    yaml.SafeLoader = yaml.CSafeLoader  # type: ignore[misc]
    yaml.SafeDumper = yaml.CSafeDumper  # type: ignore[misc]


class DeepEvalAware:
    """The heuristic policy for this project's requests; G-Eval JSON for anything else."""

    def __init__(self) -> None:
        self.heuristic = testing.HeuristicPolicy()

    def __call__(self, request: ParsedRequest) -> str:
        if request.task == "rubric" and not request.prompt:
            return GEVAL_ANSWER
        return self.heuristic(request)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--max-lifetime", type=float, default=1800.0)
    parser.add_argument("--libyaml", action="store_true")
    parser.add_argument("--deepeval", action="store_true")
    args = parser.parse_args()
    if args.libyaml:
        use_libyaml()
    testing._Server.allow_reuse_port = True  # type: ignore[attr-defined]
    testing._Server.request_queue_size = 1024
    policy = DeepEvalAware() if args.deepeval else None
    fake = testing.FakeJudge(
        policy, latency=args.latency, max_lifetime=args.max_lifetime, port=args.port
    )
    fake.start()
    print(f"ready {fake.url}", flush=True)
    try:
        fake.wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
