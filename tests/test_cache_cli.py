"""`rubric-judge cache`: export, import, stats, prune, clear, and an offline replay in CI."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from cache_answers import pass_entry, rubric_entry

from pytest_rubric_judge.cache import CacheEntry, JudgeCache
from pytest_rubric_judge.cli import main
from pytest_rubric_judge.cli.cache import duration
from pytest_rubric_judge.settings import DEFAULT_CACHE_DIR
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

pytest_plugins = ["pytester"]


def entry(index: int, *, created_at: float | None = None, kind: str = "pass") -> CacheEntry:
    made = rubric_entry(index) if kind == "rubric" else pass_entry(index)
    return made if created_at is None else made.model_copy(update={"created_at": created_at})


def fill(directory: Path, entries: list[CacheEntry]) -> None:
    with JudgeCache(directory) as cache:
        for item in entries:
            cache.put(item)


def test_export_is_sorted_canonical_and_deterministic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = [entry(i) for i in range(5)] + [entry(9, kind="rubric")]
    fill(tmp_path / "one", entries)
    fill(tmp_path / "two", list(reversed(entries)))  # another insertion order
    for name in ("one", "two"):
        assert (
            main(
                [
                    "cache",
                    "export",
                    str(tmp_path / f"{name}.jsonl"),
                    f"--judge-cache-dir={tmp_path / name}",
                ]
            )
            == 0
        )
    first = (tmp_path / "one.jsonl").read_bytes()
    assert first == (tmp_path / "two.jsonl").read_bytes()
    lines = first.decode().splitlines()
    assert len(lines) == 6
    keys = [json.loads(line)["key"] for line in lines]
    assert keys == sorted(keys)
    assert all(
        json.dumps(json.loads(line), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        == line
        for line in lines
    )
    assert "exported 6 entries" in capsys.readouterr().err


def test_import_round_trips_and_reports_what_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(tmp_path / "src", [entry(i) for i in range(3)])
    dump = tmp_path / "verdicts.jsonl"
    main(["cache", "export", str(dump), f"--judge-cache-dir={tmp_path / 'src'}"])
    target = tmp_path / "dst"
    assert main(["cache", "import", str(dump), f"--judge-cache-dir={target}"]) == 0
    assert "3 new, 0 replaced, 0 already there" in capsys.readouterr().err
    assert main(["cache", "import", str(dump), f"--judge-cache-dir={target}"]) == 0
    assert "0 new, 0 replaced, 3 already there" in capsys.readouterr().err
    again = tmp_path / "again.jsonl"
    main(["cache", "export", str(again), f"--judge-cache-dir={target}"])
    assert again.read_bytes() == dump.read_bytes()
    with JudgeCache(target, "replay") as cache:
        assert cache.get(entry(1).key) == entry(1).model_copy(
            update={"created_at": cache.get(entry(1).key).created_at}  # type: ignore[union-attr]
        )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "verdicts.jsonl:2: not a cache entry"),
        ('{"key": "00"}', "verdicts.jsonl:2: not a cache entry (key:"),
    ],
)
def test_a_bad_line_imports_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    dump = tmp_path / "verdicts.jsonl"
    good = entry(0).model_dump_json()
    dump.write_text(f"{good}\n{line}\n")
    assert main(["cache", "import", str(dump), f"--judge-cache-dir={tmp_path / 'c'}"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_an_edited_entry_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(entry(0).model_dump_json())
    data["fields"]["prompt"] = "changed by hand"
    dump = tmp_path / "verdicts.jsonl"
    dump.write_text(json.dumps(data) + "\n")
    assert main(["cache", "import", str(dump), f"--judge-cache-dir={tmp_path / 'c'}"]) == 2
    assert (
        "verdicts.jsonl:1: the entry's key is not the hash of its fields" in capsys.readouterr().err
    )


def _export_line(item: CacheEntry, **changes: object) -> str:
    data = json.loads(item.model_dump_json())
    for dotted, value in changes.items():
        target = data
        parts = dotted.split("__")
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return json.dumps(data) + "\n"


REFUSED = {
    "empty answer": ({"parsed": {}}, "differs from what its raw text reads as"),
    "out of range": ({"parsed__scores__0__score_a": 7}, "score_a"),
    "missing criterion": ({"parsed__scores": []}, "scores"),
    "disagrees with raw": ({"parsed__preference": "A>B"}, "preference"),
    "raw unreadable": ({"raw": "no answer here"}, "raw text"),
}


def test_import_refuses_entries_whose_answer_does_not_read_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = entry(50)
    fill(tmp_path / "c", [existing])
    lines = [entry(0).model_dump_json() + "\n"]
    lines += [
        _export_line(entry(i + 1), **change) for i, (change, _) in enumerate(REFUSED.values())
    ]
    lines.append(entry(9).model_dump_json() + "\n")
    dump = tmp_path / "verdicts.jsonl"
    dump.write_text("".join(lines))
    assert main(["cache", "import", str(dump), f"--judge-cache-dir={tmp_path / 'c'}"]) == 2
    err = capsys.readouterr().err
    assert (
        f"{len(REFUSED)} of {len(lines)} entries refused" in err and "nothing was imported" in err
    )
    for number, (_, reason) in enumerate(REFUSED.values(), start=2):
        line = next(text for text in err.splitlines() if f"verdicts.jsonl:{number}:" in text)
        assert reason in line, (line, reason)
    with JudgeCache(tmp_path / "c", "replay") as cache:  # nothing imported, nothing lost
        assert list(cache.entries()) == [existing]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"key": "\xff\xfe"}\n', "is not UTF-8 text"),
        (b"SQLite format 3\x00" + b"\x00" * 200, "is an SQLite database"),
        (b"[1, 2, 3]\n", "is not a cache export"),
        (b"criteria:\n  - name: x\n", "is not a cache export"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "is not UTF-8 text"),
    ],
    ids=["latin1", "sqlite", "json_array", "yaml", "png"],
)
def test_a_file_that_is_not_an_export_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    dump = tmp_path / "verdicts.jsonl"
    dump.write_bytes(content)
    assert main(["cache", "import", str(dump), f"--judge-cache-dir={tmp_path / 'c'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(dump) in err and message in err and "rubric-judge cache export" in err
    assert not (tmp_path / "c").exists()


def test_import_of_a_missing_file_or_a_folder_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in (tmp_path / "missing.jsonl", tmp_path):
        assert main(["cache", "import", str(path), f"--judge-cache-dir={tmp_path / 'c'}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err


def test_import_into_a_damaged_cache_reports_and_keeps_going(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "cache.db").write_bytes(b"this is not an sqlite database\n" * 200)
    dump = tmp_path / "verdicts.jsonl"
    dump.write_text(entry(1).model_dump_json() + "\n")
    assert main(["cache", "import", str(dump), f"--judge-cache-dir={directory}"]) == 0
    assert "moved aside" in capsys.readouterr().err
    with JudgeCache(directory, "replay") as cache:
        assert list(cache.entries()) == [entry(1)]


def test_stats_prune_and_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    old = [entry(i, created_at=now - 40 * 86400) for i in range(2)]
    fresh = [entry(i) for i in range(2, 5)] + [entry(7, kind="rubric")]
    cache_dir = f"--judge-cache-dir={tmp_path / 'c'}"
    fill(tmp_path / "c", old + fresh)
    capsys.readouterr()
    assert main(["cache", "stats", "--json", cache_dir]) == 0
    numbers = json.loads(capsys.readouterr().out)
    assert numbers["entries"] == 6 and numbers["kinds"] == {"pass": 5, "rubric": 1}
    assert numbers["models"] == {"judge-model": 6} and numbers["prompt_tokens"] == 60
    assert numbers["bytes_on_disk"] > 0
    assert main(["cache", "stats", cache_dir]) == 0
    assert "entries:      6 (5 pass, 1 rubric)" in capsys.readouterr().out

    assert main(["cache", "prune", "--older-than", "30d", cache_dir]) == 0
    assert "removed 2 entries older than 30 days; 4 remain" in capsys.readouterr().err
    with JudgeCache(tmp_path / "c", "replay") as cache:
        assert sorted(cache.keys()) == sorted(e.key for e in fresh)

    assert main(["cache", "clear", "--yes", cache_dir]) == 0
    assert "removed 4 entries" in capsys.readouterr().err
    assert len(JudgeCache(tmp_path / "c", "replay")) == 0


class _Terminal(io.StringIO):
    """Standard input typed at a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("answer", "cleared"),
    [("y\n", True), ("yes\n", True), ("\n", False), ("n\n", False), ("", False)],
)
def test_clear_asks_on_a_terminal(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answer: str,
    cleared: bool,
) -> None:
    fill(tmp_path / "c", [entry(0), entry(1)])
    monkeypatch.setattr("sys.stdin", _Terminal(answer))
    status = main(["cache", "clear", f"--judge-cache-dir={tmp_path / 'c'}"])
    err = capsys.readouterr().err
    assert f"remove all 2 entries from {tmp_path / 'c'}? [y/N]" in err
    assert len(JudgeCache(tmp_path / "c", "replay")) == (0 if cleared else 2)
    assert status == (0 if cleared else 1)
    if not cleared:
        assert "nothing removed" in err


def test_clear_without_a_terminal_needs_yes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(tmp_path / "c", [entry(0)])
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped: not a confirmation
    assert main(["cache", "clear", f"--judge-cache-dir={tmp_path / 'c'}"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert len(JudgeCache(tmp_path / "c", "replay")) == 1


@pytest.mark.parametrize(
    "action",
    [
        ["stats"],
        ["stats", "--json"],
        ["export", "-"],
        ["prune", "--older-than", "1d"],
        ["clear", "--yes"],
    ],
)
def test_a_missing_cache_folder_is_said_to_be_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], action: list[str]
) -> None:
    missing = tmp_path / "no-such-cache"
    assert main(["cache", *action, f"--judge-cache-dir={missing}"]) == 2
    captured = capsys.readouterr()
    assert f"{missing} does not exist" in captured.err
    assert "entries" not in captured.out
    assert not missing.exists()  # inspecting never creates a cache


def test_durations() -> None:
    assert duration("30d") == 30 * 86400 and duration("12h") == 43200 and duration("2w") == 1209600
    assert duration("1.5m") == 90
    with pytest.raises(Exception, match="not a duration"):
        duration("30 days")


def test_commands_default_to_the_plugins_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "sub").mkdir()
    fill(tmp_path / DEFAULT_CACHE_DIR, [entry(0)])
    monkeypatch.chdir(tmp_path / "sub")
    assert main(["cache", "stats", "--json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    assert numbers["directory"] == str(tmp_path / DEFAULT_CACHE_DIR) and numbers["entries"] == 1
    monkeypatch.setenv("RUBRIC_JUDGE_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert main(["cache", "stats", "--json"]) == 2
    assert f"{tmp_path / 'elsewhere'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere").exists()  # inspecting never creates a cache


PROMPT_SET = """
import pytest
from pytest_rubric_judge import assert_preferred

@pytest.mark.parametrize("topic", ["rivers", "mountains", "lakes"])
def test_topic(judge, topic):
    assert_preferred(f"All about {topic}. GOOD", "a plain answer", prompt=f"Tell me about {topic}.")
"""


def test_exported_verdicts_replay_offline_with_zero_requests(
    pytester: pytest.Pytester, fake_judge: FakeJudge, tmp_path: Path
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    pytester.makepyfile(test_set=PROMPT_SET)
    recorded, replayed = tmp_path / "recorded", tmp_path / "ci-cache"
    model = f"--judge-model={fake_judge.model}"
    result = pytester.runpytest(
        f"--judge-url={fake_judge.url}", model, f"--judge-cache-dir={recorded}"
    )
    result.assert_outcomes(passed=3)
    assert fake_judge.request_count == 9
    dump = pytester.path / "verdicts.jsonl"
    assert main(["cache", "export", str(dump), f"--judge-cache-dir={recorded}"]) == 0
    assert len(dump.read_text().splitlines()) == 9
    assert main(["cache", "import", str(dump), f"--judge-cache-dir={replayed}"]) == 0

    # With the judge reachable: replay must not ask it anything.
    replay = [model, f"--judge-cache-dir={replayed}", "--judge-cache=replay"]
    result = pytester.runpytest(f"--judge-url={fake_judge.url}", *replay)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*0 judge requests (0 retries, 0 repairs), 9 cache hits*"])
    assert fake_judge.request_count == 9
    # With no judge configured at all (a CPU-only CI job): the same verdicts.
    result = pytester.runpytest(*replay, "-p", "no:xdist")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*0 judge requests*9 cache hits*"])
    assert fake_judge.request_count == 9
