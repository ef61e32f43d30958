"""`rubric-judge cache`: export, import, stats, prune and clear the judge cache.

`export` writes one canonical JSON line per stored judge call, sorted by key, so the same
cache always gives the same bytes and a re-recorded answer shows in review as a changed
line. `import` loads such a file (into an empty cache on a CI machine, say) so that a
suite runs with `--judge-cache=replay` and no judge at all. Every subcommand takes the
plugin's `--judge-cache-dir`, with the same environment variable and default folder.
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

from ..cache import CacheCorruptError, CacheEntry, JudgeCache, canonical_json
from ..report.run_json import write_text_atomic
from .options import CommandError, add_judge_options, cache_dir

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


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
    commands = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)

    export = commands.add_parser(
        "export", help="write every cached judge call as sorted JSON lines (FILE or - )"
    )
    export.add_argument("file", metavar="FILE.jsonl", help="where to write; - for stdout")
    add_judge_options(export, cache_only=True)
    export.set_defaults(func=run_export)

    load = commands.add_parser("import", help="load judge calls from an exported JSON lines file")
    load.add_argument("file", metavar="FILE.jsonl", help="a file written by `cache export`")
    add_judge_options(load, cache_only=True)
    load.set_defaults(func=run_import)

    stats = commands.add_parser("stats", help="count the entries, models, tokens and size")
    stats.add_argument("--json", action="store_true", help="print the numbers as JSON")
    add_judge_options(stats, cache_only=True)
    stats.set_defaults(func=run_stats)

    prune = commands.add_parser("prune", help="remove entries older than a duration")
    prune.add_argument(
        "--older-than",
        type=duration,
        required=True,
        metavar="AGE",
        help="remove entries recorded longer ago than this: 30d, 12h, 2w, ...",
    )
    add_judge_options(prune, cache_only=True)
    prune.set_defaults(func=run_prune)

    clear = commands.add_parser("clear", help="remove every entry (the folder stays)")
    add_judge_options(clear, cache_only=True)
    clear.set_defaults(func=run_clear)


def _open(args: argparse.Namespace, *, write: bool) -> JudgeCache:
    # replay never creates the folder nor writes; rw moves a damaged file aside.
    return JudgeCache(cache_dir(args), "rw" if write else "replay")


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
        except CacheCorruptError as error:
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


def _read_entries(path: Path) -> Iterator[tuple[int, CacheEntry]]:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror or error}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = CacheEntry.model_validate_json(line)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first.get("loc", ())) or "line"
                raise CommandError(
                    f"{path}:{number}: not a cache entry ({where}: {first.get('msg')}); "
                    "nothing was imported"
                ) from None
            if not entry.is_consistent():
                raise CommandError(
                    f"{path}:{number}: the entry's key is not the hash of its fields (edited "
                    "by hand?); nothing was imported"
                )
            yield number, entry


def run_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    entries = [entry for _, entry in _read_entries(path)]  # all checked before any write
    added = replaced = same = 0
    with _open(args, write=True) as cache:
        try:
            for entry in entries:
                old = cache.get(entry.key)
                if old == entry:
                    same += 1
                    continue
                cache.put(entry)
                if old is None:
                    added += 1
                else:
                    replaced += 1
        except CacheCorruptError as error:
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
        except CacheCorruptError as error:
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
        except CacheCorruptError as error:
            raise CommandError(str(error)) from None
        _report_recovery(cache)
    _say(f"removed {removed} entries older than {_age(args.older_than)}; {left} remain")
    return 0


def run_clear(args: argparse.Namespace) -> int:
    with _open(args, write=True) as cache:
        try:
            removed = cache.clear()
        except CacheCorruptError as error:
            raise CommandError(str(error)) from None
        _report_recovery(cache)
    _say(f"removed {removed} entries from {cache.directory}")
    return 0
