"""`rubric-judge compare --shard K/N` and `rubric-judge merge`.

The merged outputs of N shards are the outputs of one unsharded run of the same data with
the same settings (the real command against the fake judge, both ways); the assignment of
rows to shards is a partition, the same everywhere; and merge refuses, in one line and
without writing anything, every set of folders that does not make one whole run.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rubric_judge.cli import main
from pytest_rubric_judge.cli.progress import Progress
from pytest_rubric_judge.shards import (
    MANIFEST,
    Shard,
    ShardError,
    parse_shard,
    shard_for,
    shard_from_environment,
    shard_of_record,
)
from pytest_rubric_judge.testing import FakeJudge

TOPICS = ["dinosaurs", "Notre Dame", "France", "tides", "photosynthesis", "binary search"]


def _rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(14):
        topic = TOPICS[i % len(TOPICS)]  # several rows share a prompt (and its rubric)
        row: dict[str, Any] = {
            "id": f"r{i}",
            "prompt": f"Tell me about {topic}.",
            "response_A": f"{topic}." * (1 + i % 2),
            # (no two rows alike: two identical comparisons in flight at once are both
            # asked, so the number of requests would depend on timing)
            "response_B": f"A detailed answer about {topic} ({i}), with facts and examples. "
            * (1 + i % 3),
        }
        if i % 5 == 0:
            row["reference"] = f"A reference answer about {topic}."
        rows.append(row)
    return rows


def _write_data(path: Path, rows: list[dict[str, Any]] | None = None) -> Path:
    lines = [json.dumps(row) for row in (rows if rows is not None else _rows())]
    lines[3:3] = ["{not json", ""]  # an invalid row, and a blank line that is no row
    lines.append(json.dumps({"prompt": "Tell me about tides.", "response_A": "x"}))  # invalid
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _judge_flags(fake: FakeJudge, cache: Path) -> list[str]:
    return [
        *("--judge-url", fake.url, "--judge-model", fake.model),
        *("--judge-cache-dir", str(cache), "--judge-max-retries", "0"),
    ]


def _compare(data: Path | str, out: Path, flags: list[str], *extra: str) -> int:
    return main(["compare", str(data), "--out", str(out), "--progress", "never", *flags, *extra])


#: A shard's own dashboard, report and Parquet file are not what a merge reads.
SHARD_ONLY = ("--no-plot", "--no-html", "--no-parquet")


def _shards(data: Path, root: Path, flags: list[str], n: int = 3, *extra: str) -> list[Path]:
    folders = []
    for k in range(1, n + 1):
        folder = root / f"shard-{k}"
        assert _compare(data, folder, flags, "--shard", f"{k}/{n}", *SHARD_ONLY, *extra) == 0
        folders.append(folder)
    return folders


def _merge(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["merge", *(str(arg) for arg in args)])
    return status, capsys.readouterr().err


def _metrics_without_run(folder: Path) -> str:
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    metrics.pop("run")
    return json.dumps(metrics, indent=2)


def _records_without_latency(folder: Path) -> list[dict[str, Any]]:
    records = []
    for line in (folder / "details.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for order in ("forward", "reversed"):
            if record[order]:
                record[order].pop("latency_s")
        records.append(record)
    return records


def _snapshot(*folders: Path) -> dict[str, str]:
    """Every file under the folders, by path, with a hash of its bytes."""
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return _write_data(tmp_path / "data.jsonl")


@pytest.fixture
def sharded(
    fake_judge: FakeJudge, tmp_path: Path, data: Path
) -> tuple[list[Path], list[str], FakeJudge]:
    """Three finished shards of `data`, judged with their own cache."""
    flags = _judge_flags(fake_judge, tmp_path / "shard-cache")
    return _shards(data, tmp_path / "shards", flags), flags, fake_judge


# -- merged equals single ---------------------------------------------------------------


def test_three_shards_merge_into_the_single_run(
    fake_judge: FakeJudge, tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    single = tmp_path / "single"
    assert _compare(data, single, _judge_flags(fake_judge, tmp_path / "c1"), "--no-plot") == 0
    asked_single = fake_judge.request_count
    folders = _shards(data, tmp_path / "shards", _judge_flags(fake_judge, tmp_path / "c2"))
    # Rows go to shards by prompt: no rubric is asked for twice, so the shards together
    # ask the judge exactly what the single run asked.
    assert fake_judge.request_count == 2 * asked_single
    sizes = [json.loads((f / MANIFEST).read_text())["rows"] for f in folders]
    assert sum(sizes) == 16 and all(sizes)
    merged = tmp_path / "merged"
    status, err = _merge(capsys, *folders, "--out", merged, "--no-plot")
    assert status == 0, err
    assert _metrics_without_run(merged) == _metrics_without_run(single)
    assert _records_without_latency(merged) == _records_without_latency(single)
    metrics = json.loads((merged / "metrics.json").read_text())
    assert metrics["rows"] == 16 and metrics["invalid_rows"] == 2 and metrics["status"] == "ok"
    assert metrics["intervals"]["bootstrap"]["resamples"] == 2000
    run = metrics["run"]
    single_run = json.loads((single / "metrics.json").read_text())["run"]
    assert run["judge_requests"] == single_run["judge_requests"]
    assert run["shards"] == 3 and run["merged_from"] == [str(f) for f in folders]
    assert (merged / "report.html").is_file() and not (merged / MANIFEST).exists()


def test_a_cached_run_merges_to_the_same_bytes(
    fake_judge: FakeJudge, tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Answers from one cache carry their stored latency: the outputs are deterministic,
    and the merge gives the single run's bytes."""
    flags = _judge_flags(fake_judge, tmp_path / "cache")
    assert _compare(data, tmp_path / "warm", flags, *SHARD_ONLY) == 0
    single = tmp_path / "single"
    assert _compare(data, single, flags, "--resamples", "300", "--seed", "7") == 0
    folders = _shards(data, tmp_path / "shards", flags, 3, "--resamples", "300", "--seed", "7")
    status, err = _merge(capsys, *folders)  # --out defaults to 'merged' beside them
    assert status == 0, err
    merged = tmp_path / "shards" / "merged"
    assert (merged / "details.jsonl").read_bytes() == (single / "details.jsonl").read_bytes()
    assert _metrics_without_run(merged) == _metrics_without_run(single)
    for name in ("details.parquet", "dashboard.png"):
        if (single / name).exists():
            assert (merged / name).read_bytes() == (single / name).read_bytes(), name
    bootstrap = json.loads((merged / "metrics.json").read_text())["intervals"]["bootstrap"]
    assert (bootstrap["resamples"], bootstrap["seed"]) == (300, 7)


def test_an_empty_shard_and_stdin_input(
    fake_judge: FakeJudge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One prompt, four shards: three hold no row, exit 0, and still merge. A shard read
    from stdin is of the same data as one read from the file."""
    rows = [
        {"prompt": "One prompt?", "response_A": "no", "response_B": f"yes, {i} reasons"}
        for i in range(3)
    ]
    data = tmp_path / "one.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    flags = _judge_flags(fake_judge, tmp_path / "cache")
    owner = shard_for("One prompt?", None, 4)
    folders = []
    for k in range(1, 5):
        folder = tmp_path / f"s{k}"
        monkeypatch.setattr(sys, "stdin", io.StringIO(data.read_text(encoding="utf-8")))
        source = "-" if k % 2 else data
        capsys.readouterr()
        assert _compare(source, folder, flags, "--shard", f"{k}/4", *SHARD_ONLY) == 0
        if k != owner:
            assert "holds none of the 3 rows" in capsys.readouterr().err
        folders.append(folder)
    shas = {json.loads((f / MANIFEST).read_text())["data"]["sha256"] for f in folders}
    assert shas == {hashlib.sha256(data.read_bytes()).hexdigest()}
    status, err = _merge(capsys, *folders, "--out", tmp_path / "merged", "--no-plot")
    assert status == 0, err
    single = tmp_path / "single"
    assert _compare(data, single, flags, "--no-plot") == 0
    assert _metrics_without_run(tmp_path / "merged") == _metrics_without_run(single)


# -- the assignment rule ---------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    prompt=st.text(max_size=40),
    reference=st.none() | st.text(max_size=20),
    index=st.integers(min_value=0, max_value=10**9),
    count=st.integers(min_value=1, max_value=64),
)
def test_every_row_is_in_exactly_one_shard(
    prompt: str, reference: str | None, index: int, count: int
) -> None:
    owner = shard_for(prompt, reference, count)
    assert 1 <= owner <= count
    assert shard_for(prompt, reference, count) == owner  # deterministic
    holders = [k for k in range(1, count + 1) if Shard(k, count).holds(prompt, reference, index)]
    assert holders == [owner]
    invalid = [k for k in range(1, count + 1) if Shard(k, count).holds(None, None, index)]
    assert invalid == [index % count + 1]
    record = {"index": index, "status": "ok", "prompt": prompt, "reference": reference}
    assert shard_of_record(record, count) == owner  # merge reads it back the same way
    assert shard_of_record({**record, "status": "invalid"}, count) == index % count + 1


@settings(max_examples=100, deadline=None)
@given(count=st.integers(min_value=1, max_value=50), index=st.integers(min_value=1, max_value=50))
def test_k_of_n_parses_and_out_of_range_is_refused(count: int, index: int) -> None:
    if index <= count:
        assert parse_shard(f"{index}/{count}") == Shard(index, count)
        assert str(Shard(index, count)) == f"{index}/{count}"
    else:
        with pytest.raises(ShardError, match="K is above N"):
            parse_shard(f"{index}/{count}")


def test_the_rule_is_stable_and_balanced() -> None:
    # Pinned: a change here moves rows between shards (bump shards.RULE if it is meant).
    assert shard_for("What is the capital of France?", None, 8) == 1
    assert shard_for("What is the capital of France?", "Paris", 8) == 4
    assert shard_for("", None, 1000) == 887
    assert 1 <= shard_for("\ud800 a lone surrogate, as json.loads may give", None, 3) <= 3
    sizes = Counter(shard_for(f"prompt {i}", None, 4) for i in range(4000))
    assert set(sizes) == {1, 2, 3, 4} and max(sizes.values()) - min(sizes.values()) < 200


@pytest.mark.parametrize(
    ("value", "fix"),
    [
        ("0/3", "K counts from 1: the first of 3 shards is 1/3"),
        ("4/3", "K is above N: the shards of 3 are 1/3 to 3/3"),
        ("1/0", "must be 1 or more, e.g. 1/3"),
        ("x", "expected K/N, shard K of N counting from 1, such as 1/3"),
        ("1/3/4", "expected K/N"),
        ("-1/3", "expected K/N"),
        ("", "expected K/N"),
        ("auto", "SLURM_ARRAY_TASK_ID is not set"),
    ],
)
def test_a_bad_shard_is_a_one_line_usage_error(
    value: str,
    fix: str,
    tmp_path: Path,
    data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "out"
    assert main(["compare", str(data), "--out", str(out), f"--shard={value}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rubric-judge: error: --shard")
    assert fix in err
    assert not out.exists()  # refused before anything is written


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ID": "1", "MIN": "1", "MAX": "3", "COUNT": "3"}, Shard(1, 3)),
        ({"ID": "0", "MIN": "0", "MAX": "7", "COUNT": "8", "STEP": "1"}, Shard(1, 8)),
        ({"ID": "7", "MIN": "0", "MAX": "7", "COUNT": "8"}, Shard(8, 8)),
        ({"ID": "12", "MIN": "10", "COUNT": "4"}, Shard(3, 4)),
    ],
)
def test_auto_reads_a_slurm_array_task(env: dict[str, str], expected: Shard) -> None:
    environ = {f"SLURM_ARRAY_TASK_{name}": value for name, value in env.items()}
    assert shard_from_environment(environ) == expected
    assert parse_shard("auto", environ) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ID": "3", "MIN": "1", "MAX": "5", "COUNT": "3"}, "not a plain range"),  # 1,3,5
        ({"ID": "3", "MIN": "1", "MAX": "5", "COUNT": "3", "STEP": "2"}, "not a plain range"),
        ({"ID": "x", "MIN": "1", "COUNT": "3"}, "not a number"),
        ({"ID": "2", "COUNT": "3"}, "SLURM_ARRAY_TASK_MIN is None"),
    ],
)
def test_auto_refuses_an_array_with_gaps(env: dict[str, str], message: str) -> None:
    environ = {f"SLURM_ARRAY_TASK_{name}": value for name, value in env.items()}
    with pytest.raises(ShardError, match=message):
        shard_from_environment(environ)


def test_auto_through_the_command(
    fake_judge: FakeJudge,
    tmp_path: Path,
    data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = _judge_flags(fake_judge, tmp_path / "cache")
    folders = []
    for task in (0, 1):  # sbatch --array=0-1
        for name, value in (("ID", task), ("MIN", 0), ("MAX", 1), ("COUNT", 2)):
            monkeypatch.setenv(f"SLURM_ARRAY_TASK_{name}", str(value))
        folder = tmp_path / f"task-{task}"
        assert _compare(data, folder, flags, "--shard", "auto", *SHARD_ONLY) == 0
        assert json.loads((folder / MANIFEST).read_text())["shard"] == task + 1
        folders.append(folder)
    assert _merge(capsys, *folders, *SHARD_ONLY)[0] == 0


# -- merge refuses what is not one whole run --------------------------------------------


def _refused(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    status, err = _merge(capsys, *args)
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("rubric-judge: error: "), err
    return err


def test_merge_refuses_missing_and_repeated_shards(
    sharded: tuple[list[Path], list[str], FakeJudge],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (s1, s2, s3), _, _ = sharded
    before = _snapshot(s1, s2, s3)
    out = tmp_path / "merged"
    assert "missing shard 2 of 3 (given: 1, 3)" in _refused(capsys, s1, s3, "--out", out)
    assert "missing shards 1, 3 of 3" in _refused(capsys, s2, "--out", out)
    assert f"{s2} is given twice" in _refused(capsys, s1, s2, s2, s3, "--out", out)
    copy = tmp_path / "copy-of-1"
    shutil.copytree(s1, copy)
    err = _refused(capsys, s1, copy, s2, s3, "--out", out)
    assert f"shard 1/3 is given twice: {s1} and {copy}" in err
    assert "no shard.json" in _refused(capsys, s1, s2, s3, tmp_path, "--out", out)
    assert not out.exists() and _snapshot(s1, s2, s3) == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no staging left


@pytest.mark.parametrize(
    ("extra", "what"),
    [
        (["--judge-temperature", "0.7"], "judge temperature is 0.0 in the first, 0.7"),
        (["--judge-samples", "3"], "judge samples is 1 in the first, 3"),
        (["--seed", "5"], "--seed is 0 in the first, 5"),
        (["--judge-model", "other-judge"], "judge model is 'fake-judge' in the first"),
    ],
)
def test_merge_refuses_shards_of_different_settings(
    sharded: tuple[list[Path], list[str], FakeJudge],
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    what: str,
) -> None:
    (s1, _, s3), flags, _ = sharded
    other = tmp_path / "other-2"
    assert _compare(data, other, flags, "--shard", "2/3", *SHARD_ONLY, *extra) == 0
    err = _refused(capsys, s1, other, s3)
    assert "are shards of different runs" in err and what in err
    assert str(other) in err


def test_merge_refuses_other_data_and_another_count(
    sharded: tuple[list[Path], list[str], FakeJudge],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (s1, _, s3), flags, _ = sharded
    rows = _rows()
    rows[-1]["response_B"] = "changed"
    other_data = _write_data(tmp_path / "other.jsonl", rows)
    other = tmp_path / "other-data"
    assert _compare(other_data, other, flags, "--shard", "2/3", *SHARD_ONLY) == 0
    assert "data SHA-256 is" in _refused(capsys, s1, other, s3)
    four = tmp_path / "of-four"
    assert _compare(tmp_path / "data.jsonl", four, flags, "--shard", "2/4", *SHARD_ONLY) == 0
    assert "number of shards is 3 in the first, 4" in _refused(capsys, s1, four, s3)


def test_merge_refuses_an_interrupted_shard(
    fake_judge: FakeJudge,
    tmp_path: Path,
    data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = _judge_flags(fake_judge, tmp_path / "cache")
    s1, s2, s3 = (tmp_path / f"s{k}" for k in (1, 2, 3))
    assert _compare(data, s1, flags, "--shard", "1/3", *SHARD_ONLY) == 0
    assert _compare(data, s3, flags, "--shard", "3/3", *SHARD_ONLY) == 0

    def interrupt(self: Progress, **_: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the first row

    with monkeypatch.context() as patch:
        patch.setattr(Progress, "update", interrupt)
        assert _compare(data, s2, flags, "--shard", "2/3", *SHARD_ONLY) == 130
    manifest = json.loads((s2 / MANIFEST).read_text())
    assert manifest["complete"] is False and manifest["rows"] is None
    err = _refused(capsys, s1, s2, s3)
    assert f"incomplete shard (interrupted, killed or still running): {s2} (shard 2/3)" in err
    assert "run its compare command again" in err
    assert _compare(data, s2, flags, "--shard", "2/3", *SHARD_ONLY) == 0  # resumed in place
    assert _merge(capsys, s1, s2, s3, *SHARD_ONLY)[0] == 0


def _rewrite(folder: Path, records: list[bytes], rows: int) -> None:
    (folder / "details.jsonl").write_bytes(b"".join(records))
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["rows"] = rows
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_merge_refuses_overlapping_missing_and_moved_rows(
    sharded: tuple[list[Path], list[str], FakeJudge],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (s1, s2, s3), _, _ = sharded
    out = tmp_path / "merged"
    lines = {f: (f / "details.jsonl").read_bytes().splitlines(keepends=True) for f in (s1, s2, s3)}
    # A row of shard 1 also in shard 3 (the copies in row order).
    first = lines[s1][0]
    index = json.loads(first)["index"]
    both = sorted([*lines[s3], first], key=lambda line: json.loads(line)["index"])
    _rewrite(s3, both, len(both))
    err = _refused(capsys, s1, s2, s3, "--out", out)
    assert f"row {index}" in err and ("two shards" in err or "overlap" in err)
    # A row of shard 3 dropped: a gap.
    _rewrite(s3, lines[s3][1:], len(lines[s3]) - 1)
    gap = json.loads(lines[s3][0])["index"]
    assert f"row {gap} is in no shard" in _refused(capsys, s1, s2, s3, "--out", out)
    # The manifest and the rows disagree: the folder was changed.
    _rewrite(s3, lines[s3], len(lines[s3]) + 1)
    assert "the folder is damaged or was changed" in _refused(capsys, s1, s2, s3, "--out", out)
    _rewrite(s3, lines[s3], len(lines[s3]))
    assert not out.exists()
    assert _merge(capsys, s1, s2, s3, "--out", out, *SHARD_ONLY)[0] == 0


def test_merge_never_writes_into_a_shard_or_over_other_files(
    sharded: tuple[list[Path], list[str], FakeJudge],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (s1, s2, s3), _, _ = sharded
    before = _snapshot(s1, s2, s3)
    assert "never writes into a shard's folder" in _refused(capsys, s1, s2, s3, "--out", s2)
    err = _refused(capsys, s1, s2, s3, "--out", s1 / "merged")
    assert "never writes into a shard's folder" in err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert "not an earlier merge's" in _refused(capsys, s1, s2, s3, "--out", busy)
    assert (busy / "notes.txt").read_text() == "mine"
    out = tmp_path / "merged"
    assert _merge(capsys, s1, s2, s3, "--out", out, *SHARD_ONLY)[0] == 0
    first = (out / "details.jsonl").read_bytes()
    assert _merge(capsys, s1, s2, s3, "--out", out, "--no-plot", "--no-html")[0] == 0
    assert (out / "details.jsonl").read_bytes() == first  # an earlier merge is replaced whole
    assert not (out / "report.html").exists()
    (out / "notes.txt").write_text("mine")  # no longer only a merge's outputs: kept
    assert "not an earlier merge's outputs" in _refused(capsys, s1, s2, s3, "--out", out)
    assert (out / "notes.txt").read_text() == "mine"
    err = _refused(capsys, s1, s2, s3, "--out", s1.parent)  # the folder around the shards
    assert "in or around the shard folder" in err
    assert _snapshot(s1, s2, s3) == before


def test_compare_keeps_shard_folders_apart(
    sharded: tuple[list[Path], list[str], FakeJudge],
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (s1, _, _), flags, _ = sharded
    before = _snapshot(s1)
    capsys.readouterr()
    assert _compare(data, s1, flags, "--shard", "2/3") == 2
    assert "holds shard 1/3, not 2/3" in capsys.readouterr().err
    assert _compare(data, s1, flags) == 2
    assert "is a shard's folder" in capsys.readouterr().err
    single = tmp_path / "single"
    assert _compare(data, single, flags, "--no-plot") == 0
    assert _compare(data, single, flags, "--shard", "1/3") == 2
    assert "holds the outputs of an unsharded run" in capsys.readouterr().err
    assert _snapshot(s1) == before
