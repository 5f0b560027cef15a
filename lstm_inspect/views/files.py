"""Writing exported files safely: checked before any work, written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable


def same_file(path: str, other: str | None) -> bool:
    """Whether `path` and `other` name one file, by identity (device and inode), not by spelling."""
    if not other:
        return False
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False  # either does not exist (yet): not the same file


def check_writable(path: str, inputs: tuple[str | None, ...] = ()) -> str | None:
    """Why `path` cannot be written, or None; checked before any work is done, down to a real
    file made and removed beside it (permissions alone do not tell: /proc, read-only mounts).
    `inputs`: files the command reads, which an export must never replace."""
    for given in inputs:
        if same_file(path, given):
            return f"{path} is {given}, which this command reads: an export never replaces its input"
    try:
        directory = os.path.dirname(os.path.abspath(path))
    except OSError:
        return "the working directory no longer exists"
    if path.endswith((os.sep, "/")) or os.path.isdir(path):
        return f"{path} names a directory, not a file"
    if os.path.lexists(path) and (os.path.islink(path) or not os.path.isfile(path)):
        # The file is replaced by a rename: never do that to a device, a pipe or a link.
        return f"{path} exists and is not a regular file"
    if not os.path.isdir(directory):
        return f"no such directory: {directory}"
    try:
        if len(os.fsencode(os.path.basename(path))) > os.pathconf(directory, "PC_NAME_MAX"):
            return f"the file name is longer than {directory} allows"
        handle, probe = tempfile.mkstemp(dir=directory, prefix=".lstm-inspect-", suffix=".tmp")
    except OSError as failed:
        return f"cannot write in {directory}: {failed.strerror or failed}"
    try:
        os.close(handle)
    finally:
        os.unlink(probe)
    return None


def write_atomically(path: str, text: str | Iterable[str]) -> None:
    """Write to a temporary file beside `path`, then rename: never a half-written file. `text`:
    the content, or its pieces one after another (written as they come)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".lstm-inspect-", suffix=".tmp")
    except OSError as failed:
        raise OSError(failed.errno, failed.strerror, path) from failed  # the user's path, not ours
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 is for secrets, not reports
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            for piece in [text] if isinstance(text, str) else text:
                file.write(piece)
        os.replace(temporary, path)
    except BaseException as failed:
        os.unlink(temporary)
        if isinstance(failed, OSError):
            raise OSError(failed.errno, failed.strerror, path) from failed  # the user's path, not ours
        raise
