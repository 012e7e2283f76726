"""Advisory `fcntl.flock` locks on files and directories, so processes sharing a directory know what is live.

A flock belongs to an open file description: it is released when the last descriptor of it is closed, which
the kernel does when the holding process dies (even by SIGKILL), so a crash never leaves a stale lock. Work in
progress (a model save's temp dir, an upload's part file, a running job) holds one; start-up clean-up
skips anything it cannot lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

__all__ = ["try_lock", "unlock", "lock_fresh"]


def try_lock(path: Path | str, *, create: bool = False) -> int | None:
    """Open `path` (a file or directory, never a symlink) and take an exclusive flock without waiting.

    Returns the open descriptor holding the lock (release with `unlock`), or None when another open file
    description holds it or the path is gone. `create` makes a missing regular file first.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    if create:
        flags |= os.O_CREAT
    try:
        fd = os.open(path, flags, 0o644)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlock(fd: int | None) -> None:
    """Release a lock taken by `try_lock`/`lock_fresh` (closing its descriptor); None is ignored."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def lock_fresh(path: Path | str) -> int | None:
    """Lock `path`, just created by this process, and check it is still the entry we created.

    Between creating an entry and locking it, another process's clean-up may lock and delete it; then (or if
    it is replaced) this returns None and the caller starts again with a new name.
    """
    fd = try_lock(path)
    if fd is None:
        return None
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except FileNotFoundError:
        same = False
    if not same:
        unlock(fd)
        return None
    return fd
