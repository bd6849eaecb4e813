"""The one exception type for errors a user can cause; the CLI turns it into one line and exit 2."""

from __future__ import annotations


class NasError(Exception):
    """A user-facing error: bad input, a missing file, an unreachable database.

    The message is one line that names what is wrong and, where it helps, what is allowed.
    """


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type's name when it has none), cut to
    ``limit`` characters: how a library's error is quoted inside one of ours. For a SQLAlchemy
    error, the driver's message (``exc.orig``)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def quoted(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: how a user's value is quoted in a message
    (a megabyte of it, or a value a YAML alias expanded, is never printed whole)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
