"""The data that crosses the plugin's boundaries: rubrics, passes, verdicts.

Everything here is a pydantic model so that judge output, cache entries and reports are
validated with precise messages and serialise to JSON without custom code.

Orientation: a `PassResult` always speaks of the *original* response A and response B,
whatever slot order the judge saw. Only `PassResult.raw` is the judge's text as written,
so in the reversed pass its "A" is the original B.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Label = Literal["A>B", "B>A", "A=B", "A=B (bothbad)"]
LABELS: tuple[Label, ...] = ("A>B", "B>A", "A=B", "A=B (bothbad)")
CriterionType = Literal["scale", "binary"]
Order = Literal["forward", "reversed"]
#: A scale score is an integer 1-5, a binary score a bool.
ScoreValue = bool | int

SCALE_MIN = 1
SCALE_MAX = 5
WEIGHT_TOLERANCE = 0.01
NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Criterion(_Model):
    """One weighted criterion of a rubric.

    A negative weight makes the criterion a penalty (for example "invents a statistic"):
    its normalized score is subtracted instead of added. Only a test's own criteria may
    carry penalties; a rubric the judge writes has positive weights only.
    """

    name: str = Field(min_length=1, max_length=40, pattern=NAME_PATTERN)
    description: str = ""
    weight: float
    type: CriterionType = "scale"

    @field_validator("weight")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value) or value == 0:
            raise ValueError("weight must be a finite number other than 0")
        return value

    @property
    def is_penalty(self) -> bool:
        return self.weight < 0

    def check_score(self, value: ScoreValue) -> None:
        """Raise ValueError unless `value` is a valid score for this criterion's type."""
        if self.type == "binary":
            if not isinstance(value, bool):
                raise ValueError(f"criterion {self.name!r} is binary: score must be true or false")
        elif isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"criterion {self.name!r} is a scale: score must be an integer 1-5")
        elif not SCALE_MIN <= value <= SCALE_MAX:
            raise ValueError(
                f"criterion {self.name!r}: score {value} is outside {SCALE_MIN}-{SCALE_MAX}"
            )

    def normalize(self, value: ScoreValue) -> float:
        """Map a score to [0, 1]: scale s -> (s - 1) / 4, binary true/false -> 1.0 / 0.0."""
        self.check_score(value)
        if self.type == "binary":
            return 1.0 if value else 0.0
        return (int(value) - SCALE_MIN) / (SCALE_MAX - SCALE_MIN)


class Rubric(_Model):
    """The criteria for one prompt, generated once by the judge or given by the test."""

    criteria: tuple[Criterion, ...] = Field(min_length=1)
    source: Literal["judge", "user"] = "judge"
    warnings: tuple[str, ...] = ()

    @field_validator("criteria")
    @classmethod
    def _unique(cls, criteria: tuple[Criterion, ...]) -> tuple[Criterion, ...]:
        seen: set[str] = set()
        for criterion in criteria:
            if criterion.name in seen:
                raise ValueError(f"criterion {criterion.name!r} appears more than once")
            seen.add(criterion.name)
        return criteria

    @classmethod
    def of(
        cls,
        criteria: Rubric | Iterable[Criterion | Mapping[str, object]],
        *,
        source: Literal["judge", "user"] = "user",
    ) -> Rubric:
        """Build a normalized rubric from criteria objects or plain dicts."""
        if isinstance(criteria, Rubric):
            return criteria.normalized()
        items = [
            c if isinstance(c, Criterion) else Criterion.model_validate(dict(c)) for c in criteria
        ]
        return cls(criteria=tuple(items), source=source).normalized()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.criteria)

    def get(self, name: str) -> Criterion | None:
        for criterion in self.criteria:
            if criterion.name == name:
                return criterion
        return None

    def normalized(self) -> Rubric:
        """Positive weights rescaled to sum to 1, penalties by the same factor.

        A warning is recorded when the positive weights did not sum to 1 (within 0.01).
        """
        total = sum(c.weight for c in self.criteria if c.weight > 0)
        if total <= 0:
            raise ValueError("a rubric needs at least one criterion with a positive weight")
        if abs(total - 1.0) <= WEIGHT_TOLERANCE:
            return self
        criteria = tuple(c.model_copy(update={"weight": c.weight / total}) for c in self.criteria)
        note = f"rubric weights summed to {total:.3g}, not 1; renormalized"
        return self.model_copy(update={"criteria": criteria, "warnings": (*self.warnings, note)})

    def canonical(self) -> list[dict[str, object]]:
        """The criteria as plain data, in order: what the cache key and the templates use."""
        return [c.model_dump() for c in self.criteria]


class Usage(_Model):
    """Token counts reported by the server (zero when it reported none)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class CriterionScore(_Model):
    """Both responses' scores on one criterion in one pass (original A and B)."""

    name: str
    score_a: ScoreValue
    score_b: ScoreValue
    justification_a: str = ""
    justification_b: str = ""


class SlotScores(_Model):
    """A parsed pairwise answer exactly as the judge gave it, in slot terms.

    This is what the cache stores; orientation happens when a verdict is built, so a
    change to reconciliation never needs the judge again.
    """

    scores: tuple[CriterionScore, ...]
    preference: Label
    overall_justification: str = ""
    warnings: tuple[str, ...] = ()


class CallInfo(_Model):
    """Bookkeeping of one judge call (or of the cache entry that replaced it)."""

    raw: str = ""
    usage: Usage = Usage()
    latency_s: float = 0.0
    cached: bool = False
    repaired: bool = False
    retries: int = 0
    model: str = ""


class PassResult(_Model):
    """One pass, oriented to the original responses: A is `response_a` whatever the slot."""

    order: Order
    scores: tuple[CriterionScore, ...]
    preference: Label
    overall_justification: str = ""
    weighted_a: float
    weighted_b: float
    warnings: tuple[str, ...] = ()
    call: CallInfo = CallInfo()

    @property
    def raw(self) -> str:
        """The judge's text as written (slot terms: in the reversed pass its A is our B)."""
        return self.call.raw

    @property
    def margin(self) -> float:
        return self.weighted_a - self.weighted_b

    def score(self, name: str) -> CriterionScore | None:
        for item in self.scores:
            if item.name == name:
                return item
        return None


class GradeScore(_Model):
    """One criterion's score of a single response (pointwise)."""

    name: str
    score: ScoreValue
    justification: str = ""


class GradeAnswer(_Model):
    """A parsed pointwise answer, as the cache stores it."""

    scores: tuple[GradeScore, ...]
    overall_justification: str = ""
    warnings: tuple[str, ...] = ()


class Grade(_Model):
    """A single response graded against the prompt's rubric (no baseline).

    `score` is the weighted score in [0, 1]. With several samples, `samples` holds each
    grading, `score` is their mean and `scores` the per-criterion median (binary: the
    majority).
    """

    score: float
    rubric: Rubric
    scores: tuple[GradeScore, ...]
    overall_justification: str = ""
    warnings: tuple[str, ...] = ()
    call: CallInfo = CallInfo()
    cached: bool = False
    prompt: str = ""
    reference: str | None = None
    response: str = ""
    judge_model: str = ""
    samples: tuple[Grade, ...] = ()
    #: What `samples` holds when it is not empty: repeated "samples" or a panel's "judges".
    combined: Literal["samples", "judges"] | None = None

    @property
    def raw(self) -> str:
        return self.call.raw

    def score_of(self, name: str) -> GradeScore | None:
        for item in self.scores:
            if item.name == name:
                return item
        return None


class Verdict(_Model):
    """The reconciliation of a forward and a reversed pass.

    `weighted_a`, `weighted_b` and `margin` (= weighted_a - weighted_b, positive favours A)
    are the means over both passes. They are observability: `preference` comes from the
    judge's labels, unless the verdict was `rescored`.
    """

    preference: Label
    consistent: bool
    weighted_a: float
    weighted_b: float
    margin: float
    rubric: Rubric
    forward: PassResult
    reversed: PassResult
    warnings: tuple[str, ...] = ()
    cached: bool = False
    prompt: str = ""
    reference: str | None = None
    response_a: str = ""
    response_b: str = ""
    judge_model: str = ""
    rescored_with: dict[str, object] | None = None
    #: With repeated samples: each sample's verdict, and the votes per reconciled label.
    samples: tuple[Verdict, ...] = ()
    votes: dict[str, int] | None = None
    #: With a panel of judges: each judge's verdict, how the panel decided, and the share
    #: of pairs of judges that agree.
    panel: tuple[Verdict, ...] = ()
    panel_strategy: str | None = None
    panel_agreement: float | None = None

    @property
    def vote_split(self) -> str | None:
        """`4-1`: votes for the preferred label against all others, when sampled."""
        if not self.votes:
            return None
        favour = self.votes.get(self.preference, 0)
        return f"{favour}-{sum(self.votes.values()) - favour}"

    @model_validator(mode="after")
    def _margin_matches(self) -> Verdict:
        if abs(self.margin - (self.weighted_a - self.weighted_b)) > 1e-9:
            raise ValueError("margin must equal weighted_a - weighted_b")
        return self

    @property
    def passes(self) -> tuple[PassResult, PassResult]:
        return (self.forward, self.reversed)

    @property
    def usage(self) -> Usage:
        return self.forward.call.usage + self.reversed.call.usage

    def rescored(
        self,
        weights: Mapping[str, float] | None = None,
        drop: Iterable[str] = (),
        tie_band: float = 0.05,
    ) -> Verdict:
        """Recompute scores with other weights or without some criteria, offline.

        The preference is then derived from the margin: A>B above `tie_band`, B>A below
        `-tie_band`, else A=B. No judge call is made.
        """
        from .scoring import rescore

        return rescore(self, weights=weights, drop=drop, tie_band=tie_band)


Grade.model_rebuild()
Verdict.model_rebuild()
