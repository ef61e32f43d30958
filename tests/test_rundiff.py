"""Run-to-run diff: `rubric-judge diff OLD.json NEW.json` and `--judge-compare-to`.

Real runs of the plugin against the fake judge produce the reports; hand-built reports
pin down the regression rules; Newcombe's interval is checked against his published
values; and Hypothesis feeds malformed reports to the reader, the diff and every output
format, which must answer with a result or one line naming the file, never a traceback.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rubric_judge.cli import main
from pytest_rubric_judge.models import CriterionScore, Label, PassResult, Rubric, Verdict
from pytest_rubric_judge.report.diff import diff_data, diff_json, diff_lines, diff_markdown
from pytest_rubric_judge.report.run_json import (
    ErrorRecord,
    JudgmentRecord,
    RunInfo,
    RunReport,
    build_report,
    report_json,
)
from pytest_rubric_judge.rundiff import (
    ReportError,
    diff_reports,
    newcombe_interval,
    parse_report,
    read_report,
)
from pytest_rubric_judge.scoring import build_verdict
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

pytest_plugins = ["pytester"]

# -- Newcombe's interval ---------------------------------------------------------------

#: Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score
#: without continuity correction): (x1, n1, x2, n2) -> the 95% interval for p1 - p2.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE_TABLE_II)
def test_newcombe_interval_matches_the_published_values(
    counts: tuple[int, int, int, int], expected: tuple[float, float]
) -> None:
    x1, n1, x2, n2 = counts
    interval = newcombe_interval(x1, n1, x2, n2)
    assert interval.difference == pytest.approx(x1 / n1 - x2 / n2)
    assert (round(interval.low, 4), round(interval.high, 4)) == expected
    assert "95% Newcombe hybrid score, from Wilson intervals" in interval.describe()


@given(
    st.integers(1, 60).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(1, 60).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_newcombe_interval_is_antisymmetric_and_holds_the_difference(
    first: tuple[int, int], second: tuple[int, int], level: float
) -> None:
    forward = newcombe_interval(*first, *second, level)
    backward = newcombe_interval(*second, *first, level)
    assert -1.0 <= forward.low <= forward.difference <= forward.high <= 1.0
    assert forward.low == pytest.approx(-backward.high, abs=1e-12)
    assert forward.high == pytest.approx(-backward.low, abs=1e-12)
    wider = newcombe_interval(*first, *second, 0.999)
    assert wider.low <= forward.low + 1e-12 and wider.high >= forward.high - 1e-12


def test_newcombe_interval_needs_trials_on_both_sides() -> None:
    with pytest.raises(ValueError, match="at least one trial"):
        newcombe_interval(0, 0, 1, 2)
    with pytest.raises(ValueError):
        newcombe_interval(3, 2, 1, 2)


# -- the rules, on reports built by hand -----------------------------------------------

RUBRIC = Rubric.of(
    [{"name": "accuracy", "weight": 0.6}, {"name": "clarity", "weight": 0.4}], source="judge"
)


def _pass(order: str, label: Label, a: int, b: int) -> PassResult:
    scores = tuple(CriterionScore(name=n, score_a=a, score_b=b) for n in RUBRIC.names)
    weighted_a, weighted_b = RUBRIC.weighted_pair(scores)
    return PassResult(
        order=order,  # type: ignore[arg-type]
        scores=scores,
        preference=label,
        weighted_a=weighted_a,
        weighted_b=weighted_b,
    )


def verdict(forward: Label, reversed_: Label | None = None, a: int = 2, b: int = 4) -> Verdict:
    """Baseline (A) scored `a`, new (B) scored `b` on every criterion, in both passes."""
    return build_verdict(
        RUBRIC, _pass("forward", forward, a, b), _pass("reversed", reversed_ or forward, a, b)
    )


def record(nodeid: str, v: Verdict | None, passed: bool = True, **fields: Any) -> JudgmentRecord:
    return JudgmentRecord(
        nodeid=nodeid, assertion="assert_preferred", passed=passed, verdict=v, **fields
    )


def run(*records: JudgmentRecord, errors: Sequence[ErrorRecord] = (), **info: Any) -> RunReport:
    report = build_report(records, errors, {})
    return report.model_copy(update={"run": RunInfo(**info)}) if info else report


def test_a_preference_that_flips_against_new_is_a_regression() -> None:
    old = run(record("t.py::test_a", verdict("B>A", b=5)))
    new = run(record("t.py::test_a", verdict("A>B", a=5, b=2), passed=False))
    (change,) = diff_reports(old, new).judgments
    assert change.status == "regressed"
    assert change.reasons == ("outcome", "preference") and change.flipped
    assert change.old is not None and change.new is not None
    assert change.old.margin == pytest.approx(1.0 - 0.25)
    assert change.margin_change == pytest.approx(-0.75 - 0.75)
    accuracy = change.criteria[0]
    assert accuracy.name == "accuracy"
    assert (accuracy.baseline_old, accuracy.new_old) == pytest.approx((0.6 * 0.25, 0.6 * 1.0))
    assert (accuracy.baseline_new, accuracy.new_new) == pytest.approx((0.6 * 1.0, 0.6 * 0.25))


@pytest.mark.parametrize(
    ("before", "after", "regressed"),
    [
        (verdict("B>A"), verdict("A=B"), True),  # a consistent tie where new won
        (verdict("A=B"), verdict("A>B"), True),  # a consistent loss where it tied
        (verdict("B>A", "A=B"), verdict("A>B"), True),  # an undecided win, now a loss
        (verdict("B>A"), verdict("A>B", "B>A"), False),  # a position flip decides nothing
        (verdict("A>B"), verdict("B>A"), False),  # better
        (verdict("A>B"), verdict("A>B", "A=B"), False),  # the same rank
        (verdict("A=B"), verdict("A=B (bothbad)"), False),  # both ties
    ],
)
def test_a_preference_regression_needs_a_consistent_lower_rank(
    before: Verdict, after: Verdict, regressed: bool
) -> None:
    old, new = run(record("t.py::test_a", before)), run(record("t.py::test_a", after))
    (change,) = diff_reports(old, new).judgments
    assert (change.reasons == ("preference",)) is regressed
    assert change.status == ("regressed" if regressed else "changed")


def test_outcome_regressions_count_only_from_pass_to_fail() -> None:
    v = verdict("A=B")
    old = run(record("t::a", v), record("t::b", v, passed=False), record("t::c", v))
    new = run(
        record("t::a", v, passed=False),  # passed -> failed: a regression
        record("t::b", v, passed=False),  # failed -> failed: unchanged
        record("t::c", v, passed=False, caught=True),  # expected by the test: none
    )
    statuses = [(c.nodeid, c.status, c.reasons) for c in diff_reports(old, new).judgments]
    assert statuses == [
        ("t::a", "regressed", ("outcome",)),
        ("t::b", "unchanged", ()),
        ("t::c", "changed", ()),
    ]


def test_judgments_match_by_node_id_and_position_within_a_test() -> None:
    win, loss = verdict("B>A"), verdict("A>B")
    old = run(
        record("t.py::test_p[a-1]", win),
        record("t.py::test_p[a-1]", win),
        record("t.py::test_p[a-2]", win),
        record("t.py::test_gone", win),
    )
    new = run(
        record("t.py::test_p[a-1]", win),
        record("t.py::test_p[a-2]", loss),
        record("t.py::test_new", win),
    )
    diff = diff_reports(old, new)
    found = {c.key: c.status for c in diff.judgments}
    assert found == {
        "t.py::test_p[a-1]": "unchanged",
        "t.py::test_p[a-1] (judgment 2)": "removed",
        "t.py::test_p[a-2]": "regressed",
        "t.py::test_new": "added",
        "t.py::test_gone": "removed",
    }
    assert diff.tests_added == ("t.py::test_new",)
    assert diff.tests_removed == ("t.py::test_gone",)


def test_a_judge_error_is_listed_and_is_no_regression() -> None:
    old = run(record("t::a", verdict("B>A")), errors=[ErrorRecord(nodeid="t::b", message="x")])
    new = run(errors=[ErrorRecord(nodeid="t::a", message="judge unavailable: HTTP 503")])
    diff = diff_reports(old, new)
    (change,) = diff.judgments
    assert change.status == "error" and change.error == "judge unavailable: HTTP 503"
    assert not diff.regressions and not diff.tests_added
    assert diff.tests_removed == ("t::b",)  # neither judged nor errored in the new run
    assert [(e.nodeid, e.old, e.new) for e in diff.errors] == [
        ("t::a", None, "judge unavailable: HTTP 503"),
        ("t::b", "x", None),
    ]
    assert any(line.startswith("JUDGE ERROR t::a: was PASS") for line in diff_lines(diff))


def test_the_win_rate_is_preferred_over_judged_with_newcombes_interval() -> None:
    win, tie, loss = verdict("B>A"), verdict("A=B"), verdict("A>B")
    old = run(*(record(f"t::{i}", v) for i, v in enumerate([win, win, win, tie])))
    new = run(
        *(record(f"t::{i}", v) for i, v in enumerate([win, tie, loss, loss])),
        record("t::caught", win, passed=False, caught=True),  # counts toward no rate
    )
    rate = diff_reports(old, new).rate
    assert (rate.old.preferred, rate.old.judged, rate.new.preferred, rate.new.judged) == (
        3,
        4,
        1,
        4,
    )
    assert rate.interval is not None
    assert rate.interval.difference == pytest.approx(-0.5)
    expected = newcombe_interval(1, 4, 3, 4)
    assert (rate.interval.low, rate.interval.high) == (expected.low, expected.high)
    nothing = diff_reports(old, run()).rate
    assert nothing.interval is None and nothing.new.rate is None


def test_notes_say_when_the_judge_changed_or_a_run_stopped_early() -> None:
    old = run(record("t::a", verdict("B>A")), judge_model="judge-1")
    new = run(record("t::a", verdict("B>A")), judge_model="judge-2", complete=False)
    notes = " ".join(diff_reports(old, new).notes)
    assert "different judge models (judge-1 in old, judge-2 in new)" in notes
    assert "new did not run whole" in notes


def test_a_pointwise_grade_compares_scores() -> None:
    from pytest_rubric_judge.models import Grade, GradeScore

    def grade(value: int) -> Grade:
        scores = tuple(GradeScore(name=n, score=value) for n in RUBRIC.names)
        score = RUBRIC.weighted({s.name: s.score for s in scores})
        return Grade(score=score, rubric=RUBRIC, scores=scores)

    def graded(g: Grade, passed: bool) -> JudgmentRecord:
        return JudgmentRecord(
            nodeid="t::g", assertion="assert_meets_rubric", passed=passed, grade=g
        )

    diff = diff_reports(run(graded(grade(5), True)), run(graded(grade(2), False)))
    (change,) = diff.judgments
    assert change.reasons == ("outcome",) and change.score_change == pytest.approx(-0.75)
    text = "\n".join(diff_lines(diff))
    assert "score: 1.000 -> 0.250" in text and "    accuracy   0.600 -> 0.150" in text


# -- real runs -------------------------------------------------------------------------

OLD_SUITE = """
import pytest
from pytest_rubric_judge import assert_not_worse, assert_preferred

@pytest.mark.parametrize("topic", ["greeting", "farewell"])
def test_answer(judge, topic):
    assert_preferred(f"WIN new {topic}", f"old {topic}", prompt=topic)

def test_steady(judge):
    assert_not_worse("WIN same", "WIN same as well", prompt="s")

def test_retired(judge):
    assert_preferred("WIN x", "y", prompt="r")
"""
NEW_SUITE = """
import pytest
from pytest_rubric_judge import assert_not_worse, assert_preferred

@pytest.mark.parametrize("topic", ["greeting", "farewell"])
def test_answer(judge, topic):
    if topic == "greeting":  # the candidate got worse here
        assert_preferred(f"new {topic}", f"WIN old {topic}", prompt=topic)
    else:
        assert_preferred(f"WIN new {topic}", f"old {topic}", prompt=topic)

def test_steady(judge):
    assert_not_worse("WIN same", "WIN same as well", prompt="s")

@pytest.mark.parametrize("case", ["x|*y*"])
def test_fresh(judge, case):
    assert_preferred("WIN z", "w", prompt=case)
"""


@pytest.fixture
def two_reports(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> tuple[Path, Path]:
    """Two real reports of one suite: `test_answer[greeting]` flips, a test is swapped."""
    fake_judge.policy = ByResponsePolicy("WIN")
    pytester.makepyfile(test_suite=OLD_SUITE)
    old = pytester.path / "old.json"
    pytester.runpytest(*judge_args, f"--judge-report={old}").assert_outcomes(passed=4)
    pytester.makepyfile(test_suite=NEW_SUITE)
    new = pytester.path / "new.json"
    pytester.runpytest(*judge_args, f"--judge-report={new}").assert_outcomes(passed=3, failed=1)
    return old, new


def _main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["diff", *argv])
    return status, out.getvalue(), err.getvalue()


def test_diff_of_two_real_runs_in_every_format(two_reports: tuple[Path, Path]) -> None:
    old, new = map(str, two_reports)
    status, text, err = _main(old, new)
    assert (status, err) == (0, "")
    assert "REGRESSED test_suite.py::test_answer[greeting] (assert_preferred)" in text
    assert "  outcome: PASS -> FAIL" in text
    assert (
        "  preference: new preferred (B>A), consistent -> baseline preferred (A>B), consistent"
    ) in text
    assert "  margin new-baseline: +0.750 -> -0.750 (-1.500)" in text
    assert "ADDED test_suite.py::test_fresh[x|*y*]: PASS" in text
    assert "REMOVED test_suite.py::test_retired: PASS" in text
    assert "win rate of new (preferred / judged): 3/4 = 0.750 -> 2/4 = 0.500" in text
    assert "(95% Newcombe hybrid score, from Wilson intervals)" in text
    assert text.rstrip().endswith(
        "result: 1 regression (1 from pass to fail, 1 with a "
        "consistent preference moved against new)"
    )

    assert _main(old, new, "--fail-on-regression")[0] == 1
    assert _main(old, old, "--fail-on-regression")[:2] == (0, _main(old, old)[1])

    status, markdown, _ = _main(old, new, "--format", "markdown")
    assert status == 0 and markdown.startswith("## Rubric judge diff: 1 regression\n")
    assert "| **regressed** | `test_suite.py::test_answer[greeting]` | PASS → **FAIL** |" in (
        markdown
    )
    added = "| added | `test_suite.py::test_fresh[x\\|*y*]` | PASS | `B>A` | +0.750 |"
    assert added in markdown  # the `|` of the id escaped in its cell

    status, data, _ = _main(old, new, "--format", "json")
    report = json.loads(data)
    assert report["format"] == "pytest-rubric-judge/diff" and report["regressions"] == 1
    assert report["counts"] == {
        "regressed": 1,
        "changed": 0,
        "unchanged": 2,
        "added": 1,
        "removed": 1,
        "error": 0,
        "tests_added": 1,
        "tests_removed": 1,
    }
    flipped = [j for j in report["judgments"] if j["flipped"]]
    assert [j["nodeid"] for j in flipped] == ["test_suite.py::test_answer[greeting]"]
    assert flipped[0]["regression_reasons"] == ["outcome", "preference"]
    assert report["win_rate"]["interval"]["method"] == "newcombe_hybrid_score"


def test_text_and_markdown_escape_what_the_reports_hold(two_reports: tuple[Path, Path]) -> None:
    old, new = two_reports
    data = json.loads(new.read_text())
    hostile = "t.py::test[<img src=x>@team #1 `x` \x1b[2J\u202e]"
    data["judgements"][0]["nodeid"] = hostile
    data["errors"] = [{"nodeid": hostile, "message": "boom\n\x1b]52;c;x\x07 **bold**"}]
    new.write_text(json.dumps(data))
    _, text, _ = _main(str(old), str(new))
    assert "\x1b" not in text and "\u202e" not in text and "\\x1b[2J\\u202e" in text
    _, markdown, _ = _main(str(old), str(new), "--format", "markdown")
    assert "\x1b" not in markdown and "\u202e" not in markdown
    assert "<img" not in markdown.replace("`t.py::test[<img", "") and "@team" not in (
        markdown.replace("`t.py::test[<img src=x>@team", "")
    )
    assert "\\*\\*bold\\*\\*" in markdown


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read: No such file or directory"),
        (b"\xff\xfe{}", "not UTF-8 text (byte 0)"),
        (b'{"format": ', "not JSON: Expecting value (line 1, column 12)"),
        (b"[1, 2]", "not a run report: the JSON is list, not an object"),
        (b'{"format": "pytest-rubric-judge/compare"}', "not a pytest-rubric-judge run report"),
        (b'{"format": "pytest-rubric-judge/run", "version": 9}', "report version 9 is newer"),
        (b'{"format": "pytest-rubric-judge/run", "version": 1, "version": 1}', "given twice"),
        (b'{"format": "pytest-rubric-judge/run", "version": 1e999}', "out of range"),
        (b'{"format": "pytest-rubric-judge/run", "version": NaN}', "NaN is not a JSON number"),
        (b'{"format": "pytest-rubric-judge/run", "version": 1}', "not a valid run report: "),
        (b'{"format": "pytest-rubric-judge/run", "version": 1, "x": ' + b"[" * 5000, "deep"),
    ],
)
def test_an_unreadable_report_is_one_line_and_status_2(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(TEMPLATE_BYTES)
    if content is not None:
        bad.write_bytes(content)
    for argv in ([str(bad), str(good)], [str(good), str(bad)]):
        status, out, err = _main(*argv)
        assert (status, out) == (2, "")
        assert err.startswith(f"rubric-judge: error: {bad}: ") and err.count("\n") == 1
        assert problem in err and "Traceback" not in err


def test_the_synopsis_in_diff_md_is_the_commands_usage(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    from pytest_rubric_judge.cli import build_parser

    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["diff", "--help"])
    usage = capsys.readouterr().out.split("\n\n")[0]  # the usage line, not the help
    text = (Path(__file__).parent.parent / "docs" / "diff.md").read_text()
    synopsis = text[text.index("```\nrubric-judge diff") :].split("```")[1]
    flags = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
    assert set(flags.findall(synopsis)) == set(flags.findall(usage)) - {"--help"}
    assert "--format {text,markdown,json}" in usage and "text|markdown|json" in synopsis


# -- the pytest options ----------------------------------------------------------------

SUITE_TEST = """
import pytest
from pytest_rubric_judge import assert_preferred

@pytest.mark.judge_suite
@pytest.mark.parametrize("case", ["one", "two"])
def test_prompt(judge, case):
    assert_preferred({new!r}, {baseline!r}, prompt=case)
"""


def _suite(pytester: pytest.Pytester, new: str, baseline: str) -> None:
    pytester.makepyfile(test_prompts=SUITE_TEST.format(new=new, baseline=baseline))


def test_compare_to_prints_the_diff_and_fail_on_regression_fails_the_run(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("WIN")
    _suite(pytester, "WIN new", "old")
    pytester.runpytest(*judge_args, "--judge-report=old.json").assert_outcomes(passed=2)
    # judge_suite tests pass whatever the judge says: only the diff can fail this run
    _suite(pytester, "new", "WIN old")
    compare = [*judge_args, "--judge-compare-to=old.json"]
    result = pytester.runpytest(*compare, "--judge-report=new.json")
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*judge diff against old.json: 2 regressions (2 from pass to fail, 2 with a *",
            "*= rubric judge diff =*",
            "rubric judge diff: old.json -> this run",
            "REGRESSED test_prompts.py::test_prompt?one? (assert_preferred): *",
            "win rate of new (preferred / judged): 2/2 = 1.000 -> 0/2 = 0.000; change -1.000, *",
        ]
    )
    assert "judge diff against old.json" in " ".join(
        json.loads((pytester.path / "new.json").read_text())["notes"]
    )
    status, _, _ = _main("old.json", "new.json", "--fail-on-regression")
    assert status == 1  # the command agrees with the plugin

    result = pytester.runpytest(*compare, "--judge-fail-on-regression")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*judge diff against old.json: 2 regressions *; the run fails"])

    _suite(pytester, "WIN new", "old")  # as good as before: nothing to fail on
    result = pytester.runpytest(*compare, "--judge-fail-on-regression")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*judge diff against old.json: no regressions"])


def test_compare_to_an_unreadable_report_fails_the_run_in_one_line(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("WIN")
    _suite(pytester, "WIN new", "old")
    (pytester.path / "old.json").write_text("{not json")
    result = pytester.runpytest(*judge_args, "--judge-compare-to=old.json")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["*judge diff NOT made: *old.json: not JSON: *"])
    assert "Traceback" not in result.stdout.str()


def test_fail_on_regression_alone_says_it_does_nothing(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("WIN")
    _suite(pytester, "WIN new", "old")
    result = pytester.runpytest(*judge_args, "--judge-fail-on-regression")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--judge-fail-on-regression has no effect without *"])


# -- malformed reports never crash -----------------------------------------------------


def _template() -> dict[str, Any]:
    """A valid report holding a verdict, a grade, a caught failure and a judge error."""
    from pytest_rubric_judge.models import Grade, GradeScore

    scores = tuple(GradeScore(name=n, score=4) for n in RUBRIC.names)
    grade = Grade(score=0.75, rubric=RUBRIC, scores=scores)
    report = run(
        record("t.py::test_a[x]", verdict("B>A")),
        record("t.py::test_a[x]", verdict("A>B", "B>A"), passed=False, caught=True),
        JudgmentRecord(
            nodeid="t.py::test_g", assertion="assert_meets_rubric", passed=True, grade=grade
        ),
        errors=[ErrorRecord(nodeid="t.py::test_e", message="judge error")],
    )
    data: dict[str, Any] = json.loads(report_json(report))
    return data


TEMPLATE = _template()
TEMPLATE_BYTES = json.dumps(TEMPLATE).encode()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


TEMPLATE_PATHS = _paths(TEMPLATE)[1:]


def _mutated(picks: list[tuple[int, Any]]) -> dict[str, Any]:
    data = copy.deepcopy(TEMPLATE)
    for index, value in picks:
        path = TEMPLATE_PATHS[index % len(TEMPLATE_PATHS)]
        target: Any = data
        try:
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced what led here
    return data


def _every_output(data: bytes) -> None:
    """`data` read as a report is either refused in one line or diffed in every format."""
    try:
        report = parse_report(data, "fuzzed.json")
    except ReportError as error:
        assert str(error).startswith("fuzzed.json: ") and "\n" not in str(error)
        return
    good = parse_report(TEMPLATE_BYTES, "template.json")
    for diff in (diff_reports(good, report), diff_reports(report, good)):
        assert "\x1b" not in "\n".join(diff_lines(diff))
        diff_markdown(diff)
        json.loads(diff_json(diff))
        diff_data(diff)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), json_values), min_size=1, max_size=4))
def test_a_mutated_report_is_refused_or_diffed_never_a_crash(picks: list[tuple[int, Any]]) -> None:
    _every_output(json.dumps(_mutated(picks)).encode())


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        data = data[step]
    return data


LEAVES = [path for path in TEMPLATE_PATHS if not isinstance(_at(TEMPLATE, path), (dict, list))]
WORDS = ["A>B", "B>A", "A=B", "A=B (bothbad)", "scale", "binary", "forward", "reversed"]
WORDS += ["accuracy", "clarity", "t.py::test_a[x]", "t.py::test_g", "judge", "user"]


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same JSON type as `value`, often ones a report could hold."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-3, 8) | st.integers(-(2**60), 2**60)
    if isinstance(value, float):
        return st.floats(-2, 2) | st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(value, str):
        return st.sampled_from(WORDS) | st.text(max_size=30)
    return json_values


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_report_with_odd_values_of_the_right_types_is_refused_or_diffed(
    data: st.DataObject,
) -> None:
    document = copy.deepcopy(TEMPLATE)
    for path in data.draw(st.lists(st.sampled_from(LEAVES), min_size=1, max_size=5)):
        _at(document, path[:-1])[path[-1]] = data.draw(_like(_at(TEMPLATE, path)))
    _every_output(json.dumps(document).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | json_values.map(lambda v: json.dumps(v).encode()))
def test_random_bytes_and_json_are_refused_in_one_line(data: bytes) -> None:
    _every_output(data)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(TEMPLATE_BYTES)), st.binary(min_size=1, max_size=8))
def test_a_corrupted_report_is_refused_in_one_line(cut: int, noise: bytes) -> None:
    _every_output(TEMPLATE_BYTES[:cut] + noise + TEMPLATE_BYTES[cut + len(noise) :])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 10**6), json_values), min_size=1, max_size=3))
def test_the_command_answers_a_status_never_a_traceback(
    tmp_path_factory: pytest.TempPathFactory, picks: list[tuple[int, Any]]
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    good, bad = folder / "good.json", folder / "bad.json"
    good.write_bytes(TEMPLATE_BYTES)
    bad.write_text(json.dumps(_mutated(picks)))
    for form in ("text", "markdown", "json"):
        status, out, err = _main(str(good), str(bad), "--format", form, "--fail-on-regression")
        assert status in (0, 1, 2)
        if status == 2:
            assert out == "" and err.count("\n") == 1
        elif form == "json":
            assert json.loads(out)["format"] == "pytest-rubric-judge/diff"


def test_the_reader_reads_the_template_and_refuses_a_huge_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_rubric_judge.report import reading

    path = tmp_path / "r.json"
    path.write_bytes(TEMPLATE_BYTES)
    assert len(read_report(path).judgements) == 3
    monkeypatch.setattr(reading, "MAX_REPORT_BYTES", 1 << 20)
    path.write_bytes(b" " * ((1 << 20) + 1))
    with pytest.raises(ReportError, match=r"r\.json: larger than 1 MiB"):
        read_report(path)
