"""The calibration harness measures what it claims: fake judges of known behaviour.

Each fake judge decides a row from a hash of its prompt, so both slot orders of a row get
the same decision unless the judge's position bias (probability q) answers "slot A" in
both orders. The harness must recover the planted rates within their Wilson intervals.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_rubric_judge.calibration import (
    CalibrationReport,
    GoldFormatError,
    GoldRow,
    judgebench_correct,
    parse_gold,
    read_gold,
    run_calibration,
    summary_text,
)
from pytest_rubric_judge.cli import main
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.prompts import ParsedRequest
from pytest_rubric_judge.stats import wilson_interval
from pytest_rubric_judge.testing import (
    DEFAULT_CRITERIA,
    FakeJudge,
    pass_yaml_answer,
    rubric_yaml_answer,
)

ROWS = 400
#: Slot scores (winner, loser) per criterion for each margin level; weights 0.5/0.3/0.2.
#: Mean |margin|: 0, 0.125, 0.25, 0.375, 1.0 -> buckets 0, 1, 2, 3 and 4.
LEVELS: tuple[dict[str, tuple[int, int]], ...] = (
    {"accuracy": (3, 3), "completeness": (3, 3), "clarity": (3, 3)},
    {"accuracy": (4, 3), "completeness": (3, 3), "clarity": (3, 3)},
    {"accuracy": (4, 3), "completeness": (4, 3), "clarity": (4, 3)},
    {"accuracy": (5, 2), "completeness": (3, 3), "clarity": (3, 3)},
    {"accuracy": (5, 1), "completeness": (5, 1), "clarity": (5, 1)},
)


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def gold_set(n: int = ROWS) -> list[GoldRow]:
    """Good response in slot A for even rows; the good one is longer in rows i % 4 < 2."""
    rows = []
    for i in range(n):
        good = f"good answer {i} " + ("with many more supporting words " * 3 if i % 4 < 2 else "")
        bad = f"bad answer {i} " + ("padded with extra filler words " * 3 if i % 4 >= 2 else "")
        a, b, label = (good, bad, 1) if i % 2 == 0 else (bad, good, -1)
        rows.append(GoldRow(i, str(i), f"question {i}", a, b, label))
    return rows


def _answer(slot_winner: str, level: int, request: ParsedRequest) -> str:
    scores = {
        name: (hi, lo) if slot_winner == "A" else (lo, hi)
        for name, (hi, lo) in LEVELS[level].items()
    }
    return pass_yaml_answer(scores, f"{slot_winner}>B" if slot_winner == "A" else "B>A")


@dataclass
class KnownJudge:
    """Right with probability p; position-biased toward slot A with probability q.

    `informative`: a right decision gets a high margin level, a wrong one a low level;
    otherwise the level is drawn independently of being right.
    `length_biased`: prefers the longer response whatever the truth.
    """

    p: float
    q: float = 0.0
    informative: bool = True
    length_biased: bool = False
    salt: str = "s1"

    def __call__(self, request: ParsedRequest) -> str:
        if request.task != "pass":
            return rubric_yaml_answer(DEFAULT_CRITERIA)
        a, b = request.response_a or "", request.response_b or ""
        key = request.prompt
        right = _unit(self.salt, "right", key) < self.p
        if self.informative:
            level = (
                3 + int(_unit(self.salt, "lvl", key) * 2)
                if right
                else int(_unit(self.salt, "lvl", key) * 2)
            )
        else:
            level = int(_unit(self.salt, "lvl", key) * len(LEVELS))
        if _unit(self.salt, "bias", key) < self.q:
            return _answer("A", level, request)
        if self.length_biased:
            winner = a if len(a) > len(b) else b
        else:
            good = a if a.startswith("good") else b
            bad = b if good is a else a
            winner = good if right else bad
        return _answer("A" if winner is a else "B", level, request)


def calibrate(policy: Callable[[ParsedRequest], str], n: int = ROWS) -> CalibrationReport:
    with FakeJudge(policy) as fake, Judge(fake.url, fake.model, max_retries=0) as judge:
        return run_calibration(judge, gold_set(n), concurrency=32)


def _contains(report_rate: object, value: float) -> bool:
    interval = report_rate.interval  # type: ignore[attr-defined]
    return bool(interval.low <= value <= interval.high)


@pytest.fixture(scope="module")
def biased() -> CalibrationReport:
    return calibrate(KnownJudge(p=0.8, q=0.25))


def test_recovers_accuracy_and_position_bias(biased: CalibrationReport) -> None:
    p, q = 0.8, 0.25
    assert biased.judged == ROWS and not biased.errors
    # p: how often the judge is right when position bias does not decide the row.
    assert _contains(biased.consistent_agreement, p), biased.consistent_agreement
    # q: the share of rows whose two orders disagree.
    assert _contains(biased.position_consistency, 1 - q), biased.position_consistency
    # every flip favours slot A
    assert biased.flips_favouring_slot_a.rate == 1.0
    assert biased.flips_favouring_slot_a.n == ROWS - biased.position_consistency.successes
    # both orders right: right and not biased
    assert _contains(biased.reconciled_agreement, p * (1 - q))
    # forward pass: right when unbiased; when biased, right for labels A>B (half the rows)
    assert _contains(biased.forward_agreement, p * (1 - q) + q * 0.5)
    # JudgeBench's rule: a flip (A>B then B>A) sums to 0 and is not correct
    assert biased.judgebench_score.successes == biased.reconciled_agreement.successes
    assert biased.judgebench_score.n == ROWS


def test_an_unbiased_judge_is_consistent() -> None:
    report = calibrate(KnownJudge(p=0.6, q=0.0), n=80)
    assert report.position_consistency.rate == 1.0
    assert report.flips_favouring_slot_a.n == 0
    assert report.forward_agreement.successes == report.reconciled_agreement.successes


def test_informative_margin_gives_a_rising_reliability_curve(biased: CalibrationReport) -> None:
    # Right rows sit in buckets 3-4, wrong ones in 0-1 (biased rows have margin 0).
    high = biased.calibration[-1].accuracy
    low = biased.calibration[1].accuracy
    assert high.n > 20 and low.n > 20
    assert high.rate == 1.0 and low.rate == 0.0


def test_uninformative_margin_gives_a_flat_reliability_curve() -> None:
    p = 0.7
    report = calibrate(KnownJudge(p=p, q=0.0, informative=False), n=300)
    rates = []
    for bucket in report.calibration:
        assert bucket.accuracy.n > 30, bucket
        # five buckets checked at once: 99% intervals keep the family's error near 5%
        wide = wilson_interval(bucket.accuracy.successes, bucket.accuracy.n, 0.99)
        assert wide.low <= p <= wide.high, bucket
        rates.append(bucket.accuracy.rate or 0.0)
    assert max(rates) - min(rates) < 0.25


def test_length_bias_shows_in_the_probe() -> None:
    report = calibrate(KnownJudge(p=1.0, length_biased=True), n=80)
    assert report.length_probe["longer_is_winner"].rate == 1.0
    assert report.length_probe["shorter_is_winner"].rate == 0.0
    assert report.length_probe["longer_is_winner"].n == 40
    fair = calibrate(KnownJudge(p=1.0), n=80)
    assert fair.length_probe["shorter_is_winner"].rate == 1.0


def test_score_distributions_count_every_score(biased: CalibrationReport) -> None:
    dists = biased.score_distributions
    assert set(dists) == {"accuracy", "completeness", "clarity"}
    for dist in dists.values():
        assert dist.type == "scale"
        assert set(dist.counts) == {"1", "2", "3", "4", "5"}
        assert sum(dist.counts.values()) == 4 * ROWS  # two passes, two responses
    assert dists["accuracy"].counts["5"] > 0 and dists["clarity"].counts["2"] == 0


@pytest.mark.parametrize(
    ("label", "forward", "reversed_", "correct"),
    [
        (1, 1, 1, True),
        (1, 1, 0, True),
        (1, 0, 1, True),
        (1, 0, 0, False),
        (1, 1, -1, False),
        (1, -1, -1, False),
        (-1, -1, 0, True),
        (-1, 1, 0, False),
    ],
)
def test_judgebench_rule(label: int, forward: int, reversed_: int, correct: bool) -> None:
    assert judgebench_correct(label, forward, reversed_) is correct


# -- readers ----------------------------------------------------------------------------


def _lines(*rows: dict[str, object]) -> list[str]:
    return [json.dumps(row) for row in rows]


def test_reads_the_three_formats() -> None:
    project = parse_gold(
        _lines({"prompt": "p", "response_A": "a", "response_B": "b", "label": "B>A"})
    )
    assert project[0].label == -1 and project[0].prompt == "p"
    bench = parse_gold(
        _lines(
            {"pair_id": "x1", "question": "q", "response_A": "a", "response_B": "b", "label": "A>B"}
        )
    )
    assert bench[0].id == "x1" and bench[0].prompt == "q" and bench[0].label == 1
    reward = parse_gold(
        _lines(
            *({"id": i, "prompt": f"p{i}", "chosen": "good", "rejected": "bad"} for i in range(200))
        )
    )
    in_a = [r for r in reward if r.chosen_in == "A"]
    assert 70 < len(in_a) < 130
    for row in reward:
        good_slot = row.response_a if row.label == 1 else row.response_b
        assert good_slot == "good"
        assert (row.label == 1) == (row.chosen_in == "A")
    again = parse_gold(
        _lines(
            *({"id": i, "prompt": f"p{i}", "chosen": "good", "rejected": "bad"} for i in range(200))
        )
    )
    assert [r.label for r in again] == [r.label for r in reward]


def test_errors_name_the_row_and_expected_fields() -> None:
    lines = _lines(
        {"prompt": "p", "response_A": "a", "response_B": "b", "label": "A>B"},
        {"prompt": "p", "response_A": "a", "label": "A>B"},
    )
    with pytest.raises(
        GoldFormatError,
        match=r"line 2: field 'response_B' is missing.*prompt, response_A, response_B, label",
    ):
        parse_gold(lines)
    with pytest.raises(GoldFormatError, match="cannot tell the format"):
        parse_gold(_lines({"text": "x"}))
    with pytest.raises(GoldFormatError, match="line 1: label 'better'"):
        parse_gold(_lines({"prompt": "p", "response_A": "a", "response_B": "b", "label": "better"}))
    with pytest.raises(GoldFormatError, match=r"line 1: field 'chosen'.*rewardbench"):
        parse_gold(
            _lines({"prompt": "p", "response_A": "a", "response_B": "b", "label": "A>B"}),
            "rewardbench",
        )


# -- the command ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row",
    [
        {"prompt": "question 1", "response_A": "good one", "response_B": "bad one", "label": "A>B"},
        {
            "question": "question 1",
            "response_A": "bad one",
            "response_B": "good one",
            "label": "B>A",
        },
        {"prompt": "question 1", "chosen": "good one", "rejected": "bad one"},
    ],
    ids=["project", "judgebench", "rewardbench"],
)
def test_command_on_each_format(
    row: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gold = tmp_path / "gold.jsonl"
    rows = [
        {**row, "prompt" if "prompt" in row else "question": f"question {i}"} for i in range(20)
    ]
    gold.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    with FakeJudge(KnownJudge(p=1.0)) as fake:
        status = main(
            [
                "calibrate",
                str(gold),
                "--out",
                str(out),
                "--judge-url",
                fake.url,
                "--judge-model",
                fake.model,
                "--judge-cache",
                "off",
                "--judge-max-retries",
                "0",
            ]
        )
    assert status == 0
    data = json.loads((out / "calibration.json").read_text(encoding="utf-8"))
    assert data["judged"] == 20
    assert data["reconciled_agreement"]["rate"] == 1.0
    assert data["position_consistency"]["interval"]["n"] == 20
    printed = capsys.readouterr().out
    assert "reconciled agreement" in printed and "expected calibration error" in printed
    assert data["kappa"]["reconciled"]["observed"] == 1.0  # no ties: both orders right
    assert data["format_probe"]["pairs"] == 10 and "Cohen's kappa" in printed
    pytest.importorskip("matplotlib")
    assert (out / "reliability.png").stat().st_size > 0


def test_command_reports_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"prompt": "p", "chosen": "c"}) + "\n", encoding="utf-8")
    status = main(["calibrate", str(gold), "--out", str(tmp_path / "o"), "--format", "rewardbench"])
    assert status == 2
    err = capsys.readouterr().err
    assert "line 1" in err and "rejected" in err and "prompt, chosen, rejected" in err
    gold.write_text(json.dumps({"prompt": "p", "chosen": "c", "rejected": "r"}) + "\n")
    assert read_gold(gold)[0].chosen_in in ("A", "B")


def test_command_with_every_row_failing_exits_1_and_names_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gold = tmp_path / "gold.jsonl"
    rows = [
        {"prompt": f"q{i}", "response_A": "a", "response_B": "b", "label": "A>B"} for i in range(5)
    ]
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args = ["calibrate", str(gold), "--out", str(tmp_path / "o"), "--no-plot"]
    status = main([*args, "--judge-cache-dir", str(tmp_path / "cache")])  # no judge configured
    assert status == 1
    printed = capsys.readouterr()
    assert "no pair was judged" in printed.out
    cause = [line for line in printed.err.splitlines() if "JudgeNotConfiguredError" in line]
    assert len(cause) == 1 and "5 rows" in cause[0] and "--judge-url" in cause[0]
    assert cause[0].startswith("rubric-judge: no pair was judged; the cause: in 5 rows: ")


def test_empty_buckets_state_no_confidence() -> None:
    rows = gold_set(8)
    with FakeJudge(KnownJudge(p=1.0)) as fake, Judge(fake.url, fake.model) as judge:
        report = run_calibration(judge, rows, concurrency=4)
    empty = [bucket for bucket in report.calibration if bucket.accuracy.n == 0]
    assert empty, "every bucket got rows; the test needs an empty one"
    assert all(bucket.confidence is None for bucket in empty)
    assert all(bucket.confidence is not None for bucket in report.calibration if bucket.accuracy.n)
    for line in summary_text(report).splitlines():
        if "acc n/a" in line:
            assert "conf" not in line or "conf     -" in line, line
