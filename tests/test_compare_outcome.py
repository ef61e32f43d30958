"""What `rubric-judge compare` says about a run that did not judge what it was given.

A run in which no row was judged, or whose share of judge errors is above
`--max-error-rate`, exits with status 1 and names the most common cause in one line on
stderr, while still writing its outputs (they help find the cause) and saying in
metrics.json what happened. Input rows that cannot be read are counted as `invalid_rows`,
never as judge errors. The aggregates are the same whatever order the rows finished in.
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_rubric_judge.cli import main
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge
from pytest_rubric_judge.testing.reading import ParsedRequest

ROWS = [
    {"prompt": f"question {i}?", "response_A": f"answer {i}", "response_B": f"reply {i} GOOD"}
    for i in range(4)
]


def _write(path: Path, rows: list[Any], *, raw_lines: tuple[str, ...] = ()) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for line in raw_lines:
            out.write(line + "\n")
        for row in rows:
            out.write(json.dumps(row) + "\n")
    return path


def _metrics(out: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return loaded


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("rubric-judge: ")]


def _compare(tmp_path: Path, data: Path, *flags: str, out: str = "out") -> int:
    return main(
        [
            "compare",
            str(data),
            "--out",
            str(tmp_path / out),
            "--no-plot",
            "--no-parquet",
            "--progress",
            "never",
            "--judge-cache-dir",
            str(tmp_path / "cache"),
            *flags,
        ]
    )


def _assert_failed_run(out: Path, status: str, cause: str, err: str) -> dict[str, Any]:
    lines = _error_lines(err)
    assert len([line for line in lines if cause in line]) == 1, err
    metrics = _metrics(out)
    assert metrics["status"] == status
    assert (out / "details.jsonl").is_file() and (out / "report.html").is_file()
    return metrics


# -- nothing judged ---------------------------------------------------------------------


def test_no_judge_configured_exits_1_with_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(tmp_path / "data.jsonl", ROWS)
    assert _compare(tmp_path, data) == 1
    err = capsys.readouterr().err
    metrics = _assert_failed_run(tmp_path / "out", "nothing_judged", "JudgeNotConfiguredError", err)
    assert "no row was judged" in err and "4 of 4" in err
    assert metrics["complete"] is True and metrics["judged"] == 0
    assert metrics["inference_error"] == 4 and metrics["invalid_rows"] == 0
    assert metrics["judge_error_causes"][0]["type"] == "JudgeNotConfiguredError"
    assert metrics["judge_error_causes"][0]["count"] == 4


def test_nothing_listening_exits_1_with_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(tmp_path / "data.jsonl", ROWS)
    dead = FakeJudge().start()
    url = dead.url
    dead.stop()  # a port nothing listens on any more
    flags = ("--judge-url", url, "--judge-model", "m", "--judge-max-retries", "0")
    assert _compare(tmp_path, data, *flags) == 1
    err = capsys.readouterr().err
    _assert_failed_run(tmp_path / "out", "nothing_judged", "JudgeUnavailableError", err)
    assert "refused the connection" in err


def test_replay_without_a_model_exits_1_with_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(tmp_path / "data.jsonl", ROWS)
    assert _compare(tmp_path, data, "--judge-cache", "replay") == 1
    err = capsys.readouterr().err
    _assert_failed_run(tmp_path / "out", "nothing_judged", "CacheMissError", err)


def test_a_wrong_field_in_every_row_exits_1_as_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"prompt": r["prompt"], "response_A": r["response_A"], "resp_B": "x"} for r in ROWS]
    data = _write(tmp_path / "data.jsonl", rows)
    with FakeJudge() as fake:
        flags = ("--judge-url", fake.url, "--judge-model", fake.model)
        assert _compare(tmp_path, data, *flags) == 1
        assert fake.request_count == 0
    err = capsys.readouterr().err
    metrics = _assert_failed_run(tmp_path / "out", "nothing_judged", "invalid input", err)
    assert "missing field 'response_B'" in err
    assert metrics["invalid_rows"] == 4 and metrics["inference_error"] == 0
    assert metrics["comparisons"] == 0 and metrics["rows"] == 4


# -- the error share --------------------------------------------------------------------


def _one_in_four_too_long(tmp_path: Path) -> Path:
    rows = [dict(row) for row in ROWS]
    rows[2]["response_B"] = "GOOD " + "x" * 400  # longer than --judge-max-input-chars
    return _write(tmp_path / "data.jsonl", rows)


def test_an_error_share_above_the_threshold_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _one_in_four_too_long(tmp_path)
    with FakeJudge(ByResponsePolicy("GOOD")) as fake:
        flags = ["--judge-url", fake.url, "--judge-model", fake.model]
        flags += ["--judge-max-input-chars", "200"]
        assert _compare(tmp_path, data, *flags) == 1  # 25% > the 5% default
        err = capsys.readouterr().err
        metrics = _assert_failed_run(tmp_path / "out", "too_many_errors", "InputTooLargeError", err)
        assert "25.0%" in err and "--max-error-rate" in err
        assert metrics["judged"] == 3 and metrics["error_rate"] == 0.25
        assert metrics["max_error_rate"] == 0.05
        # The same run with a looser threshold passes, and says it is complete and ok.
        assert _compare(tmp_path, data, *flags, "--max-error-rate", "0.25", out="loose") == 0
        assert _metrics(tmp_path / "loose")["status"] == "ok"
        assert _compare(tmp_path, data, *flags, "--max-error-rate", "0.2", out="strict") == 1


def test_max_error_rate_must_be_a_share() -> None:
    for bad in ("-0.1", "1.5", "many"):
        with pytest.raises(SystemExit) as caught:
            main(["compare", "x.jsonl", "--out", "o", "--max-error-rate", bad])
        assert caught.value.code == 2


# -- invalid rows -----------------------------------------------------------------------


def test_invalid_rows_are_counted_apart_from_judge_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = ("{not json", "[1, 2, 3]", json.dumps({"prompt": "p", "response_A": "a"}))
    data = _write(tmp_path / "data.jsonl", ROWS, raw_lines=bad)
    with FakeJudge(ByResponsePolicy("GOOD")) as fake:
        flags = ("--judge-url", fake.url, "--judge-model", fake.model)
        assert _compare(tmp_path, data, *flags) == 0
    captured = capsys.readouterr()
    metrics = _metrics(tmp_path / "out")
    assert metrics["invalid_rows"] == 3 and metrics["inference_error"] == 0
    assert metrics["comparisons"] == 4 and metrics["rows"] == 7 and metrics["judged"] == 4
    assert metrics["error_rate"] == 0.0 and metrics["status"] == "ok"
    causes = {cause["type"]: cause for cause in metrics["invalid_row_causes"]}
    assert set(causes) == {"is not JSON", "is not a JSON object", "missing field 'response_B'"}
    assert all(cause["count"] == 1 for cause in causes.values())
    assert causes["is not JSON"]["example"].startswith("line 1 is not JSON")
    assert causes["missing field 'response_B'"]["example"].startswith("line 3: missing field")
    summary = dict(
        line.split("  ", 1) for line in captured.out.splitlines() if "  " in line.strip()
    )
    assert summary["invalid input rows"].strip() == "3"
    assert summary["judge errors"].strip().startswith("0 ")
    assert "3 invalid input rows skipped" in captured.err


# -- completion order ------------------------------------------------------------------


class _Jitter:
    """The marker policy, answering after a random pause (0-15 ms): rows finish out of order."""

    def __init__(self) -> None:
        self.policy = ByResponsePolicy("GOOD")
        self.random = random.Random(5)
        self.lock = threading.Lock()

    def __call__(self, request: ParsedRequest) -> str:
        with self.lock:
            pause = self.random.uniform(0, 0.015)
        time.sleep(pause)
        return self.policy(request)


def _mixed_rows(n: int) -> list[dict[str, str]]:
    """B wins about 60% of rows, A 30%, the rest tie: order matters to the resamples."""
    rows = []
    for i in range(n):
        kind = (i * 7) % 10
        a, b = (f"plain {i}", f"better {i} GOOD") if kind < 6 else (f"old {i} GOOD", f"new {i}")
        if kind == 9:
            a, b = f"same {i}", f"same too {i}"
        rows.append({"prompt": f"prompt {i}?", "response_A": a, "response_B": b})
    return rows


def test_intervals_do_not_depend_on_completion_order(tmp_path: Path) -> None:
    data = _write(tmp_path / "data.jsonl", _mixed_rows(30))
    stats_flags = ("--resamples", "97", "--seed", "1")
    with FakeJudge(_Jitter()) as fake:
        judge = ("--judge-url", fake.url, "--judge-model", fake.model)
        for name, concurrency in (("one", "1"), ("many", "16")):
            flags = (*judge, *stats_flags, "--concurrency", concurrency)
            assert _compare(tmp_path, data, *flags, "--judge-cache", "off", out=name) == 0
        assert _compare(tmp_path, data, *judge, *stats_flags, "--concurrency", "16") == 0
        requests = fake.request_count
        assert _compare(tmp_path, data, *judge, *stats_flags, out="cached") == 0
        assert fake.request_count == requests  # every answer came from the cache
    assert main(["rescore", str(tmp_path / "out"), "--no-plot", "--no-parquet"]) == 0

    def statistics(folder: Path) -> str:
        metrics = _metrics(folder)
        metrics.pop("run")
        return json.dumps(metrics, sort_keys=True)

    first = statistics(tmp_path / "one")
    assert _metrics(tmp_path / "one")["b_scores"] not in (0, 30)
    for folder in ("many", "out", "cached"):
        assert statistics(tmp_path / folder) == first, folder
    rescored = _metrics(tmp_path / "out" / "rescored")["intervals"]
    assert json.dumps(rescored) == json.dumps(_metrics(tmp_path / "one")["intervals"])


def test_row_results_tell_invalid_rows_from_judge_errors(tmp_path: Path) -> None:
    from pytest_rubric_judge.batch import InvalidRow
    from pytest_rubric_judge.judge import Judge

    rows: list[Any] = [ROWS[0], {"prompt": "p", "response_A": "a"}, InvalidRow("line 3: bad")]
    with Judge(None, None, cache_dir=tmp_path / "cache") as judge:  # no judge configured
        results = sorted(judge.compare_many(rows, concurrency=2), key=lambda r: r.index)
    assert [r.invalid for r in results] == [False, True, True]
    assert results[0].error_type == "JudgeNotConfiguredError" and not results[0].ok
    assert "missing field 'response_B'" in (results[1].error or "")
