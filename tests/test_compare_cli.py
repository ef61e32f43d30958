"""`rubric-judge compare`, `rescore` and `show`; metrics.json and details round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_rubric_judge.cli import main
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.report.details import read_details, record_of, verdict_of
from pytest_rubric_judge.report.metrics import article_reproduction, metrics_of
from pytest_rubric_judge.stats import Aggregator
from pytest_rubric_judge.testing import FakeJudge

ROWS = [
    {
        "id": "dino",
        "prompt": "do dinosaurs really exist?",
        "response_A": "Dinosaurs existed long ago.",
        "response_B": "Yes. Fossils, footprints and eggs show dinosaurs existed; birds descend from them.",
    },
    {
        "prompt": "How many student newspapers does Notre Dame have?",
        "response_A": "145.",
        "response_B": "At least three: The Observer, Scholastic and The Juggler.",
        "reference": "Several, including The Observer.",
    },
    {
        "prompt": "What is the capital of France?",
        "response_A": "Paris is the capital city of France, on the Seine.",
        "response_B": "Lyon.",
    },
]


def _write_data(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for row in ROWS:
            out.write(json.dumps(row) + "\n")
        out.write("\n{not json\n")
    return path


def _judge_flags(fake: FakeJudge, cache: Path) -> list[str]:
    return [
        "--judge-url",
        fake.url,
        "--judge-model",
        fake.model,
        "--judge-cache-dir",
        str(cache),
        "--judge-max-retries",
        "0",
    ]


@pytest.fixture
def compared(
    fake_judge: FakeJudge, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, FakeJudge, Path]:
    data = _write_data(tmp_path / "data.jsonl")
    out = tmp_path / "out"
    flags = _judge_flags(fake_judge, tmp_path / "cache")
    status = main(["compare", str(data), "--out", str(out), "--progress", "always", *flags])
    assert status == 0
    return out, fake_judge, data


def test_compare_writes_every_output(
    compared: tuple[Path, FakeJudge, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out, fake, _ = compared
    captured = capsys.readouterr()
    assert "rows/s" in captured.err and "ETA" in captured.err and "4/4" in captured.err
    assert "win rate of B" in captured.out
    assert fake.request_count == 3 + 2 * 3
    metrics = json.loads((out / "metrics.json").read_text())
    for field in (
        "a_scores",
        "b_scores",
        "ties",
        "inference_error",
        "winrate",
        "lower_rate",
        "upper_rate",
        "weighted_score_A",
        "weighted_score_A_stderr",
        "weighted_score_B",
        "weighted_score_B_stderr",
        "score_margin",
        "score_margin_stderr",
        "consistency_rate",
    ):
        assert field in metrics, field
    assert metrics["rows"] == 4 and metrics["comparisons"] == 3
    assert metrics["invalid_rows"] == 1 and metrics["inference_error"] == 0  # the bad line
    assert metrics["status"] == "ok" and metrics["complete"] is True
    assert metrics["a_scores"] + metrics["b_scores"] + metrics["ties"] == 3
    wilson, bootstrap = metrics["intervals"]["wilson"], metrics["intervals"]["bootstrap"]
    assert wilson["method"] == "wilson" and wilson["level"] == 0.95
    assert (bootstrap["resamples"], bootstrap["seed"]) == (2000, 0)
    assert set(metrics["criteria"]) >= {"accuracy"}
    assert metrics["run"]["judge_requests"] == 9
    records = list(read_details(out / "details.jsonl"))
    assert [r["index"] for r in records] == [0, 1, 2, 3]  # input order, not finishing order
    assert records[0]["id"] == "dino" and records[1]["id"] == "1"
    assert records[1]["reference"] == "Several, including The Observer."
    assert records[3]["status"] == "invalid" and "not JSON" in records[3]["error"]
    assert records[3]["error_type"] == "InvalidRow"
    first = records[0]
    assert first["forward"]["raw"] and first["reversed"]["overall_justification"]
    criterion = first["criteria"][0]
    for key in ("weight", "type", "description", "forward_score_A", "reversed_justification_B"):
        assert key in criterion
    page = (out / "report.html").read_text(encoding="utf-8")
    summary = page[: page.index("<article")]
    assert fake.model in summary and str(compared[2]) in summary  # the judge and the data
    assert "complete: every input row was read" in summary
    assert "<label for='f-all'>all (4)</label>" in page  # every row, the invalid one included
    assert "invalid input rows (1)" in page and "judge errors (0)" in page
    if _has("pyarrow"):
        import pyarrow.parquet as pq

        table = pq.read_table(out / "details.parquet")
        assert table.num_rows == 4
        assert table.column("id").to_pylist() == ["dino", "1", "2", "3"]
    if _has("matplotlib"):
        assert (out / "dashboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_second_run_is_served_from_the_cache(
    compared: tuple[Path, FakeJudge, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, fake, data = compared
    before = fake.request_count
    flags = _judge_flags(fake, tmp_path / "cache")
    assert main(["compare", str(data), "--out", str(tmp_path / "again"), "--no-plot", *flags]) == 0
    assert fake.request_count == before
    assert "0 judge requests" in capsys.readouterr().out
    first = json.loads((out / "metrics.json").read_text())
    second = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert first["winrate"] == second["winrate"]


def test_rescore_recomputes_without_the_judge(
    compared: tuple[Path, FakeJudge, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, fake, _ = compared
    before = fake.request_count
    target = tmp_path / "rescored"
    status = main(
        [
            "rescore",
            str(out),
            "--weights",
            "accuracy=0.9",
            "--drop",
            "clarity",
            "--tie-band",
            "0.05",
            "--out",
            str(target),
            "--no-plot",
        ]
    )
    assert status == 0 and fake.request_count == before  # zero judge requests
    records = list(read_details(target / "details.jsonl"))
    ok = [r for r in records if r["status"] == "ok"]
    assert ok and all("clarity" not in {c["name"] for c in r["criteria"]} for r in ok)
    for record in ok:
        assert record["rescored_with"]["tie_band"] == 0.05
        margin = record["score_margin"]
        expected = "A>B" if margin > 0.05 else "B>A" if margin < -0.05 else "A=B"
        assert record["preference"] == expected
    metrics = json.loads((target / "metrics.json").read_text())
    assert metrics["run"]["judge_requests"] == 0 and "clarity" not in metrics["criteria"]
    assert records[3]["status"] == "invalid"  # the invalid row stays invalid
    assert metrics["invalid_rows"] == 1 and metrics["inference_error"] == 0
    assert main(["rescore", str(out), "--drop", "no_such_criterion", "--out", str(target)]) == 2
    assert "no_such_criterion" in capsys.readouterr().err


def test_show_prints_a_row_like_the_article(
    compared: tuple[Path, FakeJudge, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _, _ = compared
    capsys.readouterr()
    assert main(["show", str(out), "--row", "1"]) == 0
    text = capsys.readouterr().out
    for part in ("Row 1", "Preference: [", "Weighted A:", "Margin:", "Criteria:", "Weight:"):
        assert part in text
    assert "Justification B:" in text and "Description:" in text
    assert main(["show", str(out), "--row", "99"]) == 2


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["compare", "x.jsonl", "--out", str(tmp_path), "--concurrency", "0"])
    assert caught.value.code == 2
    assert main(["compare", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 2


def test_details_round_trip_to_the_same_verdict(fake_judge: FakeJudge) -> None:
    with Judge(fake_judge.url, fake_judge.model) as judge:
        verdict = judge.compare("q?", "short", "a longer answer to q")
    record = json.loads(json.dumps(record_of(0, "x", verdict)))
    again = verdict_of(record)
    assert again is not None
    assert again.model_dump(exclude={"samples", "votes", "panel", "panel_strategy"}) == (
        verdict.model_dump(exclude={"samples", "votes", "panel", "panel_strategy"})
    )


def test_article_summary_is_reproduced_from_its_counts() -> None:
    result = article_reproduction(resamples=1000, seeds=200)
    assert result["winrate"] == 0.7 and round(result["error_rate"], 3) == 0.091
    wilson = result["wilson"]
    assert (round(wilson["low"], 3), round(wilson["high"], 3)) == (0.397, 0.892)
    # The article's [0.400, 0.909] comes out of a bootstrap over all 11 rows for some seeds.
    assert "[0.400, 0.909]" in result["all_rows_bootstrap"]["intervals"]
    # Resampling only the 10 decisive comparisons can never give 0.909 (= 10/11).
    assert round(result["bootstrap_decisive_only"]["high"] * 10, 6) % 1 == 0


def test_metrics_field_names_follow_the_article() -> None:
    aggregator = Aggregator(resamples=None)
    for _ in range(2):
        aggregator.add_error()
    metrics = metrics_of(aggregator.result())
    assert metrics["inference_error"] == 2 and metrics["winrate"] is None
    assert metrics["intervals"]["bootstrap"] is None
    assert metrics["lower_rate"] == 0.0 and metrics["upper_rate"] == 1.0
