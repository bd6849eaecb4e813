"""Writing files atomically: a temporary file in the same folder, then a rename.

A reader never sees half a file, and a process killed mid-write leaves the old file (or none).
The new file gets the usual permissions (0666 less the umask), not mkstemp's private 0600.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def check_writable(path: str | Path, what: str = "output") -> Path:
    """``path`` as a file this process can create or replace, checked before any work is done
    (a one-line NasError otherwise). A symbolic link there is replaced, never written through."""
    from nas.errors import NasError

    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir() and not path.is_symlink():
        raise NasError(f"{what} {str(path)!r} is a folder")
    if not parent.is_dir():
        raise NasError(f"{what} folder {str(parent)!r} does not exist")
    try:  # try it: permission bits say nothing to root, nor about read-only or special filesystems
        fd, probe = tempfile.mkstemp(prefix=".nas-write-check-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise NasError(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}") from None
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path to write; on success it replaces ``path``, on failure it is removed.
    The rename replaces a symbolic link at ``path`` itself: nothing is written through it."""
    from nas.errors import NasError

    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise NasError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise NasError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes | str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def read_json(path: str | Path, what: str, make_it: str) -> object:
    """The JSON in ``path`` (a file this project wrote: a model, a calibration), with one-line
    errors naming ``what`` it should be and the command that makes it (``make_it``)."""
    import json

    from nas.errors import NasError

    path = Path(path)
    if not path.is_file():
        raise NasError(f"{what} {str(path)!r} does not exist: make it with {make_it}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NasError(f"{path.name} is not JSON: {exc}") from None
