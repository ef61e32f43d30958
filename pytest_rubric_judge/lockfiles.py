"""Rubric lock files: the rubrics a test's prompts are judged on, as reviewable YAML.

One file per test (`locks` says where), one entry per prompt (and reference) the test
judged, each with the prompt written out in full so that a reviewer sees which prompt a
rubric is for:

    version: 1
    test: test_dinosaurs.py::test_detailed_answer_is_preferred
    rubrics:
    - prompt: do dinosaurs really exist?
      criteria:
      - name: accuracy
        description: Whether the facts about dinosaurs are correct.
        weight: 0.5
        type: scale
    - prompt: What is the Grotto at Notre Dame?
      reference: A Marian place of prayer and reflection.
      criteria: [...]

A lock file is edited by hand, so reading one is a trust boundary: `read_lock` loads it
with the package's safe YAML loader (no tags, aliases, repeated keys, huge numbers or deep
nesting) and checks every field, and anything wrong is one `LockFileError` whose message
is one line saying where (`rubrics[1] (prompt '...') criteria[0] (accuracy): weight`) and
what is expected. It never raises anything else for any text.

`render_lock` writes what `read_lock` reads back exactly: the prompts, references and
criteria of the entries (checked on every render; a text that does not read back is
written again with every non-ASCII character escaped).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import ParseError
from .loading import load_yaml
from .models import NAME_PATTERN, Criterion, CriterionType, Rubric
from .values import clean_text, kind_of, show

__all__ = ["FORMAT_VERSION", "MAX_LOCK_BYTES", "LockEntry", "LockFileError", "read_lock"]

FORMAT_VERSION = 1
#: The largest lock file read: a few prompts of the longest accepted size, with room.
MAX_LOCK_BYTES = 16 * 1024 * 1024
MAX_NAME_CHARS = 40
_NAME = re.compile(NAME_PATTERN)
_TOP_KEYS = ("version", "test", "rubrics")
_ENTRY_KEYS = ("prompt", "reference", "criteria")
_CRITERION_KEYS = ("name", "description", "weight", "type")
_TYPES: tuple[CriterionType, ...] = ("scale", "binary")

HEADER = """\
# Rubric lock file (pytest-rubric-judge). Each entry is the rubric for one prompt of this
# test; the test is judged on it instead of asking the judge for one. To adjust a rubric,
# edit a criterion's name (snake_case), description, weight (a number; the weights are
# rescaled to sum to 1) or type (scale or binary), or add and remove criteria. To lock
# the judge's rubric again, delete the entry (or the file) and run pytest with
# --judge-lock-rubrics.
"""


class LockFileError(ValueError):
    """A lock file that cannot be read: one line saying where and what is expected."""


@dataclass(frozen=True)
class LockEntry:
    """The locked rubric of one prompt (and reference) of a test."""

    prompt: str
    reference: str | None
    rubric: Rubric

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.prompt, self.reference)


# -- writing ---------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Plain data only; multi-line text as literal blocks; never an anchor or alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None  # PyYAML quotes it instead when it must
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _text)
#: A conversation's or a context's prompt is a `str` subclass (`inputs.Structured`):
#: written as its text, which is what a later run looks it up by.
_Dumper.add_multi_representer(str, _text)


def _entry_data(entry: LockEntry) -> dict[str, object]:
    data: dict[str, object] = {"prompt": entry.prompt}
    if entry.reference is not None:
        data["reference"] = entry.reference
    data["criteria"] = [
        {
            "name": criterion.name,
            "description": criterion.description,
            "weight": criterion.weight,
            "type": criterion.type,
        }
        for criterion in entry.rubric.criteria
    ]
    return data


def _same(written: list[LockEntry], read: list[LockEntry]) -> bool:
    return len(written) == len(read) and all(
        a.key == b.key and a.rubric.canonical() == b.rubric.canonical()
        for a, b in zip(written, read, strict=True)
    )


def render_lock(test: str, entries: Iterable[LockEntry]) -> str:
    """The lock file of `test` holding `entries`, in order; `read_lock` reads them back.

    Descriptions are written as `read_lock` cleans them (see `values.clean_text`). Raises
    ValueError for entries that cannot be written so that they read back (a criterion
    `read_lock` would refuse).
    """
    items = [
        LockEntry(
            entry.prompt,
            entry.reference,
            entry.rubric.model_copy(
                update={
                    "criteria": tuple(
                        c.model_copy(update={"description": clean_text(c.description)})
                        for c in entry.rubric.criteria
                    )
                }
            ),
        )
        for entry in entries
    ]
    data = {
        "version": FORMAT_VERSION,
        "test": " ".join(test.split()),
        "rubrics": [_entry_data(entry) for entry in items],
    }
    problem = ""
    for unicode in (True, False):
        body = yaml.dump(
            data,
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=unicode,
            width=88,
        )
        text = HEADER + body
        try:
            if _same(items, read_lock(text)):
                return text
            problem = "it does not read back the same"
        except LockFileError as error:
            problem = str(error)
    raise ValueError(f"the rubrics cannot be written as a lock file: {problem}")


# -- reading ---------------------------------------------------------------------------


def _excerpt(text: str, limit: int = 40) -> str:
    flat = " ".join(text.split())
    return show(flat if len(flat) <= limit else flat[: limit - 3] + "...")


def _mapping(
    value: object, where: str, keys: tuple[str, ...], required: tuple[str, ...]
) -> dict[str, object]:
    if not isinstance(value, Mapping):
        raise LockFileError(
            f"{where} is {kind_of(value)}: expected a mapping with {', '.join(keys)}"
        )
    found: dict[str, object] = {}
    for key, item in value.items():
        if not isinstance(key, str) or key not in keys:
            raise LockFileError(
                f"{where} has an unknown key {show(key)}: the keys are {', '.join(keys)}"
            )
        found[key] = item
    for key in required:
        if key not in found:
            raise LockFileError(f"{where} has no {key}")
    return found


def _weight(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LockFileError(f"{where}: weight is {show(value)}: give a number such as 0.25")
    weight = float(value)
    if not math.isfinite(weight) or weight == 0:
        raise LockFileError(
            f"{where}: weight is {show(value)}: give a finite number other than 0 (remove "
            "the criterion rather than weighting it 0)"
        )
    return weight


def _criterion(value: object, where: str) -> Criterion:
    fields = _mapping(value, where, _CRITERION_KEYS, ("name", "weight", "type"))
    name = fields["name"]
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or not _NAME.match(name):
        raise LockFileError(
            f"{where}: name {show(name)} is not a criterion name: snake_case (lowercase "
            f"letters, digits and _, starting with a letter), at most {MAX_NAME_CHARS} characters"
        )
    where = f"{where} ({name})"
    description = fields.get("description", "")
    if description is not None and not isinstance(description, str):
        raise LockFileError(
            f"{where}: description is {kind_of(description)}: write it as text (in quotes)"
        )
    kind = fields["type"]
    if kind not in _TYPES:
        raise LockFileError(f"{where}: type is {show(kind)}: give scale or binary")
    return Criterion.model_construct(  # every field checked above
        name=name,
        description=clean_text(description),
        weight=_weight(fields["weight"], where),
        type=kind,
    )


def _text_field(value: object, where: str, what: str) -> str:
    if not isinstance(value, str):
        raise LockFileError(f"{where}: {what} is {kind_of(value)}: write it as text (in quotes)")
    return value


def _entry(value: object, index: int) -> LockEntry:
    where = f"rubrics[{index}]"
    fields = _mapping(value, where, _ENTRY_KEYS, ("prompt", "criteria"))
    prompt = _text_field(fields["prompt"], where, "prompt")
    where = f"{where} (prompt {_excerpt(prompt)})"
    raw_reference = fields.get("reference")
    reference = None if raw_reference is None else _text_field(raw_reference, where, "reference")
    raw = fields["criteria"]
    if not isinstance(raw, list) or not raw:
        raise LockFileError(
            f"{where}: criteria is {kind_of(raw) if raw != [] else 'an empty list'}: expected "
            "a list of criteria, each with name, description, weight and type"
        )
    criteria = [_criterion(item, f"{where} criteria[{i}]") for i, item in enumerate(raw)]
    seen: set[str] = set()
    for criterion in criteria:
        if criterion.name in seen:
            raise LockFileError(f"{where}: criterion {criterion.name!r} is given twice")
        seen.add(criterion.name)
    if not any(criterion.weight > 0 for criterion in criteria):
        raise LockFileError(f"{where}: no criterion has a positive weight; give one at least")
    try:
        rubric = Rubric(criteria=tuple(criteria), source="judge").normalized()
    except ValueError as error:  # weights too far apart to rescale
        raise LockFileError(f"{where}: {' '.join(str(error).split())}") from None
    return LockEntry(prompt, reference, rubric)


def read_lock(text: str) -> list[LockEntry]:
    """The entries of a lock file's text; `LockFileError` (one line) for anything wrong."""
    if len(text) > MAX_LOCK_BYTES:
        raise LockFileError(f"the file is larger than {MAX_LOCK_BYTES // (1024 * 1024)} MB")
    try:
        data = load_yaml(text)
    except ParseError as error:
        message = " ".join(str(error).split())
        message = message.replace("answer is not valid YAML", "not valid YAML")
        message = message.replace(" of the YAML block", "").replace("answer in", "write")
        raise LockFileError(message) from None
    if data is None:
        raise LockFileError("the file is empty: expected version, test and rubrics")
    fields = _mapping(data, "the file", _TOP_KEYS, ("rubrics",))
    version = fields.get("version", FORMAT_VERSION)
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise LockFileError(
            f"version is {show(version)}: this plugin reads version {FORMAT_VERSION}"
        )
    test = fields.get("test")
    if test is not None and not isinstance(test, str):
        raise LockFileError(f"test is {kind_of(test)}: write the test id as text")
    raw = fields["rubrics"]
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise LockFileError(f"rubrics is {kind_of(raw)}: expected a list of entries")
    entries = [_entry(item, index) for index, item in enumerate(raw)]
    seen: dict[tuple[str, str | None], int] = {}
    for index, entry in enumerate(entries):
        if entry.key in seen:
            raise LockFileError(
                f"rubrics[{index}] (prompt {_excerpt(entry.prompt)}) repeats the prompt and "
                f"reference of rubrics[{seen[entry.key]}]; keep one of them"
            )
        seen[entry.key] = index
    return entries
