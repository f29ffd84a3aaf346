"""Atomic file writes: a run killed mid-write leaves the old file (or none), never half of one."""

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """Calls ``write(file)`` on a temporary file beside ``path``, then renames it to ``path``.

    The data is flushed to disk before the rename, so after a crash ``path`` holds either the
    old content or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any, **dumps_kwargs) -> None:
    """``obj`` as indented JSON (UTF-8), written atomically."""
    text = json.dumps(obj, indent=2, **dumps_kwargs)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
