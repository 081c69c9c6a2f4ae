"""Opening files from elsewhere safely: only regular files, never blocking, every OS error a sentence.

A photo folder can hold anything a file system can: named pipes (opening one for reading waits
for a writer, forever), sockets, device nodes, symbolic-link loops. `open_regular_file` is the one
way birdid opens a file to read a photo's bytes; `problem_from_os_error` turns an OSError into the
problem half of a `PhotoError` sentence.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from birdid_app.core.errors import FileProblem, PhotoError

_PROBLEMS_BY_ERRNO = {
    errno.ENOENT: "no such file.",
    errno.EISDIR: "this is a folder, not a photo.",
    errno.EACCES: "birdid is not allowed to read this file.",
    errno.EPERM: "birdid is not allowed to read this file.",
    errno.ELOOP: "the path loops through symbolic links.",
    errno.ENOTDIR: "a part of the path is not a folder.",
    errno.ENAMETOOLONG: "the file name is too long.",
    errno.EIO: "the disk reported an error while reading this file.",
}

# O_NONBLOCK: a FIFO put in place of the file between the stat and the open must not make
# open() wait for a writer. O_NOCTTY: a terminal device must not become ours. Neither exists on
# Windows, which has no FIFOs in the file system; O_BINARY exists only there.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


def problem_from_os_error(error: OSError) -> str:
    """The problem, as the second half of "PATH: problem", that an OSError from opening or
    reading a file means: "no such file.", "the path loops through symbolic links.", ...
    An errno without a sentence of its own gives "the file could not be read (strerror)." """
    problem = _PROBLEMS_BY_ERRNO.get(error.errno) if error.errno is not None else None
    if problem is not None:
        return problem
    reason = error.strerror or str(error) or type(error).__name__
    return f"the file could not be read ({reason[:1].lower()}{reason[1:]})."


def open_regular_file(path: str | Path, what: str = "a photo", error: type[FileProblem] = PhotoError) -> BinaryIO:
    """`path` opened for reading in binary mode, if it is a regular file (or a symbolic link to
    one). Never blocks on a named pipe, and never opens a pipe, socket, device or folder.

    Raises `error` (PhotoError unless told otherwise) naming the path: "this is a named pipe, not
    a photo." (`what` names what the file should have been), "no such file.", and the other
    sentences of `problem_from_os_error`.
    """
    path = Path(path)
    try:
        # Refused from stat alone: opening a device can have effects (a tape rewinds, a
        # watchdog starts) even when nothing is read.
        _refuse_unless_regular(path, os.stat(path).st_mode, what, error)
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as os_error:
        raise error(path, problem_from_os_error(os_error)) from None
    try:
        # The stat above and the open are two steps: the path may name something else now.
        _refuse_unless_regular(path, os.fstat(descriptor).st_mode, what, error)
        if hasattr(os, "O_NONBLOCK"):
            # Some file systems (NFS with mandatory locks, FUSE) honour O_NONBLOCK on regular
            # files and fail a read with EAGAIN; a photo is read blocking.
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except OSError as os_error:
        os.close(descriptor)
        raise error(path, problem_from_os_error(os_error)) from None
    except BaseException:
        os.close(descriptor)
        raise


def _refuse_unless_regular(path: Path, mode: int, what: str, error: type[FileProblem]) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        problem = f"this is a folder, not {what}."
    elif stat.S_ISFIFO(mode):
        problem = f"this is a named pipe, not {what}."
    elif stat.S_ISSOCK(mode):
        problem = f"this is a socket, not {what}."
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        problem = f"this is a device, not {what}."
    else:
        problem = f"this is not a regular file, so not {what}."
    raise error(path, problem)


def read_regular_file(path: str | Path, limit: int, what: str, error: type[FileProblem]) -> bytes:
    """The whole of a small file from elsewhere (a model, a label list), refused before reading
    when it is not a regular file or is larger than `limit` bytes: `error` naming the path."""
    with open_regular_file(path, what, error) as file:
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            raise error(path, f"the file is {size / 1e6:.1f} MB, larger than {what} can be ({limit / 1e6:.0f} MB).")
        try:
            data = file.read(limit + 1)
        except OSError as os_error:
            raise error(path, problem_from_os_error(os_error)) from None
    if len(data) > limit:  # it grew while being read
        raise error(path, f"the file is larger than {what} can be ({limit / 1e6:.0f} MB).")
    return data
