"""Reports: pure functions from verdicts to text. Nothing here writes to a terminal.

The names below load from `text` on first use, so importing one report module (say
`report.escape` for the command line) does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .text import describe_preference, judgment_lines, summary_lines, verdict_table

__all__ = ["describe_preference", "judgment_lines", "summary_lines", "verdict_table"]


def __getattr__(name: str) -> object:
    if name in __all__:
        return getattr(importlib.import_module(f"{__name__}.text"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
