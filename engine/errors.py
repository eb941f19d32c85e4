"""Errors meant for users: a sentence saying what failed and where, plus a hint saying what to do.

The runner turns a UserError into `finished: failed` with error {type, message, hint}; any other
exception is a programming error whose traceback goes to engine.log.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path


class UserError(Exception):
    """A failure the user can fix: bad input file, empty corpus, missing tokenizer, out of memory."""

    type = "user_error"

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def for_terminal(self) -> str:
        """The message, and the hint on a line of its own: what a command prints before it exits."""
        return f"{self.message}\nWhat to do: {self.hint}" if self.hint else self.message


class DataError(UserError):
    type = "data_error"


class TokenizerError(UserError):
    type = "tokenizer_error"


class ResourceError(UserError):
    type = "resource_error"


class ModelError(UserError):
    type = "model_error"


_SQLITE_FULL = 13  # SQLite's primary result code for a full disk


def disk_full_error(exc: BaseException, where: str | None = None) -> ResourceError | None:
    """`exc` as a ResourceError when it says the disk (or the user's quota) is full; None otherwise.

    `where` names what was being written (a folder or file); when `exc` itself does not say the disk
    is full, it counts as a full disk when `where`'s disk has less than 1 MiB left.
    """
    full = False
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        full = True
        where = exc.filename or where
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF == _SQLITE_FULL:
        full = True
    elif where is not None and not full:
        # Writers that lose the errno on the way up (PyTorch's checkpoint writer: "unexpected pos …",
        # SQLite: "disk I/O error"): when the disk being written has no room left, that is the cause.
        try:
            full = shutil.disk_usage(_existing_parent(where)).free < 1 << 20
        except OSError:
            full = False
    if not full:
        return None
    place = f" writing {where}" if where else ""
    return ResourceError(f"The disk is full{place} (or the user's disk quota is used up): {first_line(exc)}.",
                         "Free some space on that disk (`df -h` shows it), or move the workspace to a disk with room "
                         "(--workspace or ATELIER_WORKSPACE), then run the command again.")


def _existing_parent(path) -> str:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return str(path)


def first_line(error: BaseException) -> str:
    """The first line of an exception's text (its type when it has none), without a final period:
    libraries' messages run to several lines, and a user's message quotes only the gist."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].rstrip(".")
