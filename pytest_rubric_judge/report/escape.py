"""Text from a judge or a model, made safe to print on a terminal.

A stored answer may hold terminal escapes (`ESC [2J` clears the screen, `ESC ]52` writes
the clipboard, C1 `CSI`), carriage returns that overwrite what was printed, BEL, NUL,
bidirectional controls that make text display in another order than it is stored
(U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C), and lone surrogates that cannot
be encoded. `escape_control` shows each of them as a visible escape (`\\x1b`, `\\u202e`,
`\\r`, `\\n`) and leaves every other character as it is, so the text stays readable and
one field stays on one line.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_control(text: object) -> str:
    """`str(text)` with control, bidirectional and lone-surrogate characters escaped."""
    return _UNSAFE.sub(_escape, str(text))


__all__ = ["escape_control"]
