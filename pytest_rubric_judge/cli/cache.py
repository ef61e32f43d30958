"""`rubric-judge cache`: export, import, stats, prune and clear the judge cache.

`export` writes one canonical JSON line per stored judge call, sorted by key, so the same
cache always gives the same bytes and a re-recorded answer shows in review as a changed
line. `import` loads such a file (into an empty cache on a CI machine, say) so that a
suite runs with `--judge-cache=replay` and no judge at all. Every subcommand takes the
plugin's `--judge-cache-dir`, with the same environment variable and default folder;
every one but `import` says so when that folder does not exist rather than report an empty
cache. `clear` asks before it removes anything (`--yes` answers for it; without a terminal
to ask on, `--yes` is required).

An export file is untrusted input: `import` checks every entry before it writes any (its
key must be the hash of its fields, and its stored answer what its raw judge text reads
as) and refuses the whole file, naming each entry that fails and why, when one does. A
file that is not UTF-8, or not an export at all, is a one-line error naming the file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..cache import CacheEntry, CacheError, JudgeCache, answer_problem, canonical_json
from ..cache.entry import first_error
from ..options import DEFAULT_CACHE_DIR
from ..report.run_json import write_text_atomic
from .options import CommandError, add_judge_options, cache_dir
from .pipes import quiet_broken_pipe

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
#: Imported entries stored per transaction.
_IMPORT_BATCH = 256


def duration(text: str) -> float:
    """`30d`, `12h`, `45m`, `90s`, `2w` as seconds; for argparse `type=`."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; write a number and a unit: s, m, h, d or w (e.g. 30d)"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="export, import, inspect, prune or clear the judge cache",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    commands = parser.add_subparsers(
        dest="cache_command", metavar="ACTION", required=True, help="what to do"
    )

    export = commands.add_parser(
        "export",
        help="write every cached judge call as sorted JSON lines (FILE or - )",
        description=(
            "Write every intact cached judge call as one canonical JSON line, sorted by key: "
            "the same cache always gives the same bytes, so the file can be committed and "
            "reviewed. Damaged entries are skipped and counted."
        ),
    )
    export.add_argument("file", metavar="FILE.jsonl", help="where to write; - for stdout")
    add_judge_options(export, cache_only=True)
    export.set_defaults(func=quiet_broken_pipe(run_export))

    load = commands.add_parser(
        "import",
        help="load judge calls from an exported JSON lines file",
        description=(
            "Load the entries of a file written by `cache export` into the cache (created if "
            "needed). Every entry is checked first; if any is refused, nothing is imported."
        ),
    )
    load.add_argument("file", metavar="FILE.jsonl", help="a file written by `cache export`")
    add_judge_options(load, cache_only=True)
    load.set_defaults(func=run_import)

    stats = commands.add_parser(
        "stats",
        help="count the entries, models, tokens and size",
        description=(
            "Count the cache's entries per kind and judge model, the dates they were "
            "recorded, the tokens they saved and the size on disk."
        ),
    )
    stats.add_argument("--json", action="store_true", help="print the numbers as JSON")
    add_judge_options(stats, cache_only=True)
    stats.set_defaults(func=quiet_broken_pipe(run_stats))

    prune = commands.add_parser(
        "prune",
        help="remove entries older than a duration",
        description="Remove the entries recorded longer ago than --older-than, and damaged ones.",
    )
    prune.add_argument(
        "--older-than",
        type=duration,
        required=True,
        metavar="AGE",
        help="remove entries recorded longer ago than this: 30d, 12h, 2w, ...",
    )
    add_judge_options(prune, cache_only=True)
    prune.set_defaults(func=run_prune)

    clear = commands.add_parser(
        "clear",
        help="remove every entry (the folder stays); asks first",
        description=(
            "Remove every entry of the judge cache; the folder stays. On a terminal it asks "
            "for confirmation first; without one (a script, CI) it refuses unless --yes is "
            "given."
        ),
    )
    clear.add_argument(
        "-y", "--yes", action="store_true", help="do not ask; required without a terminal"
    )
    add_judge_options(clear, cache_only=True)
    clear.set_defaults(func=run_clear)


def _open(args: argparse.Namespace, *, write: bool, existing: bool = True) -> JudgeCache:
    """The cache; with `existing`, a CommandError when its folder does not exist."""
    directory = cache_dir(args)
    if existing and not directory.is_dir():
        raise CommandError(
            f"cache folder {directory} does not exist; give the folder with "
            "--judge-cache-dir or RUBRIC_JUDGE_CACHE_DIR (default: "
            f"{DEFAULT_CACHE_DIR} in the nearest folder upward with a pytest.ini, "
            "pyproject.toml, tox.ini or setup.cfg)"
        )
    # replay never creates the folder nor writes; rw moves a damaged file aside.
    return JudgeCache(directory, "rw" if write else "replay")


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _report_recovery(cache: JudgeCache) -> None:
    for line in cache.recovered:
        _say(f"rubric-judge: {line}")


def export_lines(cache: JudgeCache) -> list[str]:
    """Every intact entry as one canonical JSON line, sorted by key."""
    entries = sorted(cache.entries(), key=lambda entry: entry.key)
    return [canonical_json(entry.model_dump(mode="json")) + "\n" for entry in entries]


def run_export(args: argparse.Namespace) -> int:
    with _open(args, write=False) as cache:
        try:
            lines = export_lines(cache)
        except CacheError as error:
            raise CommandError(str(error)) from None
        skipped = cache.corrupt
    text = "".join(lines)
    if args.file == "-":
        sys.stdout.write(text)
    else:
        write_text_atomic(Path(args.file), text)
    where = "stdout" if args.file == "-" else args.file
    extra = f" ({skipped} damaged entries skipped)" if skipped else ""
    _say(f"exported {len(lines)} entries from {cache.directory} to {where}{extra}")
    return 0


#: How an SQLite database file begins: the cache's own file given instead of an export.
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: The refused entries named one by one; the rest are counted.
_LISTED = 10
_FIX = "give a file written by `rubric-judge cache export`"


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's non-blank lines, numbered; a file that is not UTF-8 text is an error."""
    try:
        handle = path.open("rb")
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror or error}") from None
    with handle:
        for number, data in enumerate(handle, start=1):
            if number == 1 and data.startswith(_SQLITE_MAGIC):
                raise CommandError(
                    f"{path} is an SQLite database, not a cache export: pass its folder as "
                    "--judge-cache-dir to use it, or write an export with `rubric-judge cache "
                    "export`"
                )
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as error:
                raise CommandError(
                    f"{path} is not UTF-8 text (line {number}, byte 0x{data[error.start]:02x} at "
                    f"column {error.start + 1}): {_FIX}; nothing was imported"
                ) from None
            if text.strip():
                yield number, text


def _check_line(text: str) -> CacheEntry | tuple[str, bool]:
    """The entry on one line of an export, or why it is refused and whether the line is
    not even a JSON object (a file that is not an export at all)."""
    try:
        entry = CacheEntry.model_validate_json(text)
    except ValidationError as error:
        kinds = {detail["type"] for detail in error.errors()}
        return f"not a cache entry ({first_error(error)})", bool(
            kinds & {"json_invalid", "model_type"}
        )
    except ValueError:  # a number too long for Python to read, and the like
        return "not a cache entry (a value cannot be read)", False
    if not entry.is_consistent():
        return "the entry's key is not the hash of its fields (edited by hand?)", False
    problem = answer_problem(entry)
    if problem is not None:
        return f"refused: {problem}", False
    return entry


def _read_entries(path: Path) -> list[CacheEntry]:
    """Every entry of an export file, all checked before any is imported.

    Raises CommandError naming each refused entry (up to `_LISTED`) and their count;
    then nothing is imported.
    """
    entries: list[CacheEntry] = []
    refused: list[str] = []
    total = 0
    for number, text in _read_lines(path):
        total += 1
        checked = _check_line(text)
        if isinstance(checked, CacheEntry):
            entries.append(checked)
            continue
        reason, not_json = checked
        if not_json and total == 1:
            raise CommandError(
                f"{path} is not a cache export (line {number} is not a JSON object of a "
                f"cached judge call): {_FIX}"
            )
        refused.append(f"{path}:{number}: {reason}")
    if refused:
        listed = refused[:_LISTED]
        if len(refused) > _LISTED:
            listed.append(f"... and {len(refused) - _LISTED} more")
        raise CommandError(
            f"{path}: {len(refused)} of {total} entries refused, nothing was imported; "
            "re-export them from a cache that holds them intact, or remove those lines:\n  "
            + "\n  ".join(listed)
        )
    return entries


def run_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    entries = _read_entries(path)  # all checked before any write
    added = replaced = same = 0
    with _open(args, write=True, existing=False) as cache:
        try:
            with cache.deferred_writes(_IMPORT_BATCH):
                for entry in entries:
                    old = cache.get(entry.key)
                    if old == entry:
                        same += 1
                        continue
                    cache.put(entry, checked=True)  # checked above, line by line
                    if old is None:
                        added += 1
                    else:
                        replaced += 1
        except CacheError as error:
            raise CommandError(str(error)) from None
        _report_recovery(cache)
        directory = cache.directory
    _say(
        f"imported {len(entries)} entries from {path} into {directory}: {added} new, "
        f"{replaced} replaced, {same} already there"
    )
    return 0


def cache_stats(cache: JudgeCache) -> dict[str, Any]:
    """The numbers `cache stats` prints."""
    kinds: Counter[str] = Counter()
    models: Counter[str] = Counter()
    created: list[float] = []
    prompt_tokens = completion_tokens = 0
    for entry in cache.entries():
        kinds[str(entry.fields.get("kind", "?"))] += 1
        models[str(entry.fields.get("model", entry.model)) or "?"] += 1
        created.append(entry.created_at)
        prompt_tokens += entry.usage.prompt_tokens
        completion_tokens += entry.usage.completion_tokens
    directory = cache.directory
    size = 0
    if directory is not None and directory.is_dir():
        size = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    return {
        "directory": str(directory),
        "entries": sum(kinds.values()),
        "kinds": dict(sorted(kinds.items())),
        "models": dict(sorted(models.items())),
        "damaged_entries": cache.corrupt,
        "oldest": min(created) if created else None,
        "newest": max(created) if created else None,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "bytes_on_disk": size,
    }


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def run_stats(args: argparse.Namespace) -> int:
    with _open(args, write=False) as cache:
        try:
            numbers = cache_stats(cache)
        except CacheError as error:
            raise CommandError(str(error)) from None
    if args.json:
        print(json.dumps(numbers, indent=2, sort_keys=True))
        return 0
    kinds = ", ".join(f"{count} {kind}" for kind, count in numbers["kinds"].items()) or "none"
    models = ", ".join(f"{name} ({count})" for name, count in numbers["models"].items()) or "-"
    print(f"cache:        {numbers['directory']}")
    print(f"entries:      {numbers['entries']} ({kinds})")
    print(f"judge models: {models}")
    print(f"recorded:     {_when(numbers['oldest'])} to {_when(numbers['newest'])}")
    print(
        f"tokens:       {numbers['prompt_tokens']} prompt, {numbers['completion_tokens']} "
        "completion (what a cold run would spend again)"
    )
    print(f"size:         {numbers['bytes_on_disk']} bytes on disk")
    if numbers["damaged_entries"]:
        print(
            f"damaged:      {numbers['damaged_entries']} entries (never served; prune drops them)"
        )
    return 0


def _age(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} seconds"


def run_prune(args: argparse.Namespace) -> int:
    with _open(args, write=True) as cache:
        try:
            removed = cache.prune(args.older_than)
            left = len(cache)
        except CacheError as error:
            raise CommandError(str(error)) from None
        _report_recovery(cache)
    _say(f"removed {removed} entries older than {_age(args.older_than)}; {left} remain")
    return 0


def _confirm(question: str) -> bool:
    """Ask on stderr, read the answer from the terminal: only y or yes agrees."""
    print(f"{question} ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def run_clear(args: argparse.Namespace) -> int:
    with _open(args, write=True) as cache:
        if not args.yes:
            if not sys.stdin.isatty():
                raise CommandError(
                    f"cache clear removes every entry of {cache.directory}; pass --yes to "
                    "confirm (there is no terminal to ask on)"
                )
            try:
                count = len(cache)
            except CacheError as error:
                raise CommandError(str(error)) from None
            if not _confirm(f"remove all {count} entries from {cache.directory}? [y/N]"):
                _say("nothing removed")
                return 1
        try:
            removed = cache.clear()
        except CacheError as error:
            raise CommandError(str(error)) from None
        _report_recovery(cache)
    _say(f"removed {removed} entries from {cache.directory}")
    return 0
