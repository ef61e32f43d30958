"""An endpoint as both chat-completions clients reach it: one `Target` per base URL."""

from __future__ import annotations

from dataclasses import dataclass

from .credentials import Secret, basic_auth, secret_forms, split_userinfo
from .http_policy import Policy, normalize_base_url

__all__ = ["Target", "target"]


@dataclass(frozen=True)
class Target:
    """An endpoint as both clients reach it: its URL without credentials, the value of the
    `Authorization` header (a bearer key, else HTTP Basic from the URL's user:password,
    as curl reads them), the headers every request sends, and the retry policy."""

    url: str
    authorization: Secret | None
    policy: Policy

    def headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "Accept-Encoding": "identity",  # a compressed body is still decoded, capped
            "Content-Type": "application/json",
            "User-Agent": "pytest-rubric-judge",
        }
        if self.authorization is not None:
            headers["Authorization"] = self.authorization.reveal()
        return headers

    @property
    def has_key(self) -> bool:
        return self.authorization is not None and self.authorization.reveal().startswith("Bearer ")


def target(
    base_url: str,
    *,
    api_key: str | Secret | None,
    timeout: float,
    max_retries: int,
    backoff_base: float,
    backoff_max: float,
    retry_after_max: float,
) -> Target:
    """The `Target` of `base_url` (see `normalize_base_url`) with these retry settings."""
    url, username, password = split_userinfo(normalize_base_url(base_url))
    key = Secret.of(api_key)
    if key is not None:
        authorization: Secret | None = Secret(f"Bearer {key.reveal()}")
    elif username or password:
        authorization = basic_auth(username, password)
    else:
        authorization = None
    policy = Policy(
        display_url=url,
        timeout=float(timeout),
        max_retries=max_retries,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        retry_after_max=retry_after_max,
        secrets=secret_forms(key, username, password),
    )
    return Target(url, authorization, policy)
