"""The `rubric-judge` command: one subcommand per module of this package.

Each subcommand module defines `register(subparsers)`, which adds its parser and sets
`func` (taking the parsed namespace, returning an exit status). Judge options mirror the
pytest plugin's, from the same option table, so a flag means the same in both places.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import JudgeError
from . import options

SUBCOMMANDS: tuple[str, ...] = ("compare", "merge", "cache", "calibrate", "show", "doctor", "diff")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rubric-judge",
        description="Rubric-based pairwise judging of LLM responses, outside pytest.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    import importlib

    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except options.CommandError as error:
        print(f"rubric-judge: error: {error}", file=sys.stderr)
        return 2
    except JudgeError as error:
        print(f"rubric-judge: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rubric-judge: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
