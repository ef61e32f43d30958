"""report.html: self-contained, escaped, filterable; checked in real headless Chromium.

Chromium and chromedriver come from Debian's `chromium` and `chromium-driver` packages
(.ci/run installs them); without them the browser tests are skipped with that reason and
the static checks still run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.report.details import record_of
from pytest_rubric_judge.report.html import write_html
from pytest_rubric_judge.report.metrics import metrics_of
from pytest_rubric_judge.stats import Aggregator
from pytest_rubric_judge.testing import FakeJudge, FixedPolicy

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCRIPT = "<script>document.title='pwned-script'</script>"
IMG = "<img src=x onerror=\"document.title='pwned-img'\">"
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="headless Chromium not installed (apt-get install -y chromium chromium-driver)",
)
needs_driver = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="chromedriver not installed (apt-get install -y chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report with B wins, A wins, a position flip and a judge error; hostile texts."""
    rows = [
        ("q-b", "What is the capital of France?", "Paris.", f"Paris is the capital. {SCRIPT}"),
        ("q-a", "Name the largest planet.", "Jupiter is the largest planet.", f"Mars {IMG}"),
    ]
    records: list[dict[str, Any]] = []
    aggregator = Aggregator(resamples=200)
    with FakeJudge() as fake, Judge(fake.url, fake.model) as judge:
        for index, (row_id, prompt, a, b) in enumerate(rows):
            verdict = judge.compare(prompt, a, b)
            aggregator.add(verdict)
            records.append(record_of(index, row_id, verdict))
    with FakeJudge(FixedPolicy("A>B", 4, 2)) as fake, Judge(fake.url, fake.model) as judge:
        verdict = judge.compare(f"flip {SCRIPT}?", "one", "two")
        aggregator.add(verdict)
        records.append(record_of(2, "q-flip", verdict))
    aggregator.add_error()
    records.append(
        record_of(3, f"err{IMG}", None, prompt="p", error_type="JudgeOutputError", error=SCRIPT)
    )
    assert [r["preference"] for r in records[:3]] == ["B>A", "A>B", "A=B"]
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_html(path, metrics_of(aggregator.result()), records)
    return path


def test_static_page_has_no_script_no_network_and_escapes_data(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert "<script" not in text.lower()  # neither ours nor the data's
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", text)  # nothing to fetch
    assert "&lt;script&gt;document.title=&#x27;pwned-script&#x27;&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=" in text
    assert text.index("id='summary'") < text.index("<article")  # summary on top
    assert text.count("<article") == 4
    assert text.count("class='criteria'") == 3  # every judged row has its breakdown


@needs_chromium
def test_chromium_renders_the_report_and_runs_no_data_script(report: Path, tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    dom = completed.stdout
    assert "<article" in dom, completed.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title is not None and title.group(1) == "rubric-judge comparison report"
    assert "pwned" not in title.group(1)
    assert "<script" not in dom.lower()  # the data's <script> stayed text
    assert not re.search(r"<img[^>]*onerror", dom)
    assert "&lt;script&gt;document.title='pwned-script'&lt;/script&gt;" in dom
    assert dom.count("<article") == 4 and "Per criterion" in dom


class WebDriver:
    """The few W3C WebDriver calls these tests need, spoken to chromedriver over HTTP."""

    ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

    def __init__(self, base: str, session: str) -> None:
        self.http = httpx.Client(base_url=f"{base}/session/{session}", timeout=30)

    def call(self, method: str, path: str, body: object = None) -> Any:
        response = self.http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()["value"]

    def find_all(self, css: str) -> list[str]:
        found = self.call("POST", "/elements", {"using": "css selector", "value": css})
        assert isinstance(found, list), found
        return [item[self.ELEMENT] for item in found]

    def visible_ids(self) -> set[str]:
        shown = set()
        for element in self.find_all("article.row"):
            if self.call("GET", f"/element/{element}/displayed"):
                shown.add(self.call("GET", f"/element/{element}/attribute/id"))
        return shown

    def click(self, css: str) -> None:
        (element,) = self.find_all(css)
        self.call("POST", f"/element/{element}/click", {})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[WebDriver]:
    port = _free_port()
    process = subprocess.Popen(
        [CHROMEDRIVER, f"--port={port}", "--allowed-ips=127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/status", timeout=2).json()["value"]["ready"]:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("chromedriver did not start within 20 s")
            time.sleep(0.1)
        options = {
            "binary": CHROMIUM,
            "args": [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900"],
        }
        created = httpx.post(
            f"{base}/session",
            json={"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}},
            timeout=60,
        )
        created.raise_for_status()
        session = created.json()["value"]["sessionId"]
        web = WebDriver(base, session)
        try:
            yield web
        finally:
            try:
                web.call("DELETE", "")
            except httpx.HTTPError:
                pass
            web.http.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        _end_browsers_using(tmp_path / "profile")


def _end_browsers_using(profile: Path) -> None:
    """End any Chromium process this test started (found by its private profile folder)."""
    marker = f"--user-data-dir={profile}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


@needs_driver
def test_filters_work_in_chromium(report: Path, driver: WebDriver) -> None:
    driver.call("POST", "/url", {"url": report.as_uri()})
    assert driver.call("GET", "/title") == "rubric-judge comparison report"
    everything = {"row-0", "row-1", "row-2", "row-3"}
    assert driver.visible_ids() == everything
    driver.click("label[for=f-b]")
    assert driver.visible_ids() == {"row-0"}
    driver.click("label[for=f-a]")
    assert driver.visible_ids() == {"row-1"}
    driver.click("label[for=f-err]")
    assert driver.visible_ids() == {"row-3"}
    driver.click("label[for=f-all]")
    driver.click("label[for=f-incons]")  # only inconsistent: the position flip
    assert driver.visible_ids() == {"row-2"}
    driver.click("label[for=f-incons]")
    assert driver.visible_ids() == everything
    assert driver.call("GET", "/title") == "rubric-judge comparison report"  # no data script ran
