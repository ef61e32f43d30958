"""The judge: rubric, then two passes in both orders, then a verdict.

`Judge` is a facade: it builds, from a frozen `JudgeConfig`, the client (one endpoint or
several), the cache and the `CallCore` that holds every rule of a judge call, and runs the
coroutines of `plans` (written once for this blocking path and for the batch path) on a
background event loop, sending requests from a small thread pool. A rubric depends on the
prompt alone, so it is generated once per (prompt, reference) and reused for both orders
and for every pair of responses to that prompt.

`JudgeLike` is what an assertion, a fixture or a hook needs of a judge; `Judge` and
`JudgePanel` both are one.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .cache import CacheMode, JudgeCache
from .calls import CallCore
from .callspec import JudgeStats, Request
from .client import ChatClient
from .config import (
    DEFAULT_MAX_INPUT_CHARS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_TOKENS,
    DEFAULT_TIMEOUT,
    STRUCTURED_MODES,
    JudgeConfig,
    StructuredMode,
)
from .credentials import Secret
from .endpoints import MultiClient, split_urls
from .errors import JudgeNotConfiguredError
from .http_policy import Completion
from .inputs import ContextInput, PromptInput, ResponseInput
from .loops import LoopThread
from .models import Grade, Rubric, Usage, Verdict
from .plans import CriteriaArg, Runner, threaded_calls

__all__ = [
    "DEFAULT_MAX_INPUT_CHARS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_TIMEOUT",
    "STRUCTURED_MODES",
    "CriteriaArg",
    "Judge",
    "JudgeLike",
    "JudgeStats",
    "Usage",
]


@runtime_checkable
class JudgeLike(Protocol):
    """What the assertions, fixtures and hooks use of a judge or a panel."""

    @property
    def model(self) -> str: ...

    def rubric(
        self, prompt: PromptInput, *, reference: str | None = None, context: ContextInput = None
    ) -> Rubric: ...

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
    ) -> Verdict: ...

    def grade(
        self,
        prompt: PromptInput,
        response: ResponseInput,
        *,
        criteria: CriteriaArg = None,
        reference: str | None = None,
        context: ContextInput = None,
        samples: int | None = None,
    ) -> Grade: ...

    def stats_totals(self) -> dict[str, int]: ...

    def close(self) -> None: ...


#: The loop on which every blocking judge (and panel) in the process runs its plans.
_LOOP = LoopThread()
#: Plans of blocking judges: each call runs in its judge's pool, sent by its client.
_RUNNER = Runner(threaded_calls())


class Judge:
    """A judge model behind an OpenAI-compatible chat-completions endpoint.

    `base_url` may be None: the judge then answers from its cache only, and a comparison
    that is not cached raises `JudgeNotConfiguredError`. `model` may be None when the
    server serves one model: it is asked for its model list on first use. `api_key` may be
    text or a `Secret`; it is never shown.
    """

    def __init__(
        self,
        base_url: str | None,
        model: str | None,
        *,
        api_key: str | Secret | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_mode: CacheMode = "rw",
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        temperature: float = 0.0,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        top_p: float | None = None,
        seed: int | None = None,
        min_criteria: int = 2,
        max_criteria: int = 8,
        max_input_chars: int = DEFAULT_MAX_INPUT_CHARS,
        concurrency: int = 8,
        samples: int = 1,
        structured_output: StructuredMode = "auto",
        client: ChatClient | MultiClient | None = None,
    ) -> None:
        config = JudgeConfig(
            urls=tuple(split_urls(base_url)) if base_url else (),
            model=model,
            api_key=Secret.of(api_key),
            timeout=timeout,
            max_retries=max_retries,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            seed=seed,
            min_criteria=min_criteria,
            max_criteria=max_criteria,
            max_input_chars=max_input_chars,
            concurrency=concurrency,
            samples=samples,
            structured_output=structured_output,
        )
        if cache_dir is None:
            cache_mode = "off"
        self.config = config
        self.cache = JudgeCache(Path(cache_dir) if cache_dir is not None else None, cache_mode)
        if client is None and config.urls:
            options: dict[str, Any] = {
                "api_key": config.api_key,
                "timeout": config.timeout,
                "max_retries": config.max_retries,
            }
            client = (
                ChatClient(config.urls[0], **options)
                if len(config.urls) == 1
                else MultiClient.from_urls(config.urls, **options)
            )
        self.client: ChatClient | MultiClient | None = client
        self._model = model
        self._model_lock = threading.Lock()
        self.core = CallCore(
            config, self.cache, model=lambda: self.model, can_ask=client is not None
        )
        self._pool = ThreadPoolExecutor(
            max_workers=max(2, config.concurrency), thread_name_prefix="judge"
        )
        self.core.executor = self._pool
        self.core.send = self._send if client is not None else None

    def __repr__(self) -> str:
        # Never show credentials: a URL may carry user:password@.
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self._model!r}, "
            f"cache={self.cache.mode})"
        )

    # -- configuration ---------------------------------------------------------------

    @property
    def base_url(self) -> str | None:
        """The endpoint(s), comma-separated, without any user:password part."""
        return self.config.display_urls

    @property
    def model(self) -> str:
        """The judge model's name; asked of the server when it was not given.

        The first model the server lists (`GET /v1/models`) is used; when it lists several,
        a `UserWarning` names the one chosen and the others. A server that lists none is a
        `JudgeNotConfiguredError` naming the fix. In replay mode the server is never asked:
        the name is what was configured.
        """
        if self._model is None and self.cache.mode != "replay" and self.client is not None:
            with self._model_lock:
                if self._model is None:
                    models = self.client.list_models()
                    if not models:
                        raise JudgeNotConfiguredError(
                            f"the judge server at {self.base_url} lists no models at "
                            "GET /v1/models; name the model with --judge-model or "
                            "RUBRIC_JUDGE_MODEL"
                        )
                    if len(models) > 1:
                        others = ", ".join(models[1:10]) + (", ..." if len(models) > 10 else "")
                        warnings.warn(
                            f"the judge server lists {len(models)} models; judging with the "
                            f"first, {models[0]!r} (also listed: {others}); pin one with "
                            "--judge-model or RUBRIC_JUDGE_MODEL",
                            UserWarning,
                            stacklevel=1,  # here: a caller may be `isinstance(x, JudgeLike)`
                        )
                    self._model = models[0]
        return self._model or ""

    @property
    def stats(self) -> JudgeStats:
        return self.core.stats

    def stats_totals(self) -> dict[str, int]:
        return self.core.stats.as_dict()

    @property
    def samples(self) -> int:
        return self.config.samples

    @property
    def seed(self) -> int | None:
        return self.config.seed

    @property
    def structured_output(self) -> StructuredMode:
        return self.config.structured_output

    @property
    def structured_dialect(self) -> str:
        """The structured-output dialect the server answered in ("json_schema",
        "json_object_schema", ...; see `dialects`), "off" when answers are not
        constrained, or "unprobed" before any constrained answer came back."""
        state = self.core.dialects
        if state.current is None:
            return "off"
        return state.current if state.confirmed else "unprobed"

    @property
    def structured_summary(self) -> str:
        """One line for reports: the dialect and what the server refused."""
        return self.core.dialects.summary()

    @property
    def sampling(self) -> dict[str, object]:
        """Sampling parameters: part of every cache key."""
        return self.core.sampling()

    def close(self) -> None:
        """Stop the worker threads and close connections and the cache."""
        self._pool.shutdown(wait=True)
        if self.client is not None:
            self.client.close()
        self.cache.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, request: Request) -> Completion:
        assert self.client is not None
        return self.client.complete(request.messages, **self.core.request_options(request))

    # -- public API ------------------------------------------------------------------

    def rubric(
        self, prompt: PromptInput, *, reference: str | None = None, context: ContextInput = None
    ) -> Rubric:
        """Phase 1: the criteria for this prompt, generated once and reused."""
        return _LOOP.run(_RUNNER.rubric(self.core, prompt, reference, context))

    def rubric_for(
        self, prompt: PromptInput, reference: str | None, criteria: CriteriaArg
    ) -> Rubric:
        """The test's own criteria as a rubric, else the judge's rubric for the prompt."""
        return _LOOP.run(_RUNNER.rubric_for(self.core, prompt, reference, criteria))

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
        first_sample: int = 0,
    ) -> Verdict:
        """Judge A against B in both slot orders and reconcile the two passes.

        All passes are sent concurrently. With `criteria`, phase 1 is skipped. With
        `samples` (default: the judge's `samples`), each order is judged that many times
        with its own seed, and the preference is the majority of the reconciled samples.
        `first_sample` starts at a later sample index (a sequential test's next batch).
        """
        return _LOOP.run(
            _RUNNER.compare(
                self.core,
                prompt,
                response_a,
                response_b,
                criteria=criteria,
                reference=reference,
                context=context,
                samples=samples,
                first_sample=first_sample,
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
        """Each sample's verdict, samples `first` to `first + count - 1`, concurrently."""
        verdict = self.compare(
            prompt,
            response_a,
            response_b,
            criteria=criteria,
            reference=reference,
            context=context,
            samples=count,
            first_sample=first,
        )
        return verdict.samples or (verdict,)

    def grade(
        self,
        prompt: PromptInput,
        response: ResponseInput,
        *,
        criteria: CriteriaArg = None,
        reference: str | None = None,
        context: ContextInput = None,
        samples: int | None = None,
        first_sample: int = 0,
    ) -> Grade:
        """Grade one response against the prompt's rubric (shared with pairwise judging).

        One pointwise pass per sample; the weighted score is in [0, 1].
        """
        return _LOOP.run(
            _RUNNER.grade(
                self.core,
                prompt,
                response,
                criteria=criteria,
                reference=reference,
                context=context,
                samples=samples,
                first_sample=first_sample,
            )
        )

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
        """Each sample's grade, samples `first` to `first + count - 1`, concurrently."""
        grade = self.grade(
            prompt,
            response,
            criteria=criteria,
            reference=reference,
            context=context,
            samples=count,
            first_sample=first,
        )
        return grade.samples or (grade,)

    def compare_many(
        self, rows: Iterable[Any], *, concurrency: int = 32, **options: Any
    ) -> Iterable[Any]:
        """Judge many rows concurrently, yielding `batch.RowResult`s as they finish.

        Rows are mappings with `prompt`, `response_A`, `response_B` (optional `id`,
        `reference`); see `pytest_rubric_judge.batch.compare_many` for the options.
        """
        from .batch import compare_many

        return compare_many(self, rows, concurrency=concurrency, **options)


def blocking_runner() -> tuple[LoopThread, Runner]:
    """The loop and runner on which blocking judges and panels run their plans."""
    return _LOOP, _RUNNER
