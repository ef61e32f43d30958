"""`python -m pytest_rubric_judge.cli`: the `rubric-judge` command."""

from __future__ import annotations

from . import main

raise SystemExit(main())
