"""Secrets: a planted API key and credentials inside the judge URL never reach an output.

A real pytest run (subprocess) against the fake judge, with the key in
RUBRIC_JUDGE_API_KEY and `user:password@` in the URL, with every output switched on:
verbose reports, logs at DEBUG on the terminal and in a file, JUnit XML, the cache. One
test passes, one fails (its traceback shows the `judge` fixture's repr), one hits a
server error whose body echoes every credential back. Then every byte is searched for
every form of each secret.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from pytest_rubric_judge import Judge
from pytest_rubric_judge.client import ChatClient
from pytest_rubric_judge.errors import JudgeUnavailableError
from pytest_rubric_judge.prompts import ParsedRequest
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

pytest_plugins = ["pytester"]

KEY = "sk-planted-KEY-7f3a9c2e1d"
USER = "ci-robot"
PASSWORD = "pw-planted-PASS-55e1b0"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
ECHO = f"you sent Bearer {KEY}, Basic {BASIC}, http://{USER}:{PASSWORD}@judge/v1"


def secret_forms() -> list[str]:
    return [KEY, PASSWORD, quote(PASSWORD, safe=""), BASIC]


def assert_clean(text: str, where: str) -> None:
    for secret in secret_forms():
        assert secret not in text, f"a secret ({secret[:6]}...) leaked into {where}"


def echoing_policy(request: ParsedRequest) -> str:
    """The heuristic judge, except for prompts that ask it to fail: then a 500 that echoes."""
    if "ECHO" in request.prompt:
        raise RuntimeError(ECHO)
    return ByResponsePolicy("GOOD")(request)


@pytest.fixture
def fake() -> Iterator[FakeJudge]:
    with FakeJudge(echoing_policy) as server:
        yield server


def url_with_credentials(fake: FakeJudge) -> str:
    return fake.url.replace("http://", f"http://{USER}:{quote(PASSWORD, safe='')}@")


SUITE = """
from pytest_rubric_judge import assert_preferred

def test_passes(judge):
    assert_preferred("Paris is the capital. GOOD", "Lyon.", prompt="Capital of France?")

def test_fails(judge):
    assert_preferred("Lyon.", "Paris is the capital. GOOD", prompt="Capital of France, again?")

def test_judge_error(judge):
    assert_preferred("a", "b", prompt="ECHO the credentials")
"""


def run_suite(
    pytester: pytest.Pytester, fake: FakeJudge, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> tuple[pytest.RunResult, list[Path]]:
    monkeypatch.setenv("RUBRIC_JUDGE_API_KEY", KEY)
    monkeypatch.setenv("RUBRIC_JUDGE_BASE_URL", url_with_credentials(fake))
    pytester.makepyfile(SUITE)
    cache, xml, log = (
        pytester.path / "cache",
        pytester.path / "junit.xml",
        pytester.path / "run.log",
    )
    result = pytester.runpytest(
        f"--judge-model={fake.model}",
        f"--judge-cache-dir={cache}",
        "--judge-max-retries=0",
        "-rA",
        "-vv",
        f"--junitxml={xml}",
        "-o",
        "junit_logging=all",
        "-o",
        "log_cli=true",
        "--log-cli-level=DEBUG",
        "--log-level=DEBUG",
        f"--log-file={log}",
        "--log-file-level=DEBUG",
        *extra,
    )
    result.assert_outcomes(passed=1, failed=1, errors=1)
    files = [xml, log, *(p for p in cache.rglob("*") if p.is_file())]
    return result, files


def test_planted_secrets_reach_no_output(
    pytester: pytest.Pytester, fake: FakeJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, files = run_suite(pytester, fake, monkeypatch)
    # The key was sent, as a bearer token, so the run really had it.
    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"
    out = result.stdout.str() + result.stderr.str()
    assert "HTTP 500" in out and "you sent Bearer ***, Basic ***" in out  # the echo, redacted
    assert_clean(out, "the terminal output")
    assert len(files) >= 3  # junit xml, the log file and the cache's files
    assert any(
        b"Capital of France" in path.read_bytes() for path in files[2:]
    )  # cache holds entries
    for path in files:
        assert_clean(path.read_bytes().decode("utf-8", "replace"), str(path))


def test_planted_secrets_reach_no_output_even_with_showlocals(
    pytester: pytest.Pytester, fake: FakeJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-l` prints every local of every frame of a failure's traceback."""
    result, files = run_suite(pytester, fake, monkeypatch, "-l", "--tb=long")
    out = result.stdout.str() + result.stderr.str()
    assert "Judge(base_url='http://***@127.0.0.1:" in out  # the `judge` local, redacted
    assert_clean(out, "the terminal output with -l")
    for path in files:
        assert_clean(path.read_bytes().decode("utf-8", "replace"), str(path))


# -- the client on its own ------------------------------------------------------------------


def test_url_credentials_are_sent_as_basic_auth_and_kept_out_of_the_client(
    fake: FakeJudge,
) -> None:
    with ChatClient(url_with_credentials(fake), max_retries=0) as client:
        client.complete([{"role": "user", "content": "hi"}], model="m")
        assert fake.requests[-1].headers["authorization"] == f"Basic {BASIC}"
        assert client.base_url == fake.url
        assert_clean(repr(client), "the client's repr")


def test_api_key_wins_over_url_credentials(fake: FakeJudge) -> None:
    with ChatClient(url_with_credentials(fake), api_key=KEY, max_retries=0) as client:
        client.complete([{"role": "user", "content": "hi"}], model="m")
    assert fake.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_echoed_credentials_are_redacted_from_error_text(fake: FakeJudge) -> None:
    for status in (400, 401, 500):
        fake.fail(status, body=ECHO)
        with ChatClient(url_with_credentials(fake), api_key=KEY, max_retries=0) as client:
            with pytest.raises(JudgeUnavailableError) as caught:
                client.complete([{"role": "user", "content": "hi"}], model="m")
        assert f"HTTP {status}" in str(caught.value)
        assert_clean(str(caught.value), f"the HTTP {status} error")
        assert_clean(repr(caught.value.args), f"the HTTP {status} error's args")


def test_unreachable_url_with_credentials_is_redacted() -> None:
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:9/v1"
    with ChatClient(url, api_key=KEY, max_retries=0, timeout=2) as client:
        with pytest.raises(JudgeUnavailableError) as caught:
            client.complete([{"role": "user", "content": "hi"}], model="m")
    assert "http://127.0.0.1:9/v1" in str(caught.value)
    assert_clean(str(caught.value), "a connection error")


def test_client_logs_carry_no_credentials(
    fake: FakeJudge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail(503)
    with ChatClient(url_with_credentials(fake), max_retries=1, sleep=lambda _: None) as client:
        client.complete([{"role": "user", "content": "hi"}], model="m")
    assert "retrying" in caplog.text
    assert_clean(caplog.text, "the logs")


def test_judge_error_text_carries_no_key(fake: FakeJudge) -> None:
    with Judge(url_with_credentials(fake), fake.model, api_key=KEY, max_retries=0) as judge:
        with pytest.raises(JudgeUnavailableError) as caught:
            judge.compare("ECHO this", "a", "b")
    assert "***" in str(caught.value)
    assert_clean(str(caught.value), "the judge error")
