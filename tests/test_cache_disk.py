"""The cache on disks that say no: a read-only mount, a full disk.

Tests run as root on some machines, and root writes through file modes; so a read-only
folder is a read-only bind mount when this process may mount (root), and a folder without
write permission otherwise. A full disk is a tiny tmpfs (root), or SQLite's own page limit
set through diskcache's stored settings, which any user can do.
"""

from __future__ import annotations

import errno
import gc
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import diskcache  # type: ignore[import-untyped]
import pytest
from cache_answers import mixed_entries, rubric_entry

from pytest_rubric_judge.cache import (
    CacheCorruptError,
    CacheError,
    CacheFullError,
    JudgeCache,
)
from pytest_rubric_judge.errors import JudgeError
from pytest_rubric_judge.judge import Judge
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge


def _run(*command: str) -> bool:
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


@contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """`directory` cannot be written by this process, root included, inside the block."""
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in [directory, *directory.iterdir()]}
        for path in modes:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    if shutil.which("mount") is None or not _run("mount", "--bind", str(directory), str(directory)):
        pytest.skip("root without mount: no way to make a folder read-only for this process")
    try:
        if not _run("mount", "-o", "remount,bind,ro", str(directory)):
            pytest.skip("could not remount the bind mount read-only")
        yield
    finally:
        _unmount(directory)


def _unmount(directory: Path) -> None:
    """Unmount, after dropping what may still hold a file open there (a failed open keeps
    its connection until its traceback goes); detach lazily if something still does."""
    gc.collect()
    if not _run("umount", str(directory)):
        _run("umount", "-l", str(directory))


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file's name, size and modification time."""
    return {
        path.name: (path.stat().st_size, path.stat().st_mtime_ns) for path in directory.iterdir()
    }


def assert_not_writable(directory: Path) -> None:
    with pytest.raises(OSError) as info:
        (directory / "probe").write_text("x")
    assert info.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


def test_replay_reads_a_cache_on_a_read_only_folder(tmp_path: Path) -> None:
    entries = mixed_entries(6)
    with JudgeCache(tmp_path) as cache:
        for entry in entries:
            cache.put(entry)
    before = snapshot(tmp_path)
    assert set(before) == {"cache.db"}
    with read_only(tmp_path):
        assert_not_writable(tmp_path)
        with JudgeCache(tmp_path, "replay") as replay:
            assert [replay.get(e.key) for e in entries] == entries
            assert list(replay.entries()) == entries
            assert len(replay) == 6 and sorted(replay.keys()) == sorted(e.key for e in entries)
            assert replay.get(rubric_entry(99).key) is None
        assert snapshot(tmp_path) == before  # no lock, WAL or journal file, nothing touched


WAL_WRITER = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, sys.argv[2])
    from cache_answers import mixed_entries
    from pytest_rubric_judge.cache import JudgeCache

    cache = JudgeCache(sys.argv[1])
    for entry in mixed_entries(6):
        cache.put(entry)
    os._exit(0)  # killed before closing: the last entries are only in cache.db-wal
    """
)


def test_replay_on_a_read_only_folder_reads_what_a_killed_writer_left_in_the_wal(
    tmp_path: Path,
) -> None:
    tests = str(Path(__file__).parent)
    subprocess.run([sys.executable, "-c", WAL_WRITER, str(tmp_path), tests], check=True)
    before = snapshot(tmp_path)
    assert {"cache.db-wal", "cache.db-shm"} <= set(before) and before["cache.db-wal"][0] > 0
    with read_only(tmp_path):
        with JudgeCache(tmp_path, "replay") as replay:
            found = list(replay.entries())
        assert snapshot(tmp_path) == before
    # Written by another process: equal but for the recording time.
    assert [e.model_copy(update={"created_at": 0.0}) for e in found] == [
        e.model_copy(update={"created_at": 0.0}) for e in mixed_entries(6)
    ]


def test_a_judge_replays_from_a_read_only_folder(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with FakeJudge(ByResponsePolicy("GOOD")) as fake:
        with Judge(fake.url, fake.model, cache_dir=cache) as judge:
            recorded = judge.compare("Which?", "a plain answer", "a GOOD answer")
        before = snapshot(cache)
        with read_only(cache):
            with Judge(None, fake.model, cache_dir=cache, cache_mode="replay") as judge:
                replayed = judge.compare("Which?", "a plain answer", "a GOOD answer")
            assert snapshot(cache) == before
    assert (replayed.preference, replayed.margin) == (recorded.preference, recorded.margin)


def test_writing_to_a_read_only_folder_says_so_and_moves_nothing(tmp_path: Path) -> None:
    entries = mixed_entries(3)
    with JudgeCache(tmp_path) as cache:
        for entry in entries[:2]:
            cache.put(entry)
    before = snapshot(tmp_path)
    with read_only(tmp_path):
        cache = JudgeCache(tmp_path, "rw")
        with pytest.raises(CacheError) as info:
            cache.put(entries[2])
        cache.close()
        assert snapshot(tmp_path) == before
    error = info.value
    assert isinstance(error, JudgeError) and not isinstance(error, CacheCorruptError)
    message = str(error)
    assert "read-only" in message and "--judge-cache=replay" in message
    assert "corrupt" not in message and "delete" not in message
    with JudgeCache(tmp_path, "replay") as replay:  # and nothing was lost
        assert list(replay.entries()) == entries[:2]


# -- full disk ----------------------------------------------------------------------------


def _assert_says_disk_full(error: BaseException) -> None:
    assert isinstance(error, CacheFullError) and isinstance(error, JudgeError)
    assert error.kind == "cache_full"
    message = str(error)
    assert "disk full" in message and "--judge-cache-dir" in message
    assert "corrupt" not in message and "delete it" not in message


def test_sqlite_page_limit_reached_says_disk_full_and_loses_nothing(tmp_path: Path) -> None:
    small = mixed_entries(3)
    with JudgeCache(tmp_path) as cache:
        for entry in small:
            cache.put(entry)
    # SQLite's own limit, stored by diskcache and applied to every connection it opens.
    with sqlite3.connect(tmp_path / "cache.db") as db:
        ((pages,),) = db.execute("PRAGMA page_count").fetchall()
    db.close()
    diskcache.Cache(
        str(tmp_path), disk_min_file_size=2**30, sqlite_max_page_count=pages + 2
    ).close()
    big = rubric_entry(7, pad=60_000)
    cache = JudgeCache(tmp_path)
    with pytest.raises(CacheFullError) as info:
        cache.put(big)
    _assert_says_disk_full(info.value)
    assert [cache.get(e.key) for e in small] == small and cache.get(big.key) is None
    cache.close()
    again = JudgeCache(tmp_path)
    assert again.get(small[0].key) == small[0] and again.recovered == []
    again.close()
    assert not list(tmp_path.glob("cache.db.corrupt-*"))


@contextmanager
def tiny_disk(directory: Path, size: str) -> Iterator[Path]:
    directory.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    if not _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)):
        pytest.skip("could not mount a tmpfs here")
    try:
        yield directory
    finally:
        _unmount(directory)


def test_a_full_disk_says_disk_full_and_loses_nothing(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk", "1m") as disk:
        directory = disk / "cache"
        small = mixed_entries(6)
        with JudgeCache(directory) as cache:
            for entry in small:
                cache.put(entry)
        filler = disk / "filler"
        with filler.open("wb", buffering=0) as handle:  # take every byte that is left
            with pytest.raises(OSError) as full:
                while True:
                    handle.write(b"\0" * 4096)
            assert full.value.errno == errno.ENOSPC
        cache = JudgeCache(directory)
        with pytest.raises(CacheError) as info:
            for index in range(100, 140):
                cache.put(rubric_entry(index, pad=20_000))
        _assert_says_disk_full(info.value)
        assert [cache.get(e.key) for e in small] == small
        cache.close()
        filler.unlink()  # room again: the same cache takes new writes, nothing moved aside
        with JudgeCache(directory) as cache:
            cache.put(rubric_entry(200, pad=20_000))
            assert cache.get(rubric_entry(200, pad=20_000).key) is not None
            assert [cache.get(e.key) for e in small] == small
            assert cache.recovered == []
        assert not list(directory.glob("cache.db.corrupt-*"))
