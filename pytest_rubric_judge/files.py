"""Replacing a file whole: never half a file, and the file keeps its permissions.

`replacing(path)` gives a handle on a temporary file in the same folder; when the block
ends without an error the temporary file is renamed over `path`, so a reader (or a killed
run) sees the complete old file or the complete new one. A file that already exists
keeps its mode (a committed 0644 baseline stays 0644); a new file gets the mode any new
file gets (0666 less the umask), not the 0600 of `tempfile.mkstemp`. With `durable`, the
data and the rename are flushed to disk (fsync of the file and of its folder).

Plain Python, no pytest.
"""

from __future__ import annotations

import io
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TextIO

TEMP_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """A fresh temporary file name beside `path`: `.<name>.<random>.tmp`."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


def existing_mode(path: Path) -> int | None:
    """The permission bits of `path`, or None when it does not exist."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None


def keep_mode(temporary: Path, path: Path) -> None:
    """Give `temporary` the permission bits of `path`, when `path` exists."""
    mode = existing_mode(path)
    if mode is not None:
        os.chmod(temporary, mode)


@contextmanager
def replacing(path: Path, *, durable: bool = False) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces `path` when the block ends without an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temporary, flags, 0o666)  # the umask applies, as for any new file
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        keep_mode(temporary, path)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        fsync_folder(path.parent)


@contextmanager
def replacing_text(path: Path, *, durable: bool = False) -> Iterator[TextIO]:
    """`replacing` for UTF-8 text with `\\n` line ends."""
    with replacing(path, durable=durable) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
        try:
            yield text
            text.flush()
        finally:
            text.detach()  # `replacing` closes the file


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
