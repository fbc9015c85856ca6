"""Atomic output files: every file balkin writes is first written to a temporary file in the same
folder and then renamed over the target (os.replace, atomic on POSIX).  An existing file therefore
stays intact until the new one is complete, and an interruption (Ctrl-C, SIGTERM, a full disk)
never leaves a truncated file behind: the temporary file is removed.

    with atomic_open("out.json", "w") as fh: fh.write(text)
    atomic_savez("out.npz", a=..., b=...)            # np.savez_compressed
    atomic_savefig(fig, "plots/x.png", dpi=110)      # matplotlib

The paths written by this process are appended to WRITTEN (the CLI reports them when a run is
interrupted)."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

#: Files completed (renamed into place) by this process, in order.
WRITTEN: list[str] = []


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None, *, record: bool = True):
    """Yield a temporary path in the folder of ``path``; on success rename it to ``path``, on any
    exception (KeyboardInterrupt included) remove it and leave ``path`` untouched.  ``suffix``
    (default: the target's) lets writers that look at the extension (matplotlib, NumPy) work.
    ``record=False``: not one of the user's outputs (a cache file), not listed in WRITTEN."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    sfx = target.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{sfx}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        try:       # mkstemp creates 0600; give the file the permissions a plain open() would
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        except OSError:
            pass
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if record:
        WRITTEN.append(str(path))


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", *, record: bool = True, **kwargs):
    """open() on a temporary file in the same folder, renamed to ``path`` when the block succeeds."""
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open writes files; mode must contain 'w', got {mode!r}")
    with atomic_path(path, record=record) as tmp:
        with open(tmp, mode.replace("x", "w"), **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path, text: str, *, record: bool = True) -> None:
    with atomic_open(path, "w", record=record) as fh:
        fh.write(text)


def atomic_savez(path, **arrays) -> None:
    """np.savez_compressed(path, **arrays), atomically.  Like NumPy, '.npz' is appended to a path
    without that suffix."""
    import numpy as np
    path = str(path)
    if not path.endswith(".npz"):
        path += ".npz"
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:     # a file object: NumPy appends no suffix
            np.savez_compressed(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_savefig(fig, path, **kwargs) -> None:
    """fig.savefig(path, **kwargs), atomically (the format is taken from the target's suffix)."""
    fmt = kwargs.pop("format", None) or (Path(path).suffix.lstrip(".") or None)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **kwargs)
