"""The fake judge's answers, without a socket: request in, status and body out.

`FakeJudgeHandler` is what the fake judge does with a request: it routes it, records it,
consumes a queued failure, fault or scripted answer, or else asks its policy, and builds
the OpenAI-shaped body. It does no I/O and never sleeps, so any server can put it behind
its own sockets: `FakeJudge` serves it from threads, and an asyncio server can serve it
with a timer for latency. It is safe to call from several threads at once.

    handler = FakeJudgeHandler(ByResponsePolicy("GOOD"))
    reply = handler.chat({"model": "m", "messages": messages})
    reply.status, json.loads(reply.payload)["choices"][0]["message"]["content"]
"""

from __future__ import annotations

import http
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .answers import json_answers
from .engines import ENGINES, engine_refusal
from .heuristic import HeuristicPolicy
from .policies import Answer, Policy
from .reading import ParsedRequest, chat_messages, read_request

__all__ = [
    "CHAT_PATH",
    "IMAGES_REFUSED",
    "FakeJudgeHandler",
    "FaultKind",
    "RecordedRequest",
    "Reply",
]

log = logging.getLogger("pytest_rubric_judge.testing")

#: The one route that the policy answers (and that `request_count` counts).
CHAT_PATH = "/v1/chat/completions"
#: How the fake judge refuses images with `images=False`, as a text-only server does;
#: `{model}` is the model's name.
IMAGES_REFUSED = (
    "Invalid content type. image_url is only supported by certain models: the model {model} "
    "does not support image input."
)
FaultKind = Literal["reset", "hang", "non_json", "no_choices", "empty", "truncated"]
_FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake judge received, as it arrived."""

    method: str
    path: str
    #: The decoded JSON body ({} for GET or a body that was not JSON).
    body: dict[str, Any]
    #: The chat request read back with `read_request`; None for other requests.
    parsed: ParsedRequest | None
    #: Header names lowercased.
    headers: dict[str, str]


@dataclass
class Reply:
    """What to send back: status, body and headers, or a fault for the server to act out."""

    status: int
    payload: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: "reset" (send half the body, then close with a TCP reset) or "hang" (never answer).
    fault: FaultKind | None = None
    #: A chat-completion request: counted, and the one a server delays by its latency.
    chat: bool = False

    @classmethod
    def json(cls, status: int, data: object, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(data).encode(), headers=dict(headers or {}))

    @classmethod
    def error(cls, status: int, message: str, kind: str = "invalid_request_error") -> Reply:
        """An OpenAI-style error body."""
        return cls.json(status, {"error": {"message": message, "type": kind, "code": status}})


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: str | None
    body: str | None

    def reply(self) -> Reply:
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        if self.body is None:
            phrase = http.HTTPStatus(self.status).phrase
            reply = Reply.error(self.status, f"fake judge failure: {phrase}", "fake_failure")
            reply.headers.update(headers)
            return reply
        try:
            json.loads(self.body)
            kind = "application/json"
        except json.JSONDecodeError:
            kind = "text/plain; charset=utf-8"
        return Reply(self.status, self.body.encode(), kind, headers)


class FakeJudgeHandler:
    """Answers the fake judge's routes from a policy; keeps the log and the queues.

    Routes: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`. Each chat request
    first consumes a queued failure or fault (`fail`, `fault`), then a scripted answer
    (`script`), and only then asks the policy. A request carrying a `response_format` of
    any dialect (`json_schema`, `json_object`, TGI's `json`) is answered inside
    `json_answers()`, as a server that constrains its output writes, unless
    `structured_answers` is False. `engine` acts out how a real server refuses the
    dialects it does not take (`testing.engines`). `images=False` refuses a request that
    carries image content parts as a text-only server does (HTTP 400, `IMAGES_REFUSED`).
    `record=False` keeps no request log (a long benchmark would fill memory with it).
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        model: str = "fake-judge",
        structured_answers: bool = True,
        record: bool = True,
        engine: str | None = None,
        images: bool = True,
    ) -> None:
        if engine is not None and engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; one of {', '.join(sorted(ENGINES))}")
        self.policy: Policy = policy if policy is not None else HeuristicPolicy()
        self.model = model
        self.structured_answers = structured_answers
        #: An engine whose `response_format` refusals to act out (`testing.engines`).
        self.engine = engine
        #: Whether image content parts are accepted (False: refused, as by a text model).
        self.images = images
        self.record = record
        self._lock = threading.Lock()
        self._log: list[RecordedRequest] = []
        self._count = 0
        self._serial = 0
        self._scripts: deque[Answer] = deque()
        self._actions: deque[_Failure | FaultKind] = deque()

    # -- what the tests see and queue ------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received, in order."""
        with self._lock:
            return list(self._log)

    @property
    def request_count(self) -> int:
        """How many chat-completion requests arrived (failed ones included)."""
        with self._lock:
            return self._count

    def reset(self) -> None:
        """Forget the request log and drop queued answers, failures and faults."""
        with self._lock:
            self._log.clear()
            self._count = 0
            self._scripts.clear()
            self._actions.clear()

    def script(self, *answers: Answer) -> None:
        """Queue raw answers (or functions of the request), used FIFO before the policy."""
        with self._lock:
            self._scripts.extend(answers)

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        body: str | None = None,
    ) -> None:
        """Answer the next `times` chat requests with HTTP `status` (and a Retry-After).

        `body` is sent as is; by default an OpenAI-style JSON error.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"fail() takes an HTTP error status 400-599, got {status}")
        header: str | None
        if retry_after is None or isinstance(retry_after, str):
            header = retry_after
        else:
            header = f"{retry_after:g}"
        with self._lock:
            self._actions.extend([_Failure(status, header, body)] * times)

    def fault(self, kind: FaultKind, *, times: int = 1) -> None:
        """Misbehave on the next `times` chat requests.

        reset: headers with a Content-Length, half the body, then an abrupt close.
        hang: never answer (until the server gives up on it).
        non_json: HTTP 200 with an HTML body. no_choices: a completion without `choices`.
        empty: `content` is "". truncated: half the answer, finish_reason "length".
        """
        if kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(_FAULT_KINDS)}")
        with self._lock:
            self._actions.extend([kind] * times)

    # -- answering ------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        """Answer one HTTP request: its method, path (a query is ignored), header names
        lowercased, and raw body."""
        decoded: object = None
        if raw:
            try:
                decoded = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                decoded = None
        route = path.split("?", 1)[0]
        if route == CHAT_PATH and method == "POST":
            return self.chat(decoded, headers)
        body = decoded if isinstance(decoded, dict) else {}
        self._record(RecordedRequest(method, route, body, None, dict(headers)))
        if route == "/v1/models" and method == "GET":
            data = [{"id": self.model, "object": "model", "owned_by": "pytest-rubric-judge"}]
            return Reply.json(200, {"object": "list", "data": data})
        if route == "/health" and method == "GET":
            return Reply.json(200, {"status": "ok"})
        if route in (CHAT_PATH, "/v1/models", "/health"):
            return Reply.error(405, f"method {method} not allowed on {route}")
        return Reply.error(404, f"no route for {method} {route}", "not_found_error")

    def chat(self, body: object, headers: Mapping[str, str] | None = None) -> Reply:
        """Answer one chat-completion request, given its decoded JSON body."""
        reply = self._chat(body, dict(headers or {}))
        reply.chat = True
        return reply

    def _chat(self, decoded: object, headers: dict[str, str]) -> Reply:
        body: dict[str, Any] = decoded if isinstance(decoded, dict) else {}
        messages = chat_messages(body)
        parsed: ParsedRequest | None = None
        if messages is not None:
            try:  # the messages as sent: their image parts are counted
                parsed = read_request(body["messages"], body.get("seed"))
            except Exception:  # a request not built by our templates; answer it anyway
                log.debug("fake judge could not read a request", exc_info=True)
        with self._lock:
            if self.record:
                self._log.append(RecordedRequest("POST", CHAT_PATH, body, parsed, headers))
            self._count += 1
            self._serial += 1
            serial = self._serial
            action = self._actions.popleft() if self._actions else None
        if isinstance(action, _Failure):
            return action.reply()
        if action in ("hang", "reset"):
            return Reply(200, b'{"id": "chatcmpl-fake", "choices": []}', fault=action)
        if action == "non_json":
            return Reply(200, b"<html><body>not a chat completion</body></html>", "text/html")
        if messages is None or parsed is None or not isinstance(decoded, dict):
            return Reply.error(400, "body must be JSON with messages: [{role, content}, ...]")
        refused = engine_refusal(self.engine, body) if self.engine is not None else None
        if refused is not None:
            return Reply(refused[0], refused[1])
        if parsed.images and not self.images:
            return Reply.error(400, IMAGES_REFUSED.format(model=self.model))
        prompt_chars = sum(len(m["content"]) for m in messages)
        if action in ("empty", "no_choices"):
            data = self._completion(serial, "", "stop", prompt_chars)
            if action == "no_choices":
                del data["choices"]
            return Reply.json(200, data)
        try:
            text = self._answer(parsed, structured=self._wants_json(body))
        except Exception as exc:
            log.exception("fake judge policy failed")
            return Reply.error(500, f"fake judge policy raised {exc!r}", "server_error")
        if action == "truncated":
            text = text[: len(text) // 2]
            return Reply.json(200, self._completion(serial, text, "length", prompt_chars))
        return Reply.json(200, self._completion(serial, text, "stop", prompt_chars))

    def _record(self, request: RecordedRequest) -> None:
        if self.record:
            with self._lock:
                self._log.append(request)

    def _wants_json(self, body: Mapping[str, Any]) -> bool:
        response_format = body.get("response_format")
        return (
            self.structured_answers
            and isinstance(response_format, dict)
            and response_format.get("type") in ("json_schema", "json_object", "json")
        )

    def _answer(self, parsed: ParsedRequest, *, structured: bool) -> str:
        with self._lock:
            scripted = self._scripts.popleft() if self._scripts else None
        with json_answers(structured):
            if scripted is None:
                return self.policy(parsed)
            return scripted if isinstance(scripted, str) else scripted(parsed)

    def _completion(self, serial: int, text: str, finish: str, prompt_chars: int) -> dict[str, Any]:
        prompt_tokens, completion_tokens = prompt_chars // 4 + 1, len(text) // 4 + 1
        return {
            "id": f"chatcmpl-fake-{serial}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
