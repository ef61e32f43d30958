"""Exceptions raised by the judge.

`JudgeError` is deliberately *not* an `AssertionError`: a judge that cannot give a
verdict has not said the candidate is worse, so a test that hits it is reported as an
error, never as a pass or a fail.
"""

from __future__ import annotations


class JudgeError(Exception):
    """The judge could not give a verdict.

    The message states the cause and the fix in one line. It never contains an API key.
    """

    #: Short machine-readable cause, used in reports and counters.
    kind: str = "judge_error"

    def __init__(self, message: str, *, raw: str | None = None, retries: int = 0) -> None:
        super().__init__(message)
        self.message = message
        #: The judge's last answer, when the failure is about its content.
        self.raw = raw
        #: Attempts beyond the first that were made before giving up, for the run's totals.
        self.retries = retries


class JudgeNotConfiguredError(JudgeError):
    """No judge endpoint was configured and the cache did not hold the answer."""

    kind = "not_configured"


class JudgeUnavailableError(JudgeError):
    """The endpoint could not be reached or kept failing after every retry."""

    kind = "unavailable"
    #: The HTTP status of the final answer, when there was one.
    status: int | None = None
    #: Why: "status" (an HTTP error status), "bad_body" (not a chat completion), or how the
    #: connection failed: "refused", "unreachable", "connect_timeout", "timeout", "reset",
    #: "too_large", "config".
    cause: str = "status"
    #: What the server said in an error body, for decisions such as the structured-output
    #: fallback (already in the message, shortened and without credentials).
    said: str = ""

    @property
    def failover(self) -> bool:
        """Whether another replica of the same model may well succeed: the endpoint could
        not be reached or is failing (a connection failure, a timeout, HTTP 408/429/5xx
        other than 501). A request the server refuses (4xx, 501) fails the same everywhere.
        """
        if self.cause == "status":
            return self.status is not None and (
                self.status in (408, 429) or (500 <= self.status < 600 and self.status != 501)
            )
        return self.cause in ("refused", "unreachable", "connect_timeout", "timeout", "reset")


class JudgeOutputError(JudgeError):
    """The judge answered, but not in the protocol's format, even after one repair request."""

    kind = "unparseable"


class CacheMissError(JudgeError):
    """Replay mode needed a judge call that the cache does not hold."""

    kind = "cache_miss"


class InputTooLargeError(JudgeError):
    """A prompt or response exceeds the configured size limit; refused before any request."""

    kind = "input_too_large"


class ImagesRefusedError(JudgeError):
    """The judge's server refused a request because it holds images (not a vision model)."""

    kind = "images_refused"


class ParseError(ValueError):
    """One attempt at reading judge output failed. The message is sent back as a repair request."""


class JudgeBuildError(JudgeError):
    """The judge could not be built (a bad setting, a judge server that did not start, a
    project's make-judge hook that raised); every test that needs it reports this."""

    kind = "build"
