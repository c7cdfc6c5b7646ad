"""The versioned repo's error, and its messages on one line."""

from __future__ import annotations

from lifecycle_assets.errors import LifecycleError


class VersioningError(LifecycleError, RuntimeError):
    """The versioned repo cannot do what was asked; the message says what and how to fix it."""


def one_line(exc: BaseException) -> str:
    """The error on one line, with its root cause when DVC wrapped one (it often does)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    if root is not exc:
        cause = " ".join(str(root).split()) or type(root).__name__
        text = f"{text} (caused by {type(root).__name__}: {cause})"
    return text
