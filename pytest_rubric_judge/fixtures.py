"""The `judge_baseline` fixture's type, where it used to live.

The fixtures are defined in `pytest_rubric_judge.plugin.fixtures`; this module keeps
`from pytest_rubric_judge.fixtures import Baseline` working.
"""

from __future__ import annotations

from .plugin.fixtures import Baseline, BaselineMissingError

__all__ = ["Baseline", "BaselineMissingError"]
