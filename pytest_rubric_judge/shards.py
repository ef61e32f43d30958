"""Sharding a prompt set: which rows a shard judges, its manifest, and merging shards.

`rubric-judge compare --shard K/N` judges shard K of N (K counts from 1, as in
`pytest --shard`-style tools, Jest and Playwright). A row belongs to the shard
`sha256([prompt, reference]) mod N + 1`, the first eight bytes of the digest read as a
big-endian integer: the same on every machine and Python version, about N-th of the rows
each for a prompt set of many distinct prompts, and every row of one prompt in one shard,
so that each prompt's rubric is asked for once, as in an unsharded run, and never drawn
twice by a sampling judge. A line that cannot be read as a row has no prompt: it belongs
to shard `index mod N + 1`, `index` being its row number from 0.

A shard's folder holds the usual outputs of `compare` plus `shard.json`, its manifest:
which shard it is, the data's SHA-256 and row count, the judge settings that shape a
verdict, the statistics settings, whether the shard finished, and its run's counters.
`rubric-judge merge` reads the manifests and the `details.jsonl` files and refuses what
would not add up to one unsharded run (`check_set`, `merged_records`).

Plain Python, no pytest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import replacing_text

if TYPE_CHECKING:
    from .config import JudgeConfig

__all__ = [
    "DETAILS",
    "FORMAT",
    "MANIFEST",
    "RULE",
    "Shard",
    "ShardDir",
    "ShardError",
    "check_set",
    "file_sha256",
    "judge_settings",
    "merged_records",
    "parse_shard",
    "read_manifest",
    "shard_for",
    "shard_from_environment",
    "shard_of_record",
    "write_manifest",
]

#: The manifest of a shard's folder.
MANIFEST = "shard.json"
DETAILS = "details.jsonl"
FORMAT = 1
#: The assignment rule's name, in every manifest: shards of another rule never merge.
RULE = "sha256-prompt-reference/1"
#: Judge settings that do not change a verdict: where and how patiently the judge is asked.
NOT_VERDICT_SHAPING = frozenset({"urls", "api_key", "timeout", "max_retries", "concurrency"})
_SYNTAX = re.compile(r"(\d{1,9})/(\d{1,9})")
_SLURM = "SLURM_ARRAY_TASK_"


class ShardError(ValueError):
    """A bad `--shard`, or shard folders that cannot be merged; the message is one line."""


@dataclass(frozen=True, order=True)
class Shard:
    """Shard `index` of `count`, `index` counting from 1."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, prompt: str | None, reference: str | None, row: int) -> bool:
        """Whether the row (`prompt` None for a line that could not be read) is this shard's."""
        if prompt is None:
            return row % self.count + 1 == self.index
        return shard_for(prompt, reference, self.count) == self.index


def shard_for(prompt: str, reference: str | None, count: int) -> int:
    """The shard (from 1) of a row with this prompt and reference, among `count`."""
    key = json.dumps([prompt, reference]).encode("ascii")  # ASCII: lone surrogates too
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % count + 1


def shard_of_record(record: Mapping[str, Any], count: int) -> int:
    """The shard (from 1) of a `details.jsonl` record."""
    invalid = record.get("status") == "invalid" or record.get("error_type") == "InvalidRow"
    if invalid:
        return int(record["index"]) % count + 1
    return shard_for(str(record.get("prompt") or ""), record.get("reference"), count)


# -- --shard ---------------------------------------------------------------------------


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> Shard:
    """`K/N` (1 <= K <= N), or `auto` for the task of a Slurm array job."""
    value = text.strip()
    if value.lower() == "auto":
        return shard_from_environment(os.environ if environ is None else environ)
    match = _SYNTAX.fullmatch(value.replace(" ", ""))
    if match is None:
        raise ShardError(
            f"--shard {text!r}: expected K/N, shard K of N counting from 1, such as 1/3 "
            "(or auto in a Slurm array job)"
        )
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise ShardError(f"--shard {value}: N, the number of shards, must be 1 or more, e.g. 1/3")
    if index < 1:
        raise ShardError(
            f"--shard {value}: K counts from 1: the first of {count} shards is 1/{count}, "
            f"the last {count}/{count}"
        )
    if index > count:
        raise ShardError(
            f"--shard {value}: K is above N: the shards of {count} are 1/{count} to {count}/{count}"
        )
    return Shard(index, count)


def shard_from_environment(environ: Mapping[str, str]) -> Shard:
    """The shard of a Slurm array task: its position in the array's range, from 1.

    `--array=0-7` and `--array=1-8` both give shards 1/8 to 8/8; an array that is not a
    plain range (`--array=1,3,5`, a step) is refused, since its tasks would leave gaps.
    """
    if not environ.get(f"{_SLURM}ID"):
        raise ShardError(
            "--shard auto: SLURM_ARRAY_TASK_ID is not set (auto reads the task of a Slurm "
            "array job); elsewhere give --shard K/N, e.g. in a Kubernetes indexed Job "
            '--shard "$((JOB_COMPLETION_INDEX + 1))/N"'
        )
    values: dict[str, int] = {}
    for name, default in (("ID", None), ("MIN", None), ("COUNT", None), ("STEP", "1")):
        raw = environ.get(f"{_SLURM}{name}", default)
        try:
            values[name] = int(str(raw))
        except ValueError:
            raise ShardError(
                f"--shard auto: {_SLURM}{name} is {raw!r}, not a number; give --shard K/N"
            ) from None
    task, low, count, step = values["ID"], values["MIN"], values["COUNT"], values["STEP"]
    high = environ.get(f"{_SLURM}MAX")
    if step != 1 or count < 1 or (high is not None and high.strip() != str(low + count - 1)):
        raise ShardError(
            f"--shard auto: the Slurm array is not a plain range of {count} tasks (min "
            f"{low}, max {high}, step {step}); use --array=1-{max(count, 1)} or give --shard K/N"
        )
    if not low <= task < low + count:
        raise ShardError(f"--shard auto: task {task} is outside the array {low}-{low + count - 1}")
    return Shard(task - low + 1, count)


# -- the manifest ----------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, as `sha256sum` prints it."""
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def judge_settings(config: JudgeConfig, model: str | None) -> dict[str, Any]:
    """Every judge setting that shapes a verdict (a new one counts until listed apart), the
    model as the server named it, and the prompt templates' hash."""
    from .prompts import TEMPLATE_HASH

    settings: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        if field.name in NOT_VERDICT_SHAPING:
            continue
        value = getattr(config, field.name)
        if not (value is None or isinstance(value, (str, int, float, bool))):
            value = str(value)
        settings[field.name] = value
    settings["model"] = model if model else settings.get("model")
    settings["templates"] = TEMPLATE_HASH
    return settings


def write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Write `shard.json` whole (a reader sees the old one or the new one)."""
    with replacing_text(folder / MANIFEST, durable=True) as out:
        out.write(json.dumps(manifest, indent=2) + "\n")


@dataclass(frozen=True)
class ShardDir:
    """A shard's folder and its manifest."""

    path: Path
    manifest: Mapping[str, Any]

    @property
    def shard(self) -> Shard:
        return Shard(int(self.manifest["shard"]), int(self.manifest["shards"]))

    @property
    def complete(self) -> bool:
        return self.manifest.get("complete") is True

    def __str__(self) -> str:
        return f"{self.path} (shard {self.shard})"


def read_manifest(folder: Path) -> ShardDir:
    """The manifest of a shard's folder; ShardError when it is missing or unreadable."""
    if not folder.is_dir():
        raise ShardError(f"{folder} is not a folder; give the --out folders of compare --shard")
    path = folder / MANIFEST
    if not path.is_file():
        raise ShardError(
            f"{folder} has no {MANIFEST}: it is not the --out folder of `compare --shard K/N`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        shard = Shard(int(manifest["shard"]), int(manifest["shards"]))
        known = manifest["format"] == FORMAT
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ShardError(f"{path} is not a shard manifest this version can read") from None
    statistics = manifest.get("statistics")
    readable = (
        known
        and 1 <= shard.index <= shard.count
        and isinstance(manifest.get("data"), dict)
        and isinstance(statistics, dict)
        and isinstance(statistics.get("level"), float)
        and isinstance(statistics.get("resamples"), (int, type(None)))
        and isinstance(statistics.get("seed"), int)
    )
    if not readable:
        raise ShardError(f"{path} is not a shard manifest this version can read")
    return ShardDir(folder, manifest)


def _fingerprint(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What must be equal for two shards to be of one run, by a readable name."""
    data = manifest.get("data") or {}
    found: dict[str, Any] = {
        "assignment rule": manifest.get("rule"),
        "number of shards": manifest.get("shards"),
        "data SHA-256": data.get("sha256"),
        "data rows": data.get("rows"),
    }
    judge = manifest.get("judge") or {}
    statistics = manifest.get("statistics") or {}
    keys = sorted(set(judge))
    found.update({f"judge {name}": judge.get(name) for name in keys})
    found.update({f"--{name.replace('_', '-')}": statistics.get(name) for name in statistics})
    return found


def check_set(folders: Sequence[ShardDir]) -> int:
    """Refuse shard folders that do not make one whole run; the number of shards.

    In order: a folder given twice, unfinished shards, shards of different runs (the
    first setting that differs), a shard given twice, missing shards.
    """
    if not folders:
        raise ShardError("no shard folder given")
    seen: dict[Path, Path] = {}
    for folder in folders:
        real = folder.path.resolve()
        if real in seen:
            raise ShardError(f"{folder.path} is given twice")
        seen[real] = folder.path
    unfinished = [folder for folder in folders if not folder.complete]
    if unfinished:
        names = ", ".join(str(folder) for folder in unfinished)
        raise ShardError(
            f"incomplete shard (interrupted, killed or still running): {names}; run its "
            "compare command again to finish it (finished judge calls come from the cache)"
        )
    first = folders[0]
    expected = _fingerprint(first.manifest)
    for folder in folders[1:]:
        found = _fingerprint(folder.manifest)
        for name in sorted(set(expected) | set(found)):
            if expected.get(name) != found.get(name):
                raise ShardError(
                    f"{first} and {folder} are shards of different runs: {name} is "
                    f"{expected.get(name)!r} in the first, {found.get(name)!r} in the second"
                )
    count = first.shard.count
    by_index: dict[int, ShardDir] = {}
    for folder in folders:
        other = by_index.setdefault(folder.shard.index, folder)
        if other is not folder:
            raise ShardError(f"shard {folder.shard} is given twice: {other.path} and {folder.path}")
    missing = [index for index in range(1, count + 1) if index not in by_index]
    if missing:
        have = ", ".join(str(k) for k in sorted(by_index))
        raise ShardError(
            f"missing shard{'s' if len(missing) > 1 else ''} "
            f"{', '.join(str(k) for k in missing)} of {count} (given: {have}); merge needs "
            f"all {count}"
        )
    return count


# -- merging ---------------------------------------------------------------------------


def _records(folder: ShardDir) -> Iterator[tuple[int, int, bytes, dict[str, Any]]]:
    """(index, shard, line, record) of a shard's `details.jsonl`, checked as they come."""
    path = folder.path / DETAILS
    shard = folder.shard
    previous = -1
    count = 0
    try:
        source = path.open("rb")
    except OSError as error:
        raise ShardError(f"{folder}: cannot read {DETAILS}: {error.strerror}") from None
    with source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                index = int(record["index"])
            except (ValueError, KeyError, TypeError):
                raise ShardError(f"{path}, line {number}: not a details record") from None
            if index <= previous:
                raise ShardError(f"{path} is not in row order at line {number}: it was changed")
            owner = shard_of_record(record, shard.count)
            if owner != shard.index:
                raise ShardError(
                    f"row {index} in {folder} belongs to shard {owner}/{shard.count}: the "
                    "shards' rows overlap, or the folder was changed after compare wrote it"
                )
            previous = index
            count += 1
            if not line.endswith(b"\n"):
                line += b"\n"
            yield index, shard.index, line, record
    rows = folder.manifest.get("rows")
    if count != rows:
        raise ShardError(
            f"{folder}: {DETAILS} has {count} rows, its manifest says {rows}; the folder is "
            "damaged or was changed: run its compare command again"
        )


def merged_records(folders: Sequence[ShardDir]) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Every row of the shards in input order, as (details line, record).

    Refuses (ShardError) a row in two shards, a row in no shard, a row in the wrong
    shard, and a total other than the data's row count. Call `check_set` first.
    """
    by_index = {folder.shard.index: folder for folder in folders}
    streams = [_records(folder) for folder in folders]
    expected = 0
    previous: tuple[int, int] | None = None
    for index, shard, line, record in heapq.merge(*streams, key=lambda item: item[:2]):
        if previous is not None and previous[0] == index:
            raise ShardError(
                f"row {index} is in two shards: {by_index[previous[1]]} and {by_index[shard]}"
            )
        if index != expected:
            raise ShardError(
                f"row {expected} is in no shard (the next is row {index}, in "
                f"{by_index[shard]}); the shards do not cover the data"
            )
        previous = (index, shard)
        expected += 1
        yield line, record
    rows = (folders[0].manifest.get("data") or {}).get("rows")
    if expected != rows:
        raise ShardError(f"the shards hold {expected} rows, the data has {rows}")
