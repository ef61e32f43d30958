"""The last line of defence: no report of the run carries a credential.

The plugin keeps the key in a `Secret` and builds no frame that holds it as text, but a
test's own locals, a third-party library's exception message or a captured print may
still carry it. Every test and collection report is therefore searched for every form of
the run's credentials (the key, each URL password raw and percent-encoded, the Basic
token) before pytest shows it or writes it to JUnit XML, and each is replaced by `***`.
A report that held one is shown as its masked text (the traceback's layout is kept, its
colours are lost).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from ..credentials import mask

#: The user:password part of any URL in a message (a proxy's, say).
_USERINFO = re.compile(r"(?<=://)[^\s/@'\"]+@")


def scrub(text: str, forms: Sequence[str]) -> str:
    """`text` without any of `forms`, and with any URL's `user:password@` shown as `***@`."""
    return _USERINFO.sub("***@", mask(text, forms))


def _holds(text: str, forms: Sequence[str]) -> bool:
    return any(form in text for form in forms)


def mask_report(report: pytest.TestReport | pytest.CollectReport, forms: Sequence[str]) -> None:
    """Replace every form of a credential in `report`'s long report, sections and properties."""
    if not forms:
        return
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        path, line, reason = longrepr
        report.longrepr = (mask(str(path), forms), line, mask(reason, forms))
    elif longrepr is not None:
        rendered = str(longrepr)
        if _holds(rendered, forms):
            report.longrepr = mask(rendered, forms)
    report.sections = [
        (title, mask(content, forms) if _holds(content, forms) else content)
        for title, content in report.sections
    ]
    if isinstance(report, pytest.TestReport):
        report.user_properties = [
            (name, mask(value, forms) if isinstance(value, str) else value)
            for name, value in report.user_properties
        ]
