"""The controller's side of pytest-xdist: merge what each worker found.

Registered only when xdist is installed (its hook, `pytest_testnodedown`, exists only
then), and only on the controller.
"""

from __future__ import annotations

from typing import Any, Protocol

from .finish import WORKER_OUTPUT_KEY
from .state import RubricJudgePlugin


class _WorkerNode(Protocol):
    """What the controller sees of an xdist worker (`xdist.workermanage.WorkerController`)."""

    workeroutput: dict[str, Any]


class XdistHooks:
    """Takes in each worker's judgements, errors, totals and baseline writes."""

    def __init__(self, state: RubricJudgePlugin) -> None:
        self.state = state

    def pytest_testnodedown(self, node: _WorkerNode, error: object | None) -> None:
        output = getattr(node, "workeroutput", None) or {}
        data = output.get(WORKER_OUTPUT_KEY)
        if data is not None:
            self.state.merge_worker_output(data)
        elif error is not None:
            name = getattr(node, "gateway", None)
            self.state.add_note(
                f"judge: worker {getattr(name, 'id', '?')} went down before reporting its "
                f"judgements ({error}); the summary, reports and gates miss them"
            )
