"""The baseline store: one committed plain-text response per test.

Baselines live beside the test module, in `judge_baselines/<module>/<test name>.txt`, so a
reviewer sees a changed baseline as a text diff. Writes go to a temporary file in the same
folder and are renamed over the old one, so a killed run never leaves half a baseline.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

FOLDER = "judge_baselines"
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-\[\]=,+]")
MAX_NAME = 120


def file_name(test_name: str) -> str:
    """A portable file name for a test id such as `test_q[What is 2+2?]`.

    Unsafe characters become `_`; long or altered names get a short hash of the original
    so two ids never share a file.
    """
    safe = _UNSAFE.sub("_", test_name).strip(".") or "_"
    if safe != test_name or len(safe) > MAX_NAME:
        digest = hashlib.sha256(test_name.encode()).hexdigest()[:10]
        safe = f"{safe[:MAX_NAME]}-{digest}"
    return safe + ".txt"


def baseline_path(module_path: Path, test_name: str) -> Path:
    """Where the baseline of `test_name` in the test module `module_path` lives."""
    return module_path.parent / FOLDER / module_path.stem / file_name(test_name)


def read_baseline(path: Path) -> str | None:
    """The stored text exactly as written, or None when there is none."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None


def write_baseline(path: Path, text: str) -> None:
    """Replace the baseline atomically: write a temporary file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
