"""Reports CI systems read: the JSON run report and the Markdown summary."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_rubric_judge.gates import parse_gates
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.models import Verdict
from pytest_rubric_judge.report.markdown import code, escape, markdown_summary, worst_criteria
from pytest_rubric_judge.report.run_json import (
    ErrorRecord,
    JudgmentRecord,
    RunReport,
    build_report,
    report_json,
    write_text_atomic,
)
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

pytest_plugins = ["pytester"]

HOSTILE = (
    "<script>alert(1)</script> | **bold** [link](javascript:alert(1)) @octocat #12 `tick`\n"
    "## heading\n- item ![img](http://x/y.png) & done"
)


@pytest.fixture(scope="module")
def verdicts() -> Iterator[tuple[Verdict, Verdict]]:
    """A comparison the candidate wins and one it loses."""
    with FakeJudge(ByResponsePolicy("GOOD")) as fake, Judge(fake.url, fake.model) as judge:
        win = judge.compare("What is the capital?", "Lyon.", "Paris. GOOD")
        loss = judge.compare("Name a river.", "The Seine. GOOD", "uh")
    yield win, loss


def _report(
    win: Verdict, loss: Verdict, nodeid: str = "t.py::test_loss", gates: str = ""
) -> RunReport:
    records = [
        JudgmentRecord(
            nodeid="t.py::test_win", assertion="assert_preferred", passed=True, verdict=win
        ),
        JudgmentRecord(
            nodeid=nodeid, assertion="assert_preferred", passed=False, suite=True, verdict=loss
        ),
    ]
    errors = [ErrorRecord(nodeid="t.py::test_err", message=f"JudgeOutputError: {HOSTILE}")]
    totals = {
        "requests": 6,
        "retries": 1,
        "cache_hits": 2,
        "prompt_tokens": 10,
        "completion_tokens": 5,
    }
    return build_report(records, errors, totals, parse_gates(gates) if gates else ())


def test_escape_leaves_no_markup_html_mention_or_line_break() -> None:
    text = escape(HOSTILE, limit=None)
    assert "\n" not in text
    for raw in ("<script>", "**bold**", "[link](", "![img]", "@octocat", "#12", "`tick`", " | "):
        assert raw not in text
    assert "&lt;script&gt;" in text and "&#64;octocat" in text and "&amp; done" in text
    assert len(escape("x" * 500)) <= 160


def test_code_spans_survive_backticks_and_table_pipes() -> None:
    assert code("test_a[x]") == "`test_a[x]`"
    assert code("a`b") == "``a`b``"
    assert code("`start") == "`` `start ``"
    assert code("a|b") == "`a\\|b`"


def test_markdown_summary_has_totals_interval_gates_and_worst_criteria(
    verdicts: tuple[Verdict, Verdict],
) -> None:
    win, loss = verdicts
    text = markdown_summary(_report(win, loss, gates="winrate=0.5,errors=0"))
    assert text.startswith("## Rubric judge: FAILED")  # errors=0 is not met
    assert "| comparisons | 3 (2 judged, 1 judge errors) |" in text
    assert "| new preferred / baseline preferred / ties | 1 / 1 / 0 |" in text
    assert (
        "| win rate of new over baseline (decisive) | 0.500, interval [0.095, 0.905] (95% Wilson, n=2) |"
        in text
    )
    assert "| judge requests | 6 (1 retries), 2 cache hits, 15 tokens |" in text
    assert "- ✅ `winrate >= 0.5`: met, 0.500 = 1/2 decisive comparisons won by new" in text
    assert "- ❌ `errors <= 0`: NOT met, 1 judge errors" in text
    row = next(line for line in text.splitlines() if line.startswith("| `t.py::test_loss` (suite)"))
    assert "`A>B`, consistent" in row and "-0." in row
    assert worst_criteria(loss, ("baseline", "new"))[0] in row
    assert "### Judge errors (1)" in text
    assert "<script>" not in text and "@octocat" not in text


def test_hostile_test_ids_cannot_break_the_table(verdicts: tuple[Verdict, Verdict]) -> None:
    win, loss = verdicts
    text = markdown_summary(_report(win, loss, nodeid="t.py::test[a|b`c\n## x]"))
    row = next(line for line in text.splitlines() if "test[a" in line)
    assert row.count(" | ") == 3 + 0 and "\\|" in row  # four cells, the pipe escaped
    assert "\n## x" not in text


def test_worst_criteria_name_the_criteria_that_cost_the_candidate(
    verdicts: tuple[Verdict, Verdict],
) -> None:
    win, loss = verdicts
    worst = worst_criteria(loss, ("baseline", "new"))
    assert worst and worst[0].startswith("`accuracy` (weight 0.50): new ")
    assert worst_criteria(win, ("baseline", "new")) == []


def test_json_report_round_trips(verdicts: tuple[Verdict, Verdict]) -> None:
    report = _report(*verdicts, gates="winrate=0.5")
    data = json.loads(report_json(report))
    assert data["format"] == "pytest-rubric-judge/run" and data["version"] == 1
    assert data["aggregates"]["wilson"]["method"] == "wilson"
    assert data["aggregates"]["bootstrap"]["resamples"] == 2000
    assert data["gates"][0]["gate"] == {"key": "winrate", "threshold": 0.5}
    assert RunReport.model_validate(data) == report


def test_unwritable_report_fails_the_run_without_a_traceback(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    pytester.makepyfile(
        """
        from pytest_rubric_judge import assert_preferred

        def test_ok(judge):
            assert_preferred("GOOD", "plain", prompt="q")
        """
    )
    (pytester.path / "blocker").write_text("a file, not a folder")
    md = pytester.path / "out" / "summary.md"
    result = pytester.runpytest(
        *judge_args,
        f"--judge-report={pytester.path / 'blocker' / 'r.json'}",
        f"--judge-report-md={md}",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(
        ["judge report NOT written to *blocker*r.json: *", "judge report: out*summary.md"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "| comparisons | 1 (1 judged, 0 judge errors) |" in md.read_text()


def test_a_rewritten_report_keeps_its_mode(tmp_path: Path) -> None:
    from pytest_rubric_judge.report.html import write_html
    from pytest_rubric_judge.report.metrics import metrics_of
    from pytest_rubric_judge.stats import Aggregator

    metrics = metrics_of(Aggregator(resamples=None).result())
    umask = os.umask(0)
    os.umask(umask)
    report = tmp_path / "run.json"
    write_text_atomic(report, "{}\n")
    assert stat.S_IMODE(report.stat().st_mode) == 0o666 & ~umask
    html = tmp_path / "report.html"
    for mode in (0o644, 0o640, 0o604):
        report.chmod(mode)
        write_text_atomic(report, f'{{"mode": {mode}}}\n')
        assert stat.S_IMODE(report.stat().st_mode) == mode
        assert json.loads(report.read_text()) == {"mode": mode}
        write_html(html, metrics, [])
        html.chmod(mode)
        write_html(html, metrics, [])
        assert stat.S_IMODE(html.stat().st_mode) == mode


def test_run_aggregates_do_not_depend_on_the_order_judgments_arrive(
    verdicts: tuple[Verdict, Verdict],
) -> None:
    """Under xdist judgments arrive in any order; each carries its test's collection index,
    so the seeded bootstrap and the means are the same bytes whatever the order."""
    from pytest_rubric_judge.report.run_json import aggregate_run

    win, loss = verdicts
    outcomes = [win, loss, loss, win, win, loss, win, win, loss, win, win, win]
    records = [
        JudgmentRecord(
            nodeid=f"t.py::test_{i}", assertion="assert_preferred", passed=True, verdict=v, index=i
        )
        for i, v in enumerate(outcomes)
    ]
    shuffled = records[1::2] + records[::2]
    first = aggregate_run(records, 0, resamples=20)
    second = aggregate_run(shuffled, 0, resamples=20)
    assert first.model_dump_json() == second.model_dump_json()
    assert shuffled[0].index == 1
    # Without the index the arrival order decides, and the interval moves:
    unordered = [r.model_copy(update={"index": None}) for r in shuffled]
    assert aggregate_run(unordered, 0, resamples=20).bootstrap != first.bootstrap


def test_markdown_keeps_plain_text_readable_and_escapes_only_markup() -> None:
    error = ErrorRecord(
        nodeid="t.py::test_x",
        message="JudgeUnavailableError: judge at http://127.0.0.1:9/v1 refused (retries=2); "
        "see docs/reliability.md - 1. restart it",
    )
    text = markdown_summary(build_report([], [error], {}))
    line = next(line for line in text.splitlines() if "test_x" in line)
    assert "http://127.0.0.1:9/v1 refused (retries=2); see docs/reliability.md - 1. restart" in line
    assert "\\." not in line and "\\(" not in line and "\\-" not in line
    assert escape("response_B is a_b") == "response_B is a_b"  # intraword _ is not markup
    assert escape("_x_ *y* ~z~") == "\\_x\\_ \\*y\\* \\~z\\~"
    assert escape("1. item") == "1\\. item" and escape("- item") == "\\- item"
    assert escape("# title") == "&#35; title" and escape("a > b") == "a &gt; b"


def test_markdown_lists_pointwise_failures_apart_from_comparisons(
    verdicts: tuple[Verdict, Verdict],
) -> None:
    from pytest_rubric_judge.models import Grade

    with FakeJudge() as fake, Judge(fake.url, fake.model) as judge:
        grade: Grade = judge.grade("Name the capital of France.", "Lyon, I think.")
    win, loss = verdicts
    records = [
        JudgmentRecord(nodeid="t.py::test_win", assertion="assert_preferred", passed=True, verdict=win),
        JudgmentRecord(nodeid="t.py::test_loss", assertion="assert_preferred", passed=False, verdict=loss),
        JudgmentRecord(nodeid="t.py::test_grade", assertion="assert_meets_rubric", passed=False, grade=grade),
    ]  # fmt: skip
    text = markdown_summary(build_report(records, [], {}))
    assert "| failing comparisons | 1 |" in text
    assert "| failing grades (pointwise) | 1 |" in text
    assert "### Failing comparisons (1)" in text and "### Failing grades (1)" in text
    comparisons = text.split("### Failing comparisons (1)", 1)[1].split("###", 1)[0]
    grades = text.split("### Failing grades (1)", 1)[1].split("###", 1)[0]
    assert "test_loss" in comparisons and "test_grade" not in comparisons
    assert "test_grade" in grades and f"{grade.score:.3f}" in grades
