"""The one PID lock: a file holding its owner's pid, created exclusively; a dead owner's lock is stale.

Used by the run directory (one trainer per run), the sweep directory (one sweep at a time) and
``runs list`` (a run whose lock names a live process is ``running``).
"""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a process owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_owner(path: str | os.PathLike) -> int | None:
    """The live pid named by the lock file at ``path``; None when absent, unreadable or stale."""
    try:
        pid = int(Path(path).read_text().strip() or "0")
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and pid_alive(pid) else None


class PidLock:
    """Exclusive lock file at ``path`` for this process; ``in_use(pid)`` builds the refusal message.

    ``acquire`` takes a stale lock over (its process is gone: a crash or kill -9) and raises the
    ``ValueError`` from ``in_use`` when a live process other than this one holds it.
    """

    def __init__(self, path: str | os.PathLike, in_use, unlockable) -> None:
        self.path = Path(path)
        self._in_use = in_use  # (pid) -> message
        self._unlockable = unlockable  # message when the lock can be neither taken nor cleared
        self.held = False

    def acquire(self) -> "PidLock":
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = lock_owner(self.path)
                if pid is not None and pid != os.getpid():
                    raise ValueError(self._in_use(pid)) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self.held = True
            return self
        raise ValueError(self._unlockable)

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "PidLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
