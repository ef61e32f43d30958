"""One stored judge call: the key fields, the raw answer, what it parsed to, what it cost."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..models import Usage
from .keys import cache_key


class CacheEntry(BaseModel):
    """One stored judge call: the raw answer, what it parsed to, and what it cost.

    `fields` are the key fields the entry was stored under, kept so that a cache can be
    inspected and so that a damaged entry is detected: `key` must be their hash, and
    `parsed` must be what `raw` reads as with the inputs the fields hold (`integrity`).
    Times are finite numbers, so that every entry can be exported as JSON.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=r"^[0-9a-f]{64}$")
    fields: dict[str, object]
    raw: str
    parsed: dict[str, object]
    usage: Usage = Usage()
    latency_s: float = Field(default=0.0, allow_inf_nan=False)
    created_at: float = Field(default_factory=time.time, allow_inf_nan=False)
    model: str = ""

    @classmethod
    def for_fields(
        cls,
        fields: Mapping[str, object],
        *,
        raw: str,
        parsed: Mapping[str, object],
        usage: Usage | None = None,
        latency_s: float = 0.0,
        model: str = "",
    ) -> CacheEntry:
        """An entry whose key is computed from `fields`, stamped with the current time."""
        return cls(
            key=cache_key(fields),
            fields=dict(fields),
            raw=raw,
            parsed=dict(parsed),
            usage=usage if usage is not None else Usage(),
            latency_s=latency_s,
            model=model,
        )

    def is_consistent(self) -> bool:
        """Whether `key` is the hash of `fields`: false for a damaged or hand-edited entry."""
        try:
            return cache_key(self.fields) == self.key
        except (TypeError, ValueError):
            return False


def first_error(error: ValidationError) -> str:
    """Where and what the first problem of a validation error is, in one short line, as
    ASCII (the names in it may come from a damaged or hostile file)."""
    for detail in error.errors():
        where = ".".join(str(part) for part in detail["loc"]) or "entry"
        text = f"{where}: {detail['msg']}"
        return json.dumps(text, ensure_ascii=True)[1:-1][:200]
    return "invalid"
