"""Credentials that never print: an API key or a URL's password held in a `Secret`.

pytest shows the locals of failing frames (`-l`, `--tb=long`, `--junitxml`), so a key held
as a plain `str` anywhere on the stack of an error ends up in a CI log. A `Secret`'s
`repr` and `str` are `'***'`; only `reveal()` gives the text, at the moment a header is
built. `mask` removes every spelling of the credentials a server could echo back (the
key, the password raw and percent-encoded, the Basic token) from a text before it is
shown, and `redact_url` drops a URL's user:password part.

This module imports nothing heavy and nothing of pytest.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = [
    "MASK",
    "Secret",
    "basic_auth",
    "is_loopback",
    "mask",
    "redact_url",
    "secret_forms",
    "split_userinfo",
]

#: What a credential is replaced with wherever it would be shown.
MASK = "***"
#: Shorter secrets are not masked in free text: they would blank out ordinary words.
MIN_MASKED_CHARS = 4


class Secret:
    """A credential. `repr`, `str` and formatting show `'***'`; `reveal()` gives the text.

    Equal secrets compare equal (so settings can be compared) without showing either.
    It refuses to be pickled: nothing should carry a credential to another process by
    accident (an xdist worker reads its own environment).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds text, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The credential itself, for the one place that sends it."""
        return str(object.__getattribute__(self, "_value"))

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self.reveal())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.reveal() == self.reveal()

    def __hash__(self) -> int:
        return hash((Secret, self.reveal()))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Secret is immutable")

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not pickled; each process reads its own credentials")

    @classmethod
    def of(cls, value: str | Secret | None) -> Secret | None:
        """`value` as a Secret; None and "" stay None."""
        if value is None or isinstance(value, Secret):
            return value or None
        return cls(value) if value else None


def reveal(value: Secret | None) -> str | None:
    """The text of an optional secret."""
    return value.reveal() if value is not None else None


def split_userinfo(url: str) -> tuple[str, str, str]:
    """`url` without its user:password part, and the (percent-decoded) user and password."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, "", ""
    host = parts.netloc.rsplit("@", 1)[1]
    plain = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return plain, unquote(parts.username or ""), unquote(parts.password or "")


def redact_url(url: str) -> str:
    """`url` with any user:password part shown as `***@`, for messages and reprs.

    Works on text that is not a valid URL too (it is what a user typed): everything
    between `://` and the last `@` is hidden, so a password holding an unencoded `/` or
    `@` is hidden too (a path with an `@` in it is then hidden as well: only a message
    loses detail).
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}{sep}{MASK}@{rest.rsplit('@', 1)[1]}"


def secret_forms(
    api_key: Secret | str | None, username: str = "", password: str = ""
) -> tuple[str, ...]:
    """Every spelling of a credential that a server could echo back, longest first."""
    forms: set[str] = set()
    key = api_key.reveal() if isinstance(api_key, Secret) else api_key
    if key:
        forms.update({key, quote(key, safe="")})
    if password:
        forms.update({password, quote(password, safe="")})
    if username or password:
        forms.add(base64.b64encode(f"{username}:{password}".encode()).decode())
    return tuple(sorted((f for f in forms if len(f) >= MIN_MASKED_CHARS), key=len, reverse=True))


def mask(text: str, forms: Iterable[str]) -> str:
    """`text` with every form of a secret replaced by `***` (forms longest first)."""
    for form in forms:
        if form:
            text = text.replace(form, MASK)
    return text


def basic_auth(username: str, password: str) -> Secret:
    """The `Authorization` header value of HTTP Basic auth, as a Secret."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return Secret(f"Basic {token}")


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine (a proxy is never wanted for it)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
