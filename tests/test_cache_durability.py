"""Nothing lost: the cache under concurrent writer processes, a killed writer, a damaged file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cache_answers import rubric_entry

from pytest_rubric_judge.cache import (
    CacheCorruptError,
    CacheEntry,
    JudgeCache,
    check_database,
)
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

pytest_plugins = ["pytester"]

PROMPTS = 8
WRITERS = 8

WRITER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from pytest_rubric_judge.judge import Judge

    url, model, cache_dir, go, index = sys.argv[1:6]
    prompts = [f"Question {{i}}?" for i in range({prompts})]
    start = int(index) % len(prompts)
    order = prompts[start:] + prompts[:start]   # each writer starts on another prompt
    while not Path(go).exists():
        time.sleep(0.005)
    out = {{}}
    with Judge(url, model, cache_dir=cache_dir, max_retries=0, timeout=20) as judge:
        for prompt in order:
            verdict = judge.compare(prompt, "a plain answer", "a GOOD answer")
            out[prompt] = [verdict.preference, verdict.weighted_a, verdict.weighted_b]
    print(json.dumps(out, sort_keys=True))
    """
).format(prompts=PROMPTS)


def entry(index: int, size: int = 10) -> CacheEntry:
    """A stored rubric call whose raw answer is about `size` characters longer than usual."""
    return rubric_entry(index, pad=size)


TESTS = str(Path(__file__).parent)


def test_eight_writer_processes_on_the_same_keys(tmp_path: Path) -> None:
    cache_dir, go = tmp_path / "cache", tmp_path / "go"
    with FakeJudge(ByResponsePolicy("GOOD")) as fake:
        script = tmp_path / "writer.py"
        script.write_text(WRITER)
        writers = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    fake.url,
                    fake.model,
                    str(cache_dir),
                    str(go),
                    str(i),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(WRITERS)
        ]
        time.sleep(0.5)
        go.touch()  # all start at once, each on its own prompt
        outputs = []
        for writer in writers:
            out, err = writer.communicate(timeout=60)
            assert writer.returncode == 0, err
            outputs.append(json.loads(out))
        requests = fake.request_count

        unique = PROMPTS * 3  # a rubric and two passes per prompt
        assert all(output == outputs[0] for output in outputs)  # every writer saw the same verdicts
        assert all(value[0] == "B>A" for value in outputs[0].values())
        # Without the shared cache 8 writers would send 8 x 24 requests; a duplicate only
        # happens when two writers reach the same key before either stored it.
        assert unique <= requests <= 2 * unique, requests

        with JudgeCache(cache_dir, "replay") as cache:
            entries = list(cache.entries())
            assert len(entries) == unique and cache.corrupt == 0
            assert all(item.is_consistent() for item in entries)
        assert check_database(cache_dir / "cache.db") is None
        # Replaying the whole set needs no judge.
        with Judge(None, fake.model, cache_dir=cache_dir, cache_mode="replay") as judge:
            verdict = judge.compare("Question 3?", "a plain answer", "a GOOD answer")
            assert [verdict.preference, verdict.weighted_a, verdict.weighted_b] == outputs[0][
                "Question 3?"
            ]
        assert fake.request_count == requests


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from cache_answers import rubric_entry
    from pytest_rubric_judge.cache import JudgeCache

    cache = JudgeCache(sys.argv[1])
    index = 0
    while True:
        cache.put(rubric_entry(index, pad=90_000))
        index += 1
        print(index, flush=True)
    """
)


def test_a_writer_killed_mid_run_leaves_a_cache_that_opens_and_serves_whole_entries(
    tmp_path: Path,
) -> None:
    cache_dir = tmp_path / "cache"
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(cache_dir), TESTS],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    try:
        written = 0
        while written < 25:
            line = writer.stdout.readline()
            assert line, "the writer died on its own"
            written = int(line)
    finally:
        os.kill(writer.pid, signal.SIGKILL)  # in the middle of its next write
        writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL

    assert check_database(cache_dir / "cache.db") is None
    with JudgeCache(cache_dir, "replay") as cache:
        keys = list(cache.keys())
        assert len(keys) >= written
        for key in keys:
            found = cache.get(key)
            assert found is not None and len(found.raw) > 90_000  # whole, and it reads back
        assert cache.corrupt == 0
    with JudgeCache(cache_dir) as cache:  # and it takes new writes
        cache.put(entry(10_000))
        assert cache.get(entry(10_000).key) is not None


def test_a_torn_entry_is_never_served(tmp_path: Path) -> None:
    with JudgeCache(tmp_path) as cache:
        cache.put(entry(1, size=5000))
    with sqlite3.connect(tmp_path / "cache.db") as db:  # as if half the value reached disk
        db.execute("UPDATE Cache SET value = substr(value, 1, 2000)")
    with JudgeCache(tmp_path) as cache:
        assert cache.get(entry(1).key) is None
        assert cache.corrupt == 1


def _damage(directory: Path) -> Path:
    with JudgeCache(directory) as cache:
        for index in range(50):
            cache.put(entry(index, size=3000))
    db = directory / "cache.db"
    with db.open("r+b") as handle:  # keep the header, wreck the pages after it
        handle.seek(4096)
        handle.write(b"\x00garbage\xff" * 8000)
    assert check_database(db) is not None
    return db


def test_a_damaged_file_in_replay_mode_names_the_file_and_the_fix(tmp_path: Path) -> None:
    db = _damage(tmp_path)
    with pytest.raises(CacheCorruptError) as info:
        JudgeCache(tmp_path, "replay").get(entry(0).key)
    message = str(info.value)
    assert str(db) in message and info.value.file == db
    assert "delete it" in message and "rubric-judge cache import" in message
    assert db.exists()  # replay never moves anything


@pytest.mark.parametrize("mode", ["rw", "refresh"])
def test_a_damaged_file_is_moved_aside_and_rebuilt_once(tmp_path: Path, mode: str) -> None:
    db = _damage(tmp_path)
    cache = JudgeCache(tmp_path, mode)  # type: ignore[arg-type]
    cache.put(entry(1))
    (line,) = cache.recovered
    assert (
        f"judge cache file {db} was damaged" in line and "moved aside to cache.db.corrupt-" in line
    )
    cache.close()
    (aside,) = tmp_path.glob("cache.db.corrupt-*[0-9]")
    assert check_database(aside) is not None  # the damaged file is kept for a post-mortem
    again = JudgeCache(tmp_path)  # the next run opens cleanly: no crash loop
    assert again.get(entry(1).key) is not None  # what was written after the rebuild
    assert again.recovered == []
    again.close()


RECOVERING_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[4])
    from cache_answers import rubric_entry
    from pytest_rubric_judge.cache import JudgeCache

    directory, go, index = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    while not go.exists():
        time.sleep(0.005)
    cache = JudgeCache(directory)
    cache.put(rubric_entry(1000 + index))
    print(len(cache.recovered))
    """
)


def test_processes_that_find_the_same_damage_move_it_aside_once(tmp_path: Path) -> None:
    _damage(tmp_path)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RECOVERING_WRITER, str(tmp_path), str(go), str(i), TESTS],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    time.sleep(0.5)
    go.touch()
    recovered = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        recovered.append(int(out))
    assert sum(recovered) == 1
    assert len(list(tmp_path.glob("cache.db.corrupt-*[0-9]"))) == 1
    with JudgeCache(tmp_path, "replay") as cache:
        assert len(cache) == 4  # every writer's entry is in the rebuilt cache


def test_a_run_on_a_damaged_cache_says_so_and_passes(
    pytester: pytest.Pytester, fake_judge: FakeJudge, judge_args: list[str]
) -> None:
    fake_judge.policy = ByResponsePolicy("GOOD")
    cache_dir = Path(
        next(a for a in judge_args if a.startswith("--judge-cache-dir")).split("=", 1)[1]
    )
    _damage(cache_dir)
    pytester.makepyfile(
        """
        from pytest_rubric_judge import assert_preferred

        def test_ok(judge):
            assert_preferred("GOOD", "plain", prompt="q")
        """
    )
    result = pytester.runpytest(*judge_args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["judge cache file *cache.db was damaged (*); moved aside to cache.db.corrupt-*"]
    )
    result = pytester.runpytest(*judge_args)
    result.assert_outcomes(passed=1)
    assert "was damaged" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*0 judge requests*3 cache hits*"])
