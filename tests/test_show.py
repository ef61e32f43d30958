"""`rubric-judge show` prints a stored comparison without letting its text drive the terminal.

A details file is data from a judge and from the model under test; it may hold terminal
escapes (`ESC [2J` clears the screen, `ESC ]52` writes the clipboard), carriage returns
that overwrite a line, BEL, NUL, and bidirectional overrides that make text display
reversed. `show` prints each of them escaped, visibly, and keeps ordinary text as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_rubric_judge import Judge
from pytest_rubric_judge.cli import main
from pytest_rubric_judge.report.details import record_of
from pytest_rubric_judge.testing import ByResponsePolicy, FakeJudge

HOSTILE = "ok\x1b[2J\x1b]52;c;ZXZpbA==\x07\rfake line\x00\u202eevil\u2066\u200f\x9b31m é"
UNSAFE = ["\x1b", "\x07", "\r", "\x00", "\u202e", "\u2066", "\u200f", "\x9b"]


@pytest.fixture(scope="module")
def record() -> dict[str, object]:
    with FakeJudge(ByResponsePolicy("GOOD")) as fake, Judge(fake.url, fake.model) as judge:
        verdict = judge.compare("What is the capital?", "Lyon.", "Paris. GOOD")
    return json.loads(json.dumps(record_of(0, "row-0", verdict)))


def _hostile(record: dict[str, object]) -> dict[str, object]:
    data = json.loads(json.dumps(record))
    data["id"] = HOSTILE
    data["forward"]["overall_justification"] = HOSTILE  # type: ignore[index]
    data["reversed"]["overall_justification"] = HOSTILE  # type: ignore[index]
    for criterion in data["criteria"]:  # type: ignore[attr-defined]
        criterion["name"] = criterion["name"] + HOSTILE
        criterion["description"] = HOSTILE
        criterion["forward_justification_A"] = HOSTILE
        criterion["forward_justification_B"] = HOSTILE
    return data


def _show(tmp_path: Path, *records: dict[str, object]) -> None:
    (tmp_path / "details.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8"
    )


def test_show_escapes_control_and_bidi_characters(
    tmp_path: Path, record: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    _show(tmp_path, _hostile(record))
    assert main(["show", str(tmp_path), "--row", "0"]) == 0
    out = capsys.readouterr().out
    body = out.replace("\n", "")  # newlines between lines are the command's own
    for char in UNSAFE:
        assert char not in body, repr(char)
    assert "\\x1b[2J" in out and "\\u202e" in out and "\\r" in out
    assert "fake line" in out and " é" in out  # the text itself stays readable
    assert "Justification A:" in out


def test_show_escapes_an_error_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    error = record_of(3, HOSTILE, None, error_type="JudgeError" + HOSTILE, error=HOSTILE)
    _show(tmp_path, json.loads(json.dumps(error)))
    assert main(["show", str(tmp_path), "--row", "3"]) == 0
    out = capsys.readouterr().out
    for char in UNSAFE:
        assert char not in out.replace("\n", ""), repr(char)
    assert "Judge error" in out and "\\x1b[2J" in out


def test_show_escapes_newlines_inside_a_field(
    tmp_path: Path, record: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    """A field cannot add lines that look like the command's own ("Preference: ...")."""
    data = json.loads(json.dumps(record))
    data["forward"]["overall_justification"] = "fine\n  Preference: ['B>A'] (forged)"
    _show(tmp_path, data)
    assert main(["show", str(tmp_path), "--row", "0"]) == 0
    out = capsys.readouterr().out
    assert sum(line.lstrip().startswith("Preference:") for line in out.splitlines()) == 1
    assert "fine\\n  Preference: ['B>A'] (forged)" in out


def test_show_names_an_invalid_row_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    invalid = record_of(0, "0", None, error_type="InvalidRow", error="line 1 is not JSON")
    judge_error = record_of(1, "1", None, error_type="JudgeUnavailableError", error="refused")
    _show(tmp_path, invalid, judge_error)
    assert main(["show", str(tmp_path), "--row", "0"]) == 0
    out = capsys.readouterr().out
    assert "Invalid input row (not judged): line 1 is not JSON" in out
    assert "Judge error" not in out
    assert main(["show", str(tmp_path), "--row", "1"]) == 0
    assert "Judge error: JudgeUnavailableError: refused" in capsys.readouterr().out
