"""The one exception type for errors a user can cause; the CLI turns it into one line and exit 2."""


class NasError(Exception):
    """A user-facing error: bad input, a missing file, an unreachable database.

    The message is one line that names what is wrong and, where it helps, what is allowed.
    """
