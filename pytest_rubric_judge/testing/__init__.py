"""A fake judge: a real OpenAI-compatible HTTP server on 127.0.0.1 for tests.

The project's own tests use it, and so can yours: it lets a suite that asserts with the
judge run offline, fast and deterministically, and it can misbehave on request (HTTP
errors, resets, hangs, malformed bodies) so that the failure paths get tested too.

    from pytest_rubric_judge import Judge
    from pytest_rubric_judge.testing import FakeJudge, FixedPolicy

    with FakeJudge() as fake, Judge(fake.url, fake.model) as judge:  # heuristic policy
        verdict = judge.compare("What is 2+2?", "4", "2 + 2 is 4.")
        assert fake.request_count == 3              # one rubric, two passes

    with FakeJudge(FixedPolicy("A>B", 5, 2)) as fake:  # a judge that always prefers slot A
        fake.fail(503, times=2)                     # the next two requests get HTTP 503
        fake.script("not yaml at all")              # then this answer, then the policy
        ...

A *policy* turns the request, read back with `read_request`, into the judge's raw answer
text. `HeuristicPolicy` (the default) is not a language model: it scores text features
(shared key words, length, sentences), so its verdicts are deterministic and the same in
both slot orders. `FixedPolicy` answers in slot terms whatever the responses, which is how
a position-biased judge looks. `ByResponsePolicy` prefers the response containing a
marker; `ProbabilisticPolicy` prefers it with a known probability per sample. The
server never reads a verdict from the responses under test: it only sees what
`read_request` finds between the delimiters.

Conversations, agent trajectories and retrieved documents are read at the header lines
that carry their block's code (`ParsedRequest.structure`, `split_block`): the heuristic
adds `groundedness` to the rubric of a prompt with documents and `tool_use` to that of
trajectories. Image parts are accepted; `FakeJudge(images=False)` refuses them as a
text-only server does.

The modules: `reading` (a request read back), `answers` (answer text in the protocol's
shapes), `policies` and `heuristic` (how the judge decides), `handler` (request in, reply
out, with the scripted failures and faults; no I/O, for any server to reuse), `server`
(`FakeJudge`, the threaded HTTP server) and `__main__` (run one by hand with
`python -m pytest_rubric_judge.testing [--port N] [--model M]`).
"""

from __future__ import annotations

from collections.abc import Sequence

from .answers import (
    ScoreValue,
    grade_yaml_answer,
    json_answers,
    pass_yaml_answer,
    rubric_yaml_answer,
)
from .handler import (
    CHAT_PATH,
    IMAGES_REFUSED,
    FakeJudgeHandler,
    FaultKind,
    RecordedRequest,
    Reply,
)
from .heuristic import HeuristicPolicy, TextFeatures
from .policies import (
    DEFAULT_CRITERIA,
    Answer,
    ByResponsePolicy,
    FixedPolicy,
    Policy,
    ProbabilisticPolicy,
    request_criteria,
)
from .reading import (
    BlockStructure,
    ParsedRequest,
    StructuredMessage,
    ToolCall,
    ToolResult,
    chat_messages,
    message_text,
    read_request,
    split_block,
)
from .server import FakeJudge


def main(argv: Sequence[str] | None = None) -> int:
    """Run a fake judge in the foreground, as `python -m pytest_rubric_judge.testing` does."""
    # Imported here, not above: `python -m` runs `__main__` itself after importing this
    # package, and a copy imported by the package first would make it warn.
    from .__main__ import main as run

    return run(argv)


__all__ = [
    "CHAT_PATH",
    "DEFAULT_CRITERIA",
    "IMAGES_REFUSED",
    "Answer",
    "BlockStructure",
    "ByResponsePolicy",
    "FakeJudge",
    "FakeJudgeHandler",
    "FaultKind",
    "FixedPolicy",
    "HeuristicPolicy",
    "ParsedRequest",
    "Policy",
    "ProbabilisticPolicy",
    "RecordedRequest",
    "Reply",
    "ScoreValue",
    "StructuredMessage",
    "TextFeatures",
    "ToolCall",
    "ToolResult",
    "chat_messages",
    "grade_yaml_answer",
    "json_answers",
    "main",
    "message_text",
    "pass_yaml_answer",
    "read_request",
    "request_criteria",
    "rubric_yaml_answer",
    "split_block",
]
