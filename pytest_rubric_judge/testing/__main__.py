"""`python -m pytest_rubric_judge.testing`: a fake judge in the foreground.

    python -m pytest_rubric_judge.testing [--port N] [--model M] [--models A,B] [--latency S]
        [--engine E] [--no-images]

It prints its URL on the first line of output, then serves until Ctrl-C (and exits 0)
or until its maximum lifetime has passed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .engines import ENGINES
from .server import FakeJudge

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run a fake judge (heuristic policy) until interrupted or its maximum lifetime."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_rubric_judge.testing",
        description="A fake OpenAI-compatible judge on 127.0.0.1 (heuristic policy).",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument("--model", default="fake-judge", help="model name to report")
    parser.add_argument(
        "--models",
        default=None,
        metavar="A,B,...",
        help="model ids GET /v1/models lists, comma-separated (default: --model alone)",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--max-lifetime", type=float, default=900.0, help="stop after this many seconds"
    )
    parser.add_argument(
        "--engine",
        choices=sorted(ENGINES),
        default=None,
        help="refuse the response_format dialects this server refuses, as it does",
    )
    parser.add_argument(
        "--no-images",
        dest="images",
        action="store_false",
        help="refuse requests with image content parts, as a text-only model's server does",
    )
    args = parser.parse_args(argv)
    models = None
    if args.models is not None:
        models = [name.strip() for name in args.models.split(",") if name.strip()]
    fake = FakeJudge(
        model=args.model,
        latency=args.latency,
        max_lifetime=args.max_lifetime,
        port=args.port,
        models=models,
        engine=args.engine,
        images=args.images,
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
    sys.exit(main())
