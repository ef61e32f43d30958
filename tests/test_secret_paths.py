"""Every way a run can go wrong, with a planted key and URL password: nothing prints them.

Each test runs pytest for real (a subprocess) with the most verbose outputs pytest
has: `-l --tb=long -vv -rA`, JUnit XML with every log, DEBUG logs on the terminal. The
API key is planted in RUBRIC_JUDGE_API_KEY or OPENAI_API_KEY and a `user:password@` in
the judge URL; then stdout, stderr and the XML are searched for every form of each:
the key, the password raw and percent-encoded, and the Basic token.

The paths: a `--judge-serve` server that exits early (printing its whole environment,
which it inherits), one that never answers, one whose executable is missing; a judge that
cannot be reached (with and without xdist, with a panel); a malformed proxy variable that
stops the judge's client from being built; bad options (a URL with a bad port, a URL
that is not http, a bad panel member, a bad ini value, a bad number); a test that fails
on its own while a judge is configured; a fixture that errors; a replay-mode cache miss;
a server answering 401 with every credential echoed back; a test that holds and prints
the key itself; a project's judge hook that raises with the key in its message.
"""

from __future__ import annotations

import base64
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from pytest_rubric_judge.testing import FakeJudge

pytest_plugins = ["pytester"]

KEY = "sk-planted-KEY-3b8e1f0a9d"
USER = "ci-robot"
# Characters that change when percent-encoded, so the encoded form is a different text.
PASSWORD = "pw-planted/PASS+44c1"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
FORMS = (KEY, quote(KEY, safe=""), PASSWORD, quote(PASSWORD, safe=""), BASIC)
ECHO = f"unauthorized: Bearer {KEY}, Basic {BASIC}, password {PASSWORD}"
#: pytest's most verbose outputs.
LOUD = ("-l", "--tb=long", "-vv", "-rA", "-o", "junit_logging=all", "-o", "log_cli=true")
LOUD += ("--log-cli-level=DEBUG", "-p", "no:cacheprovider")

TESTS = """
from pytest_rubric_judge import assert_preferred

def test_fixture(judge):
    assert_preferred("Paris. GOOD", "Lyon.", prompt="Capital of France?")

def test_no_fixture():
    assert_preferred("Paris. GOOD", "Lyon.", prompt="Capital of France, again?")
"""


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://{USER}:{quote(PASSWORD, safe='')}@", 1)


def closed_port_url() -> str:
    """A loopback URL on which nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RUBRIC_JUDGE_API_KEY", KEY)
    yield


def run_loud(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, str]:
    """A run with every output on; returns the result and all it wrote (stdout, stderr, XML)."""
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest(*LOUD, f"--junitxml={xml}", *args)
    written = result.stdout.str() + "\n" + result.stderr.str()
    if xml.exists():
        written += "\n" + xml.read_text(encoding="utf-8")
    return result, written


def assert_no_secret(written: str) -> None:
    for form in FORMS:
        count = written.count(form)
        assert count == 0, f"{form[:8]}... printed {count} times:\n{_context(written, form)}"


def _context(text: str, form: str) -> str:
    at = text.find(form)
    return text[max(0, at - 300) : at + 100]


def serve_command(code: str) -> str:
    """A `--judge-serve` command running `code` (which may use `port`)."""
    script = "import os, sys, time\nport = int(sys.argv[1])\n" + textwrap.dedent(code)
    return f"{sys.executable} -c {_quote(script)} {{port}}"


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


# -- a server the run starts ------------------------------------------------------------------


PRINT_ENVIRONMENT = """
for name, value in sorted(os.environ.items()):
    print(f"{name}={value}", flush=True)
"""


def test_a_judge_server_that_exits_early(
    pytester: pytest.Pytester, planted: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server inherits the key and the URL; its log tail is quoted, masked."""
    monkeypatch.setenv("RUBRIC_JUDGE_BASE_URL", with_credentials("http://127.0.0.1:9/v1"))
    monkeypatch.setenv("JUDGE_DEBUG_TOKEN", f"{KEY}/{quote(PASSWORD, safe='')}/{BASIC}")
    pytester.makepyfile(TESTS)
    command = serve_command(PRINT_ENVIRONMENT + "sys.exit(3)\n")
    result, written = run_loud(pytester, f"--judge-serve={command}")
    result.assert_outcomes(errors=2)
    assert "exited with status 3 before it was ready" in written
    assert "RUBRIC_JUDGE_API_KEY=***" in written  # the tail is shown, masked
    assert_no_secret(written)


def test_a_judge_server_that_never_answers(pytester: pytest.Pytester, planted: None) -> None:
    pytester.makepyfile(TESTS)
    command = serve_command(PRINT_ENVIRONMENT + "time.sleep(60)\n")
    result, written = run_loud(pytester, f"--judge-serve={command}", "--judge-serve-timeout=1")
    result.assert_outcomes(errors=2)
    assert "did not answer within" in written
    assert "RUBRIC_JUDGE_API_KEY=***" in written
    assert_no_secret(written)


def test_a_judge_server_whose_command_is_missing(pytester: pytest.Pytester, planted: None) -> None:
    pytester.makepyfile(TESTS)
    result, written = run_loud(pytester, f"--judge-serve=no-such-judge-server-{KEY} {{port}}")
    result.assert_outcomes(errors=2)
    assert "could not start the judge server" in written
    assert_no_secret(written)


# -- a judge that cannot be reached -----------------------------------------------------------


@pytest.mark.parametrize("env", ["RUBRIC_JUDGE_API_KEY", "OPENAI_API_KEY"])
def test_a_judge_that_cannot_be_reached(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    monkeypatch.setenv(env, KEY)
    pytester.makepyfile(TESTS)
    url = with_credentials(closed_port_url())
    result, written = run_loud(
        pytester, f"--judge-url={url}", "--judge-model=m", "--judge-max-retries=0"
    )
    result.assert_outcomes(errors=2)
    assert "JudgeUnavailableError" in written
    assert_no_secret(written)


def test_a_judge_that_cannot_be_reached_under_xdist(
    pytester: pytest.Pytester, planted: None
) -> None:
    pytester.makepyfile(TESTS)
    url = with_credentials(closed_port_url())
    result, written = run_loud(
        pytester, "-n", "2", f"--judge-url={url}", "--judge-model=m", "--judge-max-retries=0"
    )
    result.assert_outcomes(errors=2)
    assert_no_secret(written)


def test_a_panel_that_cannot_be_reached(pytester: pytest.Pytester, planted: None) -> None:
    pytester.makepyfile(TESTS)
    url = with_credentials(closed_port_url())
    result, written = run_loud(
        pytester, f"--judge-panel=m1@{url},m2@{url}", "--judge-max-retries=0"
    )
    result.assert_outcomes(errors=2)
    assert_no_secret(written)


@pytest.mark.parametrize(
    "proxy",
    ["http://proxy.internal:notaport", "ftp://proxy.internal:3128", f"http://[{KEY}"],
)
def test_a_malformed_proxy_variable(
    pytester: pytest.Pytester, planted: None, monkeypatch: pytest.MonkeyPatch, proxy: str
) -> None:
    """A remote judge honours proxy variables; a malformed one must not print the key."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    pytester.makepyfile(TESTS)
    url = with_credentials("http://judge.invalid/v1")
    result, written = run_loud(
        pytester, f"--judge-url={url}", "--judge-model=m", "--judge-max-retries=0"
    )
    result.assert_outcomes(errors=2)
    assert_no_secret(written)


# -- bad options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "ini"),
    [
        ([f"--judge-url={with_credentials('http://127.0.0.1:99999/v1')}"], None, None),
        ([], with_credentials("ftp://judge.internal/v1"), None),
        ([f"--judge-panel=m@{with_credentials('http://judge.internal:x/v1')}"], None, None),
        ([], None, f"judge_url = {with_credentials('http://judge.internal/v1?x=1')}"),
        (
            [f"--judge-url={with_credentials('http://judge.internal/v1')}", "--judge-timeout=-1"],
            None,
            None,
        ),
        ([f"--judge-url=http://{USER}:{PASSWORD}@judge.internal/v1"], None, None),
        ([f"--judge-panel=m1@http://{USER}:{PASSWORD}@judge.internal/v1"], None, None),
    ],
    ids=[
        "bad-port",
        "env-not-http",
        "panel-bad-port",
        "ini-query",
        "bad-timeout",
        "unencoded-password",
        "panel-unencoded-password",
    ],
)
def test_bad_options(
    pytester: pytest.Pytester,
    planted: None,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: str | None,
    ini: str | None,
) -> None:
    if env is not None:
        monkeypatch.setenv("RUBRIC_JUDGE_BASE_URL", env)
    if ini is not None:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(TESTS)
    result, written = run_loud(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "judge" in written.lower()  # the error names what was wrong
    assert_no_secret(written)


# -- runs with a working judge ----------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeJudge]:
    with FakeJudge() as server:
        yield server


FAILING_ON_THEIR_OWN = """
import os
import pytest

@pytest.fixture
def broken(judge):
    raise RuntimeError("the fixture broke")

def test_fails_on_its_own(judge, request):
    settings = request.config
    answer = 41
    assert answer == 42

def test_fixture_errors(broken):
    pass

def test_raises(judge):
    raise ValueError("a plain error in a judged test")
"""


def test_tests_that_fail_on_their_own_while_a_judge_is_configured(
    pytester: pytest.Pytester, planted: None, fake: FakeJudge
) -> None:
    pytester.makepyfile(FAILING_ON_THEIR_OWN)
    result, written = run_loud(
        pytester, f"--judge-url={with_credentials(fake.url)}", f"--judge-model={fake.model}"
    )
    result.assert_outcomes(failed=2, errors=1)
    assert "assert 41 == 42" in written
    assert_no_secret(written)


def test_a_server_that_echoes_every_credential_in_a_401(
    pytester: pytest.Pytester, planted: None, fake: FakeJudge
) -> None:
    fake.fail(401, body=ECHO, times=10)
    pytester.makepyfile(TESTS)
    result, written = run_loud(
        pytester,
        f"--judge-url={with_credentials(fake.url)}",
        f"--judge-model={fake.model}",
        "--judge-max-retries=0",
    )
    result.assert_outcomes(errors=2)
    assert "HTTP 401" in written
    assert_no_secret(written)


def test_a_replay_cache_miss(pytester: pytest.Pytester, planted: None, tmp_path: Path) -> None:
    pytester.makepyfile(TESTS)
    url = with_credentials("http://judge.internal/v1")
    result, written = run_loud(
        pytester,
        f"--judge-url={url}",
        "--judge-model=m",
        "--judge-cache=replay",
        f"--judge-cache-dir={tmp_path / 'cache'}",
    )
    result.assert_outcomes(errors=2)
    assert_no_secret(written)


HOLDS_THE_KEY = """
import os
import sys

import pytest

def test_prints_and_holds_the_key(judge):
    token = os.environ["RUBRIC_JUDGE_API_KEY"]
    url = os.environ["RUBRIC_JUDGE_BASE_URL"]
    print("using", token, url)
    print("to stderr", token, file=sys.stderr)
    assert token == "something else"

def test_skips_with_the_key(judge):
    pytest.skip("no judge for " + os.environ["RUBRIC_JUDGE_API_KEY"])

def test_passes_and_prints_the_key(judge):
    print("passing with", os.environ["RUBRIC_JUDGE_API_KEY"])
"""


def test_a_test_that_holds_and_prints_the_key_itself(
    pytester: pytest.Pytester, planted: None, fake: FakeJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last line of defence: every report is masked, whatever put the key in it."""
    monkeypatch.setenv("RUBRIC_JUDGE_BASE_URL", with_credentials(fake.url))
    pytester.makepyfile(HOLDS_THE_KEY)
    result, written = run_loud(
        pytester, f"--judge-model={fake.model}", "-o", "junit_log_passing_tests=true"
    )
    result.assert_outcomes(failed=1, skipped=1, passed=1)
    assert "using ***" in written and "to stderr ***" in written and "passing with ***" in written
    assert "no judge for ***" in written
    assert_no_secret(written)


FAILING_HOOK = """
import os

def pytest_rubric_judge_make_judge(config):
    key = os.environ["RUBRIC_JUDGE_API_KEY"]
    raise RuntimeError(f"gateway refused key {key}")
"""


def test_a_make_judge_hook_that_fails(pytester: pytest.Pytester, planted: None) -> None:
    """A project's own judge hook raises with the key in its message and its locals."""
    pytester.makeconftest(FAILING_HOOK)
    pytester.makepyfile(TESTS)
    result, written = run_loud(pytester)
    result.assert_outcomes(errors=2)
    assert "the judge could not be made: RuntimeError: gateway refused key ***" in written
    assert "(raised at " in written and "conftest.py:5)" in written
    assert_no_secret(written)
