"""The data that crosses the plugin's boundaries: rubrics, passes, verdicts.

Everything here is a pydantic model so that judge output, cache entries and reports are
validated with precise messages and serialise to JSON without custom code.

Orientation: a `PassResult` always speaks of the *original* response A and response B,
whatever slot order the judge saw. Only `PassResult.raw` is the judge's text as written,
so in the reversed pass its "A" is the original B.

Weighted scores are computed here, in one place (`Rubric.weighted`), because a verdict can
be rescored offline (`Verdict.rescored`) without anything but its own data; `scoring`
builds on these models and never the other way round.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .sequential import Decision

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
#: A rescored verdict's margin within this band of 0 is a tie.
DEFAULT_TIE_BAND = 0.05


def normalized_weights(weights: Sequence[float]) -> tuple[float, ...]:
    """`weights` rescaled so that the positive ones sum to 1; penalties by the same factor.

    Every weight is divided by the largest positive one before anything is summed, so
    weights near the largest float (1e308) cannot overflow their sum and tiny ones cannot
    underflow it. Raises ValueError when no weight is positive, or when the weights are
    so far apart that one of them would become 0 or infinite.
    """
    positive = [weight for weight in weights if weight > 0]
    if not positive:
        raise ValueError("a rubric needs at least one criterion with a positive weight")
    largest = max(positive)
    total = sum(weight / largest for weight in positive)  # between 1 and len(positive)
    result = tuple(weight / largest / total for weight in weights)
    for before, after in zip(weights, result, strict=True):
        if not math.isfinite(after) or (after == 0) != (before == 0):
            raise ValueError(
                f"criterion weights are too far apart to normalize ({before:.3g} next to "
                f"{largest:.3g}); give weights within a factor of 1e300 of each other"
            )
    return result


def label_from_margin(margin: float, tie_band: float = DEFAULT_TIE_BAND) -> Label:
    """A>B above the tie band, B>A below minus the band, else A=B."""
    if margin > tie_band:
        return "A>B"
    if margin < -tie_band:
        return "B>A"
    return "A=B"


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
        if type(value) is int and SCALE_MIN <= value <= SCALE_MAX and self.type == "scale":
            return (value - SCALE_MIN) / (SCALE_MAX - SCALE_MIN)  # (a valid scale score)
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
        Raises ValueError when no weight is positive or the weights cannot be normalized
        (see `normalized_weights`).
        """
        total = sum(c.weight for c in self.criteria if c.weight > 0)  # inf when it overflows
        if total > 0 and abs(total - 1.0) <= WEIGHT_TOLERANCE:
            return self
        weights = normalized_weights([c.weight for c in self.criteria])
        criteria = tuple(
            c.model_copy(update={"weight": weight})
            for c, weight in zip(self.criteria, weights, strict=True)
        )
        shown = f"{total:.3g}" if math.isfinite(total) else f"more than {sys.float_info.max:.3g}"
        note = f"rubric weights summed to {shown}, not 1; renormalized"
        return self.model_copy(update={"criteria": criteria, "warnings": (*self.warnings, note)})

    def weighted(self, values: Mapping[str, ScoreValue]) -> float:
        """One response's weighted score in [0, 1]: the sum over criteria of weight times
        normalized score, with the weights of `normalized` (a rubric built with `of` is
        already normalized). Penalties subtract; the result is clipped to [0, 1].

        This is the package's only weighted-score computation: pairwise, pointwise and
        rescoring all come here. Raises ValueError for a missing or invalid score.
        """
        total = 0.0
        for criterion in self.normalized().criteria:
            if criterion.name not in values:
                raise ValueError(f"criterion {criterion.name!r} has no score")
            total += criterion.weight * criterion.normalize(values[criterion.name])
        return min(1.0, max(0.0, total))

    def weighted_pair(self, scores: Iterable[CriterionScore]) -> tuple[float, float]:
        """(weighted A, weighted B) of one pass's scores."""
        items = list(scores)
        return (
            self.weighted({s.name: s.score_a for s in items}),
            self.weighted({s.name: s.score_b for s in items}),
        )

    def reweighted(
        self, weights: Mapping[str, float] | None = None, drop: Iterable[str] = ()
    ) -> Rubric:
        """The rubric with some weights replaced and some criteria dropped, renormalized.

        Raises ValueError for an unknown criterion, a weight that is 0 or not finite, or
        a result without a positive weight.
        """
        new_weights: dict[str, float] = {}
        for name, weight in (weights or {}).items():
            try:
                value = float(weight)
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value) or value == 0:
                raise ValueError(
                    f"weight for {name!r} is {weight!r}: it must be non-zero and finite "
                    "(drop the criterion instead of weighting it 0)"
                )
            new_weights[name] = value
        dropped = set(drop)
        unknown = (set(new_weights) | dropped) - set(self.names)
        if unknown:
            raise ValueError(
                f"unknown criteria {sorted(unknown)}; this rubric has {list(self.names)}"
            )
        kept = [c for c in self.criteria if c.name not in dropped]
        if not kept:
            raise ValueError("rescoring would drop every criterion; keep at least one")
        if not any(new_weights.get(c.name, c.weight) > 0 for c in kept):
            raise ValueError("rescoring needs at least one criterion with a positive weight")
        normalized = normalized_weights([new_weights.get(c.name, c.weight) for c in kept])
        criteria = tuple(
            c.model_copy(update={"weight": weight})
            for c, weight in zip(kept, normalized, strict=True)
        )
        return self.model_copy(update={"criteria": criteria, "warnings": ()})

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
    #: With a confidence (sequential judging): what the test decided, on which samples.
    sequential: Decision | None = None

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
    #: With a confidence (sequential judging): what the test decided, on which samples.
    sequential: Decision | None = None

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
        tie_band: float = DEFAULT_TIE_BAND,
    ) -> Verdict:
        """Recompute scores with other weights or without some criteria, offline.

        The preference is then derived from the margin: A>B above `tie_band`, B>A below
        `-tie_band`, else A=B. No judge call is made. Raises ValueError for an unknown
        criterion, a weight that is 0 or not finite (an infinite weight would make every
        margin a silent tie), or a negative `tie_band`.
        """
        if not tie_band >= 0:  # also refuses NaN
            raise ValueError("tie_band must be >= 0")
        drop = tuple(drop)
        rubric = self.rubric.reweighted(weights, drop)
        keep = set(rubric.names)
        passes = []
        for item in self.passes:
            scores = tuple(s for s in item.scores if s.name in keep)
            weighted_a, weighted_b = rubric.weighted_pair(scores)
            passes.append(
                item.model_copy(
                    update={
                        "scores": scores,
                        "weighted_a": weighted_a,
                        "weighted_b": weighted_b,
                        "preference": label_from_margin(weighted_a - weighted_b, tie_band),
                    }
                )
            )
        forward, reversed_ = passes
        weighted_a = (forward.weighted_a + reversed_.weighted_a) / 2
        weighted_b = (forward.weighted_b + reversed_.weighted_b) / 2
        return self.model_copy(
            update={
                "rubric": rubric,
                "forward": forward,
                "reversed": reversed_,
                "weighted_a": weighted_a,
                "weighted_b": weighted_b,
                "margin": weighted_a - weighted_b,
                "preference": label_from_margin(weighted_a - weighted_b, tie_band),
                "consistent": forward.preference == reversed_.preference,
                "rescored_with": {
                    "weights": dict(weights or {}),
                    "drop": list(drop),
                    "tie_band": tie_band,
                },
            }
        )


Grade.model_rebuild()
Verdict.model_rebuild()
