"""Atomic file writes: a temp file in the target's directory, fsync, then ``os.replace``.

A reader never sees a half-written file: either the old content or the new one.
On any exception the temp file is removed and the old file is left as it was.
Used by every module that writes to disk (tokenizer, discriminator, run directory).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable

import safetensors.torch
import torch

TMP_PREFIX = ".tmp-"


def fsync_dir(directory: str | os.PathLike) -> None:
    """Best-effort fsync of a directory so a rename inside it is durable."""
    try:
        fd = os.open(os.fspath(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, so it is never changed, even briefly)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_mode(directory: bool = False) -> int:
    """The mode ``open()`` / ``mkdir()`` would give a new file (0o666) or directory (0o777) under the umask;
    temp files and directories are created 0o600 / 0o700, and renamed into place, so they get this."""
    return (0o777 if directory else 0o666) & ~current_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then fsync and atomically move tmp_path onto ``path``.

    The temp file lives in the target's directory (same filesystem, so
    ``os.replace`` is atomic).  On any exception the temp file is removed and an
    existing ``path`` is left untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX, suffix="-" + os.path.basename(path))
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, umask_mode())  # as a file written in place would be (mkstemp makes it 0600)
        with open(tmp, "rb") as f:  # fsync what ``write`` produced, whoever wrote it
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(directory)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; on failure the old file stays intact."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}; convert it with str() or json.dumps().")

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()

    atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def atomic_save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    """Save ``tensors`` to a safetensors file atomically.

    Tensors are detached, moved to CPU, made contiguous and copied (so views
    and shared storage are fine).  On failure the old file stays intact.
    """
    if not isinstance(tensors, dict):
        raise TypeError(f"tensors must be a dict[str, Tensor], got {type(tensors).__name__}.")
    plain: dict[str, torch.Tensor] = {}
    for k, v in tensors.items():
        if not isinstance(k, str) or not torch.is_tensor(v):
            raise TypeError(
                f"tensors must map str -> Tensor, got {k!r} -> {type(v).__name__} for {os.fspath(path)}; "
                f"store non-tensor values in the JSON meta instead."
            )
        plain[k] = v.detach().cpu().contiguous().clone()
    atomic_write(path, lambda tmp: safetensors.torch.save_file(plain, tmp))
