"""The baseline store: one committed plain-text response per test.

Baselines live beside the test module, in `judge_baselines/<module>/<test name>.txt` (a
test in a class is named with its class, `TestA.test_x`), so a reviewer sees a changed
baseline as a text diff. Writes go to a temporary file in the same folder and are renamed
over the old one, so a killed run never leaves half a baseline; a rewritten file keeps
its permissions.
"""

from __future__ import annotations

import glob
import hashlib
import re
import time
from pathlib import Path

from .files import TEMP_SUFFIX, replacing

FOLDER = "judge_baselines"
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-\[\]=,+]")
MAX_NAME = 120
#: A temporary file this old cannot belong to a write still in progress.
STALE_TEMP_S = 600.0


def file_name(test_name: str, suffix: str = ".txt") -> str:
    """A portable file name for a test id such as `test_q[What is 2+2?]` or `TestA.test_x`.

    Unsafe characters become `_`; long or altered names get a short hash of the original
    so two ids never share a file.
    """
    safe = _UNSAFE.sub("_", test_name).strip(".") or "_"
    if safe != test_name or len(safe) > MAX_NAME:
        digest = hashlib.sha256(test_name.encode()).hexdigest()[:10]
        safe = f"{safe[:MAX_NAME]}-{digest}"
    return safe + suffix


def per_test_path(module_path: Path, test_name: str, folder: str, suffix: str) -> Path:
    """`<folder>/<module>/<test id><suffix>` beside the test module: the naming rules of
    every per-test file (baselines here, rubric lock files in `locks`)."""
    return module_path.parent / folder / module_path.stem / file_name(test_name, suffix)


def baseline_path(module_path: Path, test_name: str) -> Path:
    """Where the baseline of `test_name` in the test module `module_path` lives.

    `test_name` is the test's name with its classes, `TestA.test_x[id]`, so that tests of
    the same name in different classes never share a file.
    """
    return per_test_path(module_path, test_name, FOLDER, ".txt")


def read_baseline(path: Path) -> str | None:
    """The stored text exactly as written, or None when there is none."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None


def write_baseline(path: Path, text: str) -> None:
    """Replace the baseline atomically: write a temporary file, fsync, rename, fsync the folder.

    A process killed at any moment leaves the complete old file or the complete new one.
    It may leave its temporary file (`.<name>.<random>.tmp`), which nothing reads; the next
    successful write of the same baseline removes such leftovers once they are stale.
    An existing file keeps its mode. Text that UTF-8 cannot encode (a lone surrogate) is
    a ValueError saying where, before anything is written.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"the text is not valid UTF-8: a lone surrogate at character {error.start}"
        ) from None
    with replacing(path, durable=True) as handle:
        handle.write(data)
    remove_stale_temp_files(path)


def temp_files(path: Path) -> list[Path]:
    """Temporary files that writes of the baseline `path` left behind."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*{TEMP_SUFFIX}"))


def remove_stale_temp_files(path: Path, *, older_than: float = STALE_TEMP_S) -> int:
    """Remove leftovers of killed writes of `path` older than `older_than` seconds.

    Younger ones may belong to a write still in progress in another process.
    """
    removed = 0
    deadline = time.time() - older_than
    for leftover in temp_files(path):
        try:
            if leftover.stat().st_mtime <= deadline:
                leftover.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
