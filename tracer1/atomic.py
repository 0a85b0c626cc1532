"""Atomic file writes: a temp file in the same directory, fsynced, then renamed over the target, so a reader
(or a run resumed after a crash) sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def save_text_atomic(path: Path, text: str) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_json_atomic(path: Path, data: Any) -> Path:
    return save_text_atomic(path, json.dumps(data, indent=2, default=str))
