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


# -- what the page says about the run ------------------------------------------------------


def _run_records() -> tuple[list[dict[str, Any]], Aggregator]:
    """Two judged rows, one judge error and one invalid input row."""
    records: list[dict[str, Any]] = []
    aggregator = Aggregator(resamples=100)
    with FakeJudge() as fake, Judge(fake.url, fake.model) as judge:
        for index, (prompt, a, b) in enumerate(
            [("Capital of France?", "Lyon.", "Paris is the capital."), ("2+2?", "4", "five")]
        ):
            verdict = judge.compare(prompt, a, b)
            aggregator.add(verdict, index)
            records.append(record_of(index, f"r{index}", verdict))
    aggregator.add_error(2)
    records.append(
        record_of(2, "r2", None, prompt="p", error_type="JudgeUnavailableError", error="refused")
    )
    aggregator.add_invalid(3)
    records.append(
        record_of(
            3, "3", None, error_type="InvalidRow", error="line 4 is not JSON: Expecting value"
        )
    )
    return records, aggregator


def _page(tmp_path: Path, *, interrupted: bool = False) -> str:
    from datetime import datetime, timezone

    records, aggregator = _run_records()
    metrics = metrics_of(
        aggregator.result(),
        run={
            "data": "prompts/v2.jsonl",
            "judge_model": "Qwen/Qwen2.5-7B-Instruct",
            "started": "2026-03-01T09:29:47+00:00",
            "wall_s": 12.5,
        },
        interrupted=interrupted,
        max_error_rate=0.5,
        judge_error_causes=[
            {"type": "JudgeUnavailableError", "count": 1, "first_index": 2, "example": "refused"}
        ],
        invalid_row_causes=[
            {"type": "not JSON", "count": 1, "first_index": 3, "example": "line 4 is not JSON"}
        ],
    )
    path = tmp_path / "report.html"
    when = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
    write_html(path, metrics, records, now=when)
    return path.read_text(encoding="utf-8")


def test_the_page_names_the_judge_the_data_the_time_and_completeness(tmp_path: Path) -> None:
    text = _page(tmp_path)
    summary = text[: text.index("<article")]
    assert "Qwen/Qwen2.5-7B-Instruct" in summary
    assert "prompts/v2.jsonl" in summary
    assert "2026-03-01 09:30 UTC" in summary  # written
    assert "2026-03-01 09:29 UTC" in summary and "12.5 s" in summary  # started, took
    assert "complete: every input row was read" in summary
    assert "INTERRUPTED" not in summary


def test_an_interrupted_run_says_so_at_the_top(tmp_path: Path) -> None:
    text = _page(tmp_path, interrupted=True)
    banner = re.search(r"<p class='banner[^']*'>(.*?)</p>", text, re.S)
    assert banner is not None and "INTERRUPTED" in banner.group(1)
    assert text.index("INTERRUPTED") < text.index("<table class='summary'>")
    assert "rows finished before the interruption" in banner.group(1)


def test_invalid_rows_are_shown_apart_from_judge_errors(tmp_path: Path) -> None:
    text = _page(tmp_path)
    invalid = re.search(r"<article class='([^']*)' id='row-3'>(.*?)</article>", text, re.S)
    error = re.search(r"<article class='([^']*)' id='row-2'>(.*?)</article>", text, re.S)
    assert invalid is not None and error is not None
    assert "p-inv" in invalid.group(1).split() and "p-err" not in invalid.group(1).split()
    assert "judge error" not in invalid.group(2) and "invalid input row" in invalid.group(2)
    assert "p-err" in error.group(1).split() and "judge error" in error.group(2)
    labels = dict(re.findall(r"<label for='(f-[a-z]+)'>[^<]*\((\d+)\)</label>", text))
    assert labels["f-all"] == "4"  # every row, the invalid one included
    assert labels["f-err"] == "1" and labels["f-inv"] == "1"
    assert "not JSON" in text[: text.index("<article")]  # the cause, in the summary


def test_old_details_with_invalid_rows_as_errors_are_still_shown_as_invalid() -> None:
    from pytest_rubric_judge.report.html import row_classes

    old = {"status": "error", "error_type": "InvalidRow", "index": 0}
    assert "p-inv" in row_classes(old) and "p-err" not in row_classes(old)


@needs_driver
def test_invalid_rows_have_their_own_filter_in_chromium(tmp_path: Path, driver: WebDriver) -> None:
    _page(tmp_path, interrupted=True)
    driver.call("POST", "/url", {"url": (tmp_path / "report.html").as_uri()})
    assert driver.visible_ids() == {"row-0", "row-1", "row-2", "row-3"}
    driver.click("label[for=f-inv]")
    assert driver.visible_ids() == {"row-3"}
    driver.click("label[for=f-err]")
    assert driver.visible_ids() == {"row-2"}
    (banner,) = driver.find_all("p.banner")
    assert driver.call("GET", f"/element/{banner}/displayed")
    assert "INTERRUPTED" in driver.call("GET", f"/element/{banner}/text")
