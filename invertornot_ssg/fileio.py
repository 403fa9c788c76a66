"""Writing files so that a crash or a full disk never leaves half a file behind."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable


def atomic_write(path: Path, data: bytes | Callable[[BinaryIO], None], *, fsync: bool = True) -> None:
    """Replace `path` with `data` (bytes, or what `data(file)` writes) all at once: a temporary
    file beside it, fsync, os.replace. Keeps the mode of the file it replaces. `fsync=False`: a
    crash of the process still leaves the old file or the new one, whole, but a power cut may
    leave either (or an empty file): only for files something can write again."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_cache(path: Path) -> Any:
    """A cache file's parsed JSON; None when it is missing, unreadable or not JSON."""
    try:
        return json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return None


def write_cache(path: Path, data: bytes) -> None:
    """Write a cache file (its folder made, atomically). A cache is only worth a try: a failure
    costs the next build the time it saves, so it is not an error."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(path), data)
    except OSError:
        pass


def file_signature(path: Path | None) -> tuple[int, int, int] | None:
    """(inode, size, mtime_ns): changes whenever the file is replaced or written; None if absent."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def write_error_detail(exc: OSError, where: str = "`store`") -> str:
    """What a failed write means for the user, for the common causes."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full; free some space or point {where} elsewhere"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"not writable; check permissions or point {where} elsewhere"
    return exc.strerror or str(exc)
