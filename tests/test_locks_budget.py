"""Rubric lock files (`--judge-lock-rubrics`, `--judge-check-rubrics`), the spend budget
(`--judge-budget`) and the dry run (`--judge-dry-run`).

The plugin's behaviour is tested with real pytest runs against the fake judge server,
counting what the server was asked; the lock-file reader, a trust boundary, with
Hypothesis; the budget's guarantee with threads.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rubric_judge.baselines import baseline_path
from pytest_rubric_judge.budget import (
    Budget,
    BudgetSpentError,
    DryRun,
    DryRunMiss,
    JudgeBudget,
    parse_budget,
)
from pytest_rubric_judge.callspec import Request
from pytest_rubric_judge.lockfiles import LockEntry, LockFileError, read_lock, render_lock
from pytest_rubric_judge.locks import lock_path, rubric_changes
from pytest_rubric_judge.models import Rubric
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

pytest_plugins = ["pytester"]

SUITE = """
from pytest_rubric_judge import assert_preferred

GOOD = "Paris is the capital of France, and has been for centuries."


def test_two_prompts(judge):
    assert_preferred(GOOD, "Lyon.", prompt="What is the capital of France?")
    assert_preferred(
        "Lyon is a French city, the third largest city in France.", "No.", prompt="Name a French city."
    )


class TestCapitals:
    def test_with_reference(self, judge):
        assert_preferred(GOOD, "Lyon.", prompt="What is the capital of France?", reference="Paris")
"""

OTHER_RUBRIC = [
    {"name": "accuracy", "description": "Facts.", "weight": 0.7, "type": "scale"},
    {"name": "sources", "description": "Cites sources.", "weight": 0.3, "type": "binary"},
]


def _rubric_requests(fake: FakeJudge) -> int:
    return sum(1 for r in fake.requests if r.parsed is not None and r.parsed.task == "rubric")


def _args(fake: FakeJudge, cache: Path, *extra: str) -> list[str]:
    return [
        f"--judge-url={fake.url}",
        f"--judge-model={fake.model}",
        f"--judge-cache-dir={cache}",
        "--judge-max-retries=0",
        "--judge-timeout=10",
        "-p",
        "no:cacheprovider",
        *extra,
    ]


def _locks(pytester: pytest.Pytester) -> dict[str, Path]:
    folder = pytester.path / "judge_rubrics" / "test_suite"
    return {path.name: path for path in sorted(folder.glob("*.yaml"))}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_suite=SUITE)
    return pytester


# -- lock files ------------------------------------------------------------------------


def test_lock_files_are_written_and_later_runs_ask_no_rubric(
    suite: pytest.Pytester, fake_judge: FakeJudge, tmp_path: Path
) -> None:
    first = suite.runpytest(*_args(fake_judge, tmp_path / "one", "--judge-lock-rubrics"))
    first.assert_outcomes(passed=2)
    assert _rubric_requests(fake_judge) == 3  # two prompts, one of them with a reference
    locks = _locks(suite)
    assert set(locks) == {"test_two_prompts.yaml", "TestCapitals.test_with_reference.yaml"}
    # The same naming rules as baselines, in judge_rubrics/ and with .yaml.
    module = suite.path / "test_suite.py"
    for name in ("TestCapitals.test_with_reference", "test_q[What is 2/2? é]", "t" * 300):
        path = lock_path(module, name)
        assert path.parent == suite.path / "judge_rubrics" / "test_suite"
        assert path.name == baseline_path(module, name).name.removesuffix(".txt") + ".yaml"
    entries = read_lock(locks["test_two_prompts.yaml"].read_text())
    assert [entry.key for entry in entries] == [
        ("What is the capital of France?", None),
        ("Name a French city.", None),
    ]
    text = locks["test_two_prompts.yaml"].read_text()
    assert "- prompt: What is the capital of France?" in text  # a reviewer reads which prompt
    assert "rubric locks: 3 rubric(s) locked in 2 lock file(s)" in first.stdout.str()

    # A later run, with a cache that knows nothing, makes no rubric request (no flag).
    fake_judge.reset()
    second = suite.runpytest(*_args(fake_judge, tmp_path / "two"))
    second.assert_outcomes(passed=2)
    assert _rubric_requests(fake_judge) == 0
    assert fake_judge.request_count == 6  # the passes only
    assert "3 locked rubric(s) used from lock files" in second.stdout.str()
    # Nothing was rewritten.
    assert locks["test_two_prompts.yaml"].read_text() == text

    # With the flag again, nothing changes either: every rubric is already locked.
    fake_judge.reset()
    third = suite.runpytest(*_args(fake_judge, tmp_path / "two", "--judge-lock-rubrics"))
    third.assert_outcomes(passed=2)
    assert fake_judge.request_count == 0
    assert locks["test_two_prompts.yaml"].read_text() == text


def test_an_edited_lock_file_is_the_rubric_the_test_is_judged_on(
    suite: pytest.Pytester, fake_judge: FakeJudge, tmp_path: Path
) -> None:
    suite.runpytest(*_args(fake_judge, tmp_path / "cache", "--judge-lock-rubrics"))
    path = _locks(suite)["test_two_prompts.yaml"]
    data = yaml.safe_load(path.read_text())
    data["rubrics"][0]["criteria"] = OTHER_RUBRIC
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    fake_judge.reset()
    report = tmp_path / "report.json"
    result = suite.runpytest(
        *_args(fake_judge, tmp_path / "cache", f"--judge-report={report}"), "-k", "two_prompts"
    )
    result.assert_outcomes(passed=1)
    assert _rubric_requests(fake_judge) == 0
    # The edited rubric reached the judge (a new cache key: its passes were asked) ...
    sent = [r.parsed.rubric for r in fake_judge.requests if r.parsed is not None]
    assert len(sent) == 2
    assert all(
        [c["name"] for c in rubric["criteria"]] == ["accuracy", "sources"]
        for rubric in sent
        if rubric
    )
    # ... and is the verdict's rubric.
    judgements = json.loads(report.read_text())["judgements"]
    criteria = judgements[0]["verdict"]["rubric"]["criteria"]
    assert [(c["name"], c["weight"], c["type"]) for c in criteria] == [
        ("accuracy", 0.7, "scale"),
        ("sources", 0.3, "binary"),
    ]
    # The second prompt's rubric was not edited: its passes came from the cache.
    assert judgements[1]["verdict"]["forward"]["call"]["cached"] is True


def test_a_malformed_lock_file_is_one_line_naming_file_problem_and_fix(
    suite: pytest.Pytester, fake_judge: FakeJudge, tmp_path: Path
) -> None:
    suite.runpytest(*_args(fake_judge, tmp_path / "cache", "--judge-lock-rubrics"))
    path = _locks(suite)["test_two_prompts.yaml"]
    path.write_text(path.read_text().replace("weight: 0.5", "weight: heavy", 1))
    fake_judge.reset()
    result = suite.runpytest(*_args(fake_judge, tmp_path / "fresh"))
    result.assert_outcomes(passed=1, errors=1)
    out = result.stdout.str()
    assert "Traceback" not in out
    line = (
        "RubricLockError: judge_rubrics/test_suite/test_two_prompts.yaml: rubrics[0] (prompt "
        "'What is the capital of France?') criteria[0] (accuracy): weight is 'heavy': give a "
        "number such as 0.25; fix the file, or delete it and run pytest --judge-lock-rubrics "
        "to lock the judge's rubrics again"
    )
    assert f"ERROR test_suite.py::test_two_prompts: {line}" in out
    assert _rubric_requests(fake_judge) == 0  # the other test's own lock file is fine
    # A broken file is never overwritten, even with the flag.
    broken = path.read_text()
    suite.runpytest(*_args(fake_judge, tmp_path / "fresh", "--judge-lock-rubrics"))
    assert path.read_text() == broken


def test_check_rubrics_reports_what_changed_and_keeps_the_files(
    suite: pytest.Pytester, fake_judge: FakeJudge, tmp_path: Path
) -> None:
    fake_judge.policy = ByResponsePolicy("France")  # the article's three criteria
    cache = tmp_path / "cache"
    suite.runpytest(*_args(fake_judge, cache, "--judge-lock-rubrics")).assert_outcomes(passed=2)
    before = {name: path.read_text() for name, path in _locks(suite).items()}

    fake_judge.reset()  # nothing changed yet: the check finds nothing
    same = suite.runpytest(*_args(fake_judge, cache, "--judge-check-rubrics"))
    same.assert_outcomes(passed=2)
    assert _rubric_requests(fake_judge) == 3  # asked again, past the cache: once a prompt
    assert (
        "rubric check: 3 locked rubric(s) asked of the judge again, 0 changed" in same.stdout.str()
    )

    fake_judge.policy = ByResponsePolicy("France", rubric=OTHER_RUBRIC)
    fake_judge.reset()
    changed = suite.runpytest(*_args(fake_judge, cache, "--judge-check-rubrics"))
    changed.assert_outcomes(passed=2)  # still judged on the locked rubrics
    out = changed.stdout.str()
    change = (
        "the judge's rubric changed: added sources; removed completeness; removed clarity; "
        "accuracy weight 0.500 -> 0.700"
    )
    assert (
        f"rubric check: test_suite.py::test_two_prompts, prompt 'What is the capital of France?': {change}"
        in out
    )
    assert (
        f"rubric check: test_suite.py::TestCapitals::test_with_reference, prompt 'What is the capital of France?': {change}"
        in out
    )
    assert "3 locked rubric(s) asked of the judge again, 3 changed" in out
    assert {name: path.read_text() for name, path in _locks(suite).items()} == before
    # The passes were answered by the cache: judged on the locked rubrics.
    assert fake_judge.request_count == _rubric_requests(fake_judge) == 3


def test_lock_files_under_xdist(
    suite: pytest.Pytester, fake_judge: FakeJudge, tmp_path: Path
) -> None:
    result = suite.runpytest(*_args(fake_judge, tmp_path / "c", "--judge-lock-rubrics"), "-n", "2")
    result.assert_outcomes(passed=2)
    assert set(_locks(suite)) == {"test_two_prompts.yaml", "TestCapitals.test_with_reference.yaml"}
    assert "rubric locks: 3 rubric(s) locked in 2 lock file(s)" in result.stdout.str()


def test_a_lock_file_that_cannot_be_written_fails_the_run_in_one_line(
    suite: pytest.Pytester, fake_judge: FakeJudge, tmp_path: Path
) -> None:
    (suite.path / "judge_rubrics").write_text("a file where the folder would go")
    result = suite.runpytest(*_args(fake_judge, tmp_path / "c", "--judge-lock-rubrics"))
    result.assert_outcomes(passed=2)  # the tests themselves passed
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    out = result.stdout.str()
    assert "rubric locks: NOT written to judge_rubrics/test_suite/test_two_prompts.yaml: " in out
    assert "Traceback" not in out


def test_check_rubrics_in_replay_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--judge-check-rubrics", "--judge-cache=replay")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--judge-cache=replay forbids; drop one of them" in result.stderr.str()


# -- the budget ------------------------------------------------------------------------

FOUR_TESTS = """
import pytest
from pytest_rubric_judge import assert_preferred


@pytest.mark.parametrize("topic", ["rivers", "mountains", "deserts", "forests"])
def test_topic(judge, topic):
    assert_preferred(f"A long, detailed answer about {topic}.", "No.", prompt=f"Tell me about {topic}.")
"""


def test_a_spent_budget_errors_the_rest_in_one_line_each(
    pytester: pytest.Pytester, fake_judge: FakeJudge, tmp_path: Path
) -> None:
    pytester.makepyfile(test_four=FOUR_TESTS)
    result = pytester.runpytest(*_args(fake_judge, tmp_path / "c", "--judge-budget=requests=3"))
    result.assert_outcomes(passed=1, errors=3)
    assert fake_judge.request_count == 3  # one rubric and two passes
    out = result.stdout.str()
    line = (
        "BudgetSpentError: judge budget spent: 3 of 3 requests; raise --judge-budget, or "
        "select fewer judged tests with -k or -m"
    )
    assert out.count(f": {line}\n") == 3
    assert "judge budget: 3 of 3 requests spent, 0 left; 3 request(s) refused" in out
    assert "Traceback" not in out

    # What the cache answers costs nothing: the same budget now covers a second test.
    fake_judge.reset()
    again = pytester.runpytest(*_args(fake_judge, tmp_path / "c", "--judge-budget=requests=3"))
    again.assert_outcomes(passed=2, errors=2)
    assert fake_judge.request_count == 3


def test_a_token_budget_stops_once_the_answered_tokens_reach_it(
    pytester: pytest.Pytester, fake_judge: FakeJudge, tmp_path: Path
) -> None:
    pytester.makepyfile(test_four=FOUR_TESTS)
    result = pytester.runpytest(
        *_args(fake_judge, tmp_path / "c"), "--judge-budget", "tokens=1", "-p", "no:xdist"
    )
    result.assert_outcomes(errors=4)
    assert fake_judge.request_count == 1  # the rubric: nothing was spent before it
    out = result.stdout.str()
    assert "judge budget spent: " in out and " of 1 tokens; raise --judge-budget" in out
    assert "requests in flight when it ran out), 0 left" in out


def test_the_budget_is_split_between_xdist_workers(
    pytester: pytest.Pytester, fake_judge: FakeJudge, tmp_path: Path
) -> None:
    pytester.makepyfile(test_four=FOUR_TESTS)
    result = pytester.runpytest(
        *_args(fake_judge, tmp_path / "c", "--judge-budget=requests=6"), "-n", "2"
    )
    # Each worker's share is 3 requests: one comparison each.
    result.assert_outcomes(passed=2, errors=2)
    assert fake_judge.request_count == 6
    out = result.stdout.str()
    assert "(this pytest-xdist worker's share of --judge-budget requests=6)" in out
    assert "judge budget (split over 2 pytest-xdist workers): 6 of 6 requests spent, 0 left" in out


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("requests=ten", "requests='ten': give a whole number 0 or more"),
        ("cost=5", "'cost=5' is not a budget limit: give requests=N and/or tokens=M"),
        ("requests=1,requests=2", "requests is given twice"),
        ("", "no budget given"),
    ],
)
def test_a_bad_budget_is_a_usage_error_naming_the_fix(
    pytester: pytest.Pytester, value: str, message: str
) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(f"--judge-budget={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert message in err and "e.g. --judge-budget requests=200,tokens=500000" in err


def test_the_budget_from_the_environment(
    pytester: pytest.Pytester,
    fake_judge: FakeJudge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makepyfile(test_four=FOUR_TESTS)
    monkeypatch.setenv("RUBRIC_JUDGE_BUDGET", "requests=0")
    result = pytester.runpytest(*_args(fake_judge, tmp_path / "c"))
    result.assert_outcomes(errors=4)
    assert fake_judge.request_count == 0
    assert "judge budget: 0 of 0 requests spent, 0 left" in result.stdout.str()


def test_parse_budget() -> None:
    assert parse_budget("requests=200,tokens=500_000") == JudgeBudget(200, 500_000)
    assert parse_budget(" tokens = 10 ") == JudgeBudget(None, 10)
    assert str(JudgeBudget(3, None)) == "requests=3"
    shares = [JudgeBudget(10, 7).share(i, 3) for i in range(3)]
    assert shares == [JudgeBudget(4, 3), JudgeBudget(3, 2), JudgeBudget(3, 2)]
    for bad in ("requests=-1", "requests=1.5", "requests", "tokens=٣"):
        with pytest.raises(ValueError, match=r"e\.g\. --judge-budget"):
            parse_budget(bad)


REQUEST = Request([{"role": "user", "content": "q"}], None, None)


def test_concurrent_requests_never_pass_the_request_budget() -> None:
    budget = Budget(JudgeBudget(requests=50))
    sent: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def worker() -> None:
        start.wait()
        for attempt in range(20):
            try:
                budget.reserve(REQUEST)
            except BudgetSpentError:
                continue
            reached = attempt % 5 != 0  # some never reach a server: their slot comes back
            budget.settle(sent=reached, tokens=10 if reached else 0)
            if reached:
                with lock:
                    sent.append(1)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sent) == budget.requests == 50
    assert budget.tokens == 500


def test_the_token_limit_is_passed_by_at_most_the_requests_in_flight() -> None:
    budget = Budget(JudgeBudget(tokens=100))
    for _ in range(3):  # three in flight while nothing is spent
        budget.reserve(REQUEST)
    for _ in range(3):
        budget.settle(sent=True, tokens=90)
    assert budget.tokens == 270  # over by what was in flight
    with pytest.raises(BudgetSpentError, match="270 of 100 tokens"):
        budget.reserve(REQUEST)


def test_a_dry_run_counts_each_distinct_request_once() -> None:
    dry = DryRun()
    for _ in range(2):
        with pytest.raises(DryRunMiss):
            dry.reserve(REQUEST)
    with pytest.raises(DryRunMiss):
        dry.reserve(Request([{"role": "user", "content": "another"}], None, None))
    assert dry.data() == {"asked": 2, "chars": 8}


# -- the dry run -----------------------------------------------------------------------


def test_a_dry_run_asks_nothing_and_counts_cached_and_to_ask(
    pytester: pytest.Pytester, fake_judge: FakeJudge, tmp_path: Path
) -> None:
    pytester.makepyfile(test_four=FOUR_TESTS)
    cache = tmp_path / "c"
    partial = pytester.runpytest(*_args(fake_judge, cache), "-k", "rivers")
    partial.assert_outcomes(passed=1, deselected=3)
    fake_judge.reset()
    result = pytester.runpytest(*_args(fake_judge, cache, "--judge-dry-run"), "-rs")
    assert fake_judge.request_count == 0
    result.assert_outcomes(passed=1, skipped=3)
    out = result.stdout.str()
    # Cached: the first test's rubric and passes; to ask: three rubrics, six passes.
    assert "dry run: 3 judge calls cached, at least 9 would be asked (~" in out
    assert "3 test(s) skipped at their first judge call to ask; nothing was sent" in out
    assert "dry run: 3 judge call(s) would be asked (nothing was sent)" in out
    assert "test_four.py:" in out  # skips point at the test, not at the plugin

    # A second dry run under xdist counts the same.
    result = pytester.runpytest(*_args(fake_judge, cache, "--judge-dry-run"), "-n", "2")
    assert fake_judge.request_count == 0
    result.assert_outcomes(passed=1, skipped=3)
    assert "dry run: 3 judge calls cached, at least 9 would be asked" in result.stdout.str()


def test_a_dry_run_uses_locked_rubrics_and_writes_no_lock(
    suite: pytest.Pytester, fake_judge: FakeJudge, tmp_path: Path
) -> None:
    suite.runpytest(*_args(fake_judge, tmp_path / "one", "--judge-lock-rubrics"))
    fake_judge.reset()
    result = suite.runpytest(*_args(fake_judge, tmp_path / "two", "--judge-dry-run"))
    result.assert_outcomes(skipped=2)
    assert fake_judge.request_count == 0
    # Passes only; a test stops at its first assertion that would ask.
    assert "0 judge calls cached, at least 4 would be asked" in result.stdout.str()
    (suite.path / "judge_rubrics").rename(suite.path / "moved")
    result = suite.runpytest(
        *_args(fake_judge, tmp_path / "three", "--judge-dry-run", "--judge-lock-rubrics")
    )
    assert "at least 6 would be asked" in result.stdout.str()  # two rubrics, four passes
    assert not (suite.path / "judge_rubrics").exists()


# -- the lock-file reader: a trust boundary ------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,39}", fullmatch=True)
criteria = st.lists(
    st.fixed_dictionaries(
        {
            "name": names,
            "description": st.text(max_size=80),
            "weight": st.floats(min_value=0.001, max_value=1000, allow_nan=False),
            "type": st.sampled_from(["scale", "binary"]),
        }
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda c: c["name"],
)
texts = st.text(st.characters(codec="utf-8"), min_size=0, max_size=200)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    entries=st.lists(
        st.tuples(texts, st.none() | texts, criteria), max_size=4, unique_by=lambda e: e[:2]
    ),
    test=st.text(max_size=60),
)
def test_any_rubrics_render_and_read_back_the_same(
    entries: list[tuple[str, str | None, list[dict[str, Any]]]], test: str
) -> None:
    written = [LockEntry(p, r, Rubric.of(c, source="judge")) for p, r, c in entries]
    read = read_lock(render_lock(test, written))
    assert [entry.key for entry in read] == [entry.key for entry in written]
    for before, after in zip(written, read, strict=True):
        assert [(c.name, c.weight, c.type) for c in after.rubric.criteria] == [
            (c.name, c.weight, c.type) for c in before.rubric.criteria
        ]


def _one_line(error: LockFileError) -> None:
    message = str(error)
    assert message and "\n" not in message and len(message) < 600


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_reads_or_is_one_lock_file_error(text: str) -> None:
    try:
        read_lock(text)
    except LockFileError as error:
        _one_line(error)


VALID = render_lock(
    "t", [LockEntry("q", None, Rubric.of(OTHER_RUBRIC, source="judge"))]
).splitlines(keepends=True)
yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(line=st.integers(min_value=0, max_value=len(VALID) - 1), value=yaml_values)
def test_an_edited_value_reads_or_is_one_lock_file_error(line: int, value: object) -> None:
    lines = list(VALID)
    key, sep, _ = lines[line].partition(": ")
    if not sep:
        return
    lines[line] = f"{key}: {json.dumps(value)}\n"  # JSON is YAML: any value, in place
    try:
        entries = read_lock("".join(lines))
    except LockFileError as error:
        _one_line(error)
    else:
        for entry in entries:
            assert isinstance(entry.prompt, str) and entry.rubric.criteria


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_yaml_is_a_lock_file_error(data: bytes) -> None:
    text = "rubrics:\n- &a prompt: x\n" + data.decode("latin-1")
    try:
        read_lock(text)
    except LockFileError as error:
        _one_line(error)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("rubrics: 3\n", "rubrics is a number: expected a list of entries"),
        (
            "rubric: []\n",
            "the file has an unknown key 'rubric': the keys are version, test, rubrics",
        ),
        ("version: 2\nrubrics: []\n", "version is 2: this plugin reads version 1"),
        (
            "rubrics:\n- prompt: 42\n  criteria: []\n",
            "rubrics[0]: prompt is a number: write it as text",
        ),
        (
            "rubrics:\n- prompt: q\n  criteria:\n  - {name: Accuracy, weight: 1, type: scale}\n",
            "criteria[0]: name 'Accuracy' is not a criterion name: snake_case",
        ),
        (
            "rubrics:\n- prompt: q\n  criteria:\n  - {name: a, weight: 1, type: likert}\n",
            "criteria[0] (a): type is 'likert': give scale or binary",
        ),
        (
            "rubrics:\n- prompt: q\n  criteria:\n  - {name: a, wieght: 1, type: scale}\n",
            "has an unknown key 'wieght': the keys are name, description, weight, type",
        ),
        (
            "rubrics:\n- prompt: q\n  criteria:\n  - {name: a, weight: 1, type: scale}\n"
            "  - {name: a, weight: 1, type: scale}\n",
            "criterion 'a' is given twice",
        ),
        (
            "rubrics:\n- prompt: q\n  criteria:\n  - {name: a, weight: -1, type: scale}\n",
            "no criterion has a positive weight",
        ),
        (
            "rubrics:\n- prompt: q\n  criteria: [{name: a, weight: 1, type: scale}]\n"
            "- prompt: q\n  criteria: [{name: a, weight: 1, type: scale}]\n",
            "rubrics[1] (prompt 'q') repeats the prompt and reference of rubrics[0]",
        ),
        ("rubrics: *x\n", "anchors and aliases"),
        ("rubrics: !!python/object:os.system x\n", "tags"),
        ("rubrics: [\n", "not valid YAML"),
    ],
)
def test_lock_file_errors_say_where_and_what(text: str, message: str) -> None:
    with pytest.raises(LockFileError) as caught:
        read_lock(text)
    assert message in str(caught.value)
    _one_line(caught.value)


def test_weights_are_renormalized_on_reading() -> None:
    (entry,) = read_lock(
        "rubrics:\n- prompt: q\n  criteria:\n  - {name: a, weight: 3, type: scale}\n"
        "  - {name: b, weight: 1, type: binary}\n"
    )
    assert [c.weight for c in entry.rubric.criteria] == [0.75, 0.25]
    assert entry.rubric.warnings  # said on the verdict, as for a judge's rubric


def test_rubric_changes() -> None:
    old = Rubric.of(
        [
            {"name": "accuracy", "weight": 0.5, "type": "scale"},
            {"name": "clarity", "weight": 0.5, "type": "scale"},
        ]
    )
    assert rubric_changes(old, old) == []
    new = Rubric.of(
        [
            {"name": "accuracy", "weight": 0.6, "type": "binary"},
            {"name": "depth", "weight": 0.4, "type": "scale"},
        ]
    )
    assert rubric_changes(old, new) == [
        "added depth",
        "removed clarity",
        "accuracy weight 0.500 -> 0.600",
        "accuracy type scale -> binary",
    ]
