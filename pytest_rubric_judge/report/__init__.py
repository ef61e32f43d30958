"""Reports: pure functions from verdicts to text. Nothing here writes to a terminal."""

from .text import (
    describe_preference,
    judgement_lines,
    summary_lines,
    verdict_table,
)

__all__ = ["describe_preference", "judgement_lines", "summary_lines", "verdict_table"]
