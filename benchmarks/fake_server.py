"""Run the project's fake judge in its own process for the benchmarks.

    python benchmarks/fake_server.py --port 18500 --latency 0.1 [--deepeval] [--no-log]

The answers are the fake judge's (`pytest_rubric_judge.testing.FakeJudgeHandler` and its
heuristic policy: the same request reading, policy and completion bodies as in the tests),
served by a small asyncio HTTP/1.1 server instead of the test server's thread per
connection: the latency is a timer, not a sleeping thread, so a hundred requests in flight
cost the server no more CPU than one at a time. The timer starts when a request arrives,
and the answer is computed while it runs, so each request is answered `--latency` seconds
after it arrived, however many arrived with it (as long as the server keeps up): the
server's own CPU, about half a millisecond per answer, would otherwise queue a burst of a
hundred requests for tens of milliseconds on top of the latency. It runs on uvloop's
loop where installed (`loops.run_loop`). Several of these may share one port
(`SO_REUSEPORT`; the kernel spreads connections between them). `--deepeval` answers
requests that are not this project's (DeepEval's G-Eval prompts) with JSON that G-Eval
reads. `--no-log` keeps no request log (the fake judge records every body by default).
`GET /bench/stats` says how many chat requests this process has answered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
from typing import cast

from pytest_rubric_judge.loops import run_loop
from pytest_rubric_judge.testing import (
    FakeJudgeHandler,
    HeuristicPolicy,
    ParsedRequest,
    Reply,
    json_answers,
)

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

_MAX_HEAD = 64 * 1024


#: In the system message of a single-call request (see `bench_compare.py tokens`).
SINGLE_CALL_MARK = "TASK: single-call"


class BenchPolicy:
    """The heuristic policy, plus the answers to the requests only the benchmarks send.

    A single-call request (its system message carries `SINGLE_CALL_MARK`) gets the
    heuristic's rubric and its pass in one JSON object; it reads as a request whose rubric
    is the default one. With `deepeval`, a request that is not this project's (DeepEval's
    G-Eval prompts) gets JSON that G-Eval reads.
    """

    def __init__(self, *, deepeval: bool = False) -> None:
        self.heuristic = HeuristicPolicy()
        self.deepeval = deepeval

    def __call__(self, request: ParsedRequest) -> str:
        if SINGLE_CALL_MARK in request.system:
            with json_answers():
                rubric = json.loads(self.heuristic.rubric_answer(request))
                scores = json.loads(self.heuristic.pass_answer(request))
            return json.dumps({**rubric, **scores}, ensure_ascii=False)
        if self.deepeval and request.task == "rubric" and not request.prompt:
            return GEVAL_ANSWER
        return self.heuristic(request)


class _Connection(asyncio.Protocol):
    """HTTP/1.1 keep-alive: requests answered in order, each after the fixed latency."""

    def __init__(self, handler: FakeJudgeHandler, latency: float) -> None:
        self.handler = handler
        self.latency = latency
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not subclasses of asyncio's, only alike)
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        # Only read the requests here: every connection with data in this turn of the loop
        # takes its arrival time before any answer is computed (`_answer`, queued).
        arrival = self.loop.time()
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEAD:
                    self._close()
                return
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            try:
                method, target, _ = lines[0].split(" ", 2)
            except ValueError:
                self._close()
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.loop.call_soon(self._answer, arrival, method, target, headers, body)

    def _answer(
        self, arrival: float, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> None:
        if target == "/bench/stats":
            reply = Reply.json(200, {"requests": self.handler.request_count})
        else:
            reply = self.handler.handle(method, target, headers, body)
        head = [f"HTTP/1.1 {reply.status} X", f"Content-Type: {reply.content_type}"]
        head += [f"Content-Length: {len(reply.payload)}"]
        head += [f"{key}: {value}" for key, value in reply.headers.items()]
        message = ("\r\n".join(head) + "\r\n\r\n").encode() + reply.payload
        # Answers on one connection leave in order: their arrival times are in order.
        self.loop.call_at(arrival + (self.latency if reply.chat else 0.0), self._send, message)

    def _send(self, message: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(message)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(handler: FakeJudgeHandler, port: int, latency: float, lifetime: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(handler, latency), sock=sock, backlog=1024
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"ready http://127.0.0.1:{port}/v1", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), timeout=lifetime)
    except TimeoutError:
        pass
    finally:
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--max-lifetime", type=float, default=1800.0)
    parser.add_argument("--deepeval", action="store_true")
    parser.add_argument("--no-log", action="store_true")
    args = parser.parse_args()
    handler = FakeJudgeHandler(BenchPolicy(deepeval=args.deepeval), record=not args.no_log)
    run_loop(serve(handler, args.port, args.latency, args.max_lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
