"""A panel of judges: several models judge the same comparison, the panel decides.

One judge (by default the first) writes the rubric, so every judge scores the same
criteria; each judge then gives its own both-order verdict, concurrently, and
`scoring.combine_panel` turns them into the panel's verdict. A panel is a `JudgeLike`
(`compare`, `grade`, `rubric`, `stats_totals`, `close`), so `judge=panel` works wherever a
judge does; its plans are the judge's own (`plans.Runner.panel_compare`).
"""

from __future__ import annotations

from collections.abc import Sequence

from .inputs import ContextInput, PromptInput, ResponseInput
from .judge import CriteriaArg, Judge, blocking_runner
from .models import Grade, Rubric, Verdict
from .plans import gather_all
from .scoring import DEFAULT_TIE_BAND, PANEL_STRATEGIES, PanelStrategy


class JudgePanel:
    """Several judges deciding together: majority, unanimous or mean margin."""

    def __init__(
        self,
        judges: Sequence[Judge],
        *,
        strategy: PanelStrategy = "majority",
        rubric_judge: int = 0,
        tie_band: float = DEFAULT_TIE_BAND,
    ) -> None:
        if len(judges) < 2:
            raise ValueError("a panel needs at least two judges")
        if strategy not in PANEL_STRATEGIES:
            raise ValueError(
                f"unknown panel strategy {strategy!r}; choose one of {', '.join(PANEL_STRATEGIES)}"
            )
        if not 0 <= rubric_judge < len(judges):
            raise ValueError(f"rubric_judge must index one of the {len(judges)} judges")
        self.judges = tuple(judges)
        self.strategy: PanelStrategy = strategy
        self.rubric_judge = rubric_judge
        self.tie_band = tie_band

    def __repr__(self) -> str:
        models = ", ".join(repr(j) for j in self.judges)
        return f"JudgePanel([{models}], strategy={self.strategy!r})"

    @property
    def model(self) -> str:
        return ",".join(j.model for j in self.judges)

    def rubric(
        self, prompt: PromptInput, *, reference: str | None = None, context: ContextInput = None
    ) -> Rubric:
        """The rubric judge's rubric, which every judge of the panel scores."""
        return self.judges[self.rubric_judge].rubric(prompt, reference=reference, context=context)

    def compare(
        self,
        prompt: PromptInput,
        response_a: ResponseInput,
        response_b: ResponseInput,
        *,
        criteria: CriteriaArg = None,
        reference: str | None = None,
        context: ContextInput = None,
        samples: int | None = None,
    ) -> Verdict:
        """Every judge's both-order verdict on the same rubric, combined by the strategy."""
        loop, runner = blocking_runner()
        return loop.run(
            runner.panel_compare(
                [j.core for j in self.judges],
                self.judges[self.rubric_judge].core,
                self.strategy,
                prompt,
                response_a,
                response_b,
                criteria=criteria,
                reference=reference,
                context=context,
                samples=samples,
                tie_band=self.tie_band,
            )
        )

    def grade(
        self,
        prompt: PromptInput,
        response: ResponseInput,
        *,
        criteria: CriteriaArg = None,
        reference: str | None = None,
        context: ContextInput = None,
        samples: int | None = None,
    ) -> Grade:
        """Every judge grades the response on the same rubric; the panel's score is the mean."""
        loop, runner = blocking_runner()
        return loop.run(
            runner.panel_grade(
                [j.core for j in self.judges],
                self.judges[self.rubric_judge].core,
                prompt,
                response,
                criteria=criteria,
                reference=reference,
                context=context,
                samples=samples,
            )
        )

    def compare_samples(
        self,
        prompt: PromptInput,
        response_a: ResponseInput,
        response_b: ResponseInput,
        *,
        first: int,
        count: int,
        criteria: CriteriaArg = None,
        reference: str | None = None,
        context: ContextInput = None,
    ) -> tuple[Verdict, ...]:
        """The panel's verdict on each sample, `first` to `first + count - 1`: every judge's
        sample i combined by the strategy, all concurrently (a sequential test's batch)."""
        loop, runner = blocking_runner()
        cores = [j.core for j in self.judges]
        rubric_core = self.judges[self.rubric_judge].core
        verdicts = loop.run(
            gather_all(
                runner.panel_compare(
                    cores,
                    rubric_core,
                    self.strategy,
                    prompt,
                    response_a,
                    response_b,
                    criteria=criteria,
                    reference=reference,
                    context=context,
                    samples=1,
                    tie_band=self.tie_band,
                    first_sample=index,
                )
                for index in range(first, first + count)
            )
        )
        return tuple(verdicts)

    def grade_samples(
        self,
        prompt: PromptInput,
        response: ResponseInput,
        *,
        first: int,
        count: int,
        criteria: CriteriaArg = None,
        reference: str | None = None,
        context: ContextInput = None,
    ) -> tuple[Grade, ...]:
        """The panel's grade on each sample, `first` to `first + count - 1`, concurrently."""
        loop, runner = blocking_runner()
        cores = [j.core for j in self.judges]
        rubric_core = self.judges[self.rubric_judge].core
        grades = loop.run(
            gather_all(
                runner.panel_grade(
                    cores,
                    rubric_core,
                    prompt,
                    response,
                    criteria=criteria,
                    reference=reference,
                    context=context,
                    samples=1,
                    first_sample=index,
                )
                for index in range(first, first + count)
            )
        )
        return tuple(grades)

    def stats_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for judge in self.judges:
            for name, value in judge.stats.as_dict().items():
                totals[name] = totals.get(name, 0) + value
        return totals

    def close(self) -> None:
        for judge in self.judges:
            judge.close()

    def __enter__(self) -> JudgePanel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
