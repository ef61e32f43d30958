"""A client that goes away before the fake judge answers is ignored quietly.

An interrupted `rubric-judge compare` closes its connections while answers are on their
way; the server must neither print a `BrokenPipeError` traceback nor stop serving others.
"""

from __future__ import annotations

import json
import socket
import struct
import time

import httpx
import pytest

from pytest_rubric_judge.testing import FakeJudge


def _request(fake: FakeJudge) -> bytes:
    body = json.dumps(
        {"model": fake.model, "messages": [{"role": "user", "content": "Write a rubric for q"}]}
    ).encode()
    host = fake.url.split("//", 1)[1].split("/", 1)[0]
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_a_client_that_leaves_mid_answer_is_ignored_quietly(
    capfd: pytest.CaptureFixture[str], reset: bool
) -> None:
    with FakeJudge(latency=0.3) as fake:
        host, port = fake.url.split("//", 1)[1].split("/", 1)[0].split(":")
        for _ in range(3):
            client = socket.create_connection((host, int(port)))
            if reset:  # close with a TCP reset, as a killed process does
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.sendall(_request(fake))
            client.close()
        time.sleep(0.8)  # the answers are written to connections that are gone
        assert fake.request_count == 3
        reply = httpx.get(fake.url.removesuffix("/v1") + "/health", timeout=5)
        assert reply.status_code == 200  # still serving
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert "ConnectionResetError" not in err and "Exception occurred" not in err, err
