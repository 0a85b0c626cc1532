"""Atomic file writes: a temp file in the same directory, fsynced, then renamed over the target, so a reader
(or a run resumed after a crash) sees the old file or the new one, never half of one; and a directory copied that
way on a background thread (`BackgroundCopy`, the learner ranks' side of `checkpoint.async_write`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
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


class BackgroundCopy:
    """One learner rank's side of `checkpoint.async_write`: copy its node-local part into the shared temp
    directory on a thread (file copies release the GIL, so the rank's training goes on), then delete it."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, local: Path, shared: Path) -> None:
        self.done(wait=True)  # one copy at a time

        def run() -> None:
            try:
                copy_tree(local, shared)
                shutil.rmtree(local)
                try:
                    local.parent.rmdir()  # the step's local directory, once the node's last rank is done
                except OSError:
                    pass
            except BaseException as e:  # reported by done()
                self._error = e

        self._thread = threading.Thread(target=run, name=f"checkpoint copy to {shared}", daemon=True)
        self._thread.start()

    def done(self, wait: bool = False) -> bool:
        """Whether no copy is running (with `wait`, after waiting for it); raises the error of a failed copy."""
        if self._thread is None:
            return True
        if wait:
            self._thread.join()
        if self._thread.is_alive():
            return False
        self._thread, error, self._error = None, self._error, None
        if error is not None:
            raise RuntimeError(f"copying a checkpoint part to shared storage failed: {error!r}") from error
        return True


def copy_tree(src: Path, dst: Path) -> None:
    """Every file under `src` to the same place under `dst`, each through a temp name and a rename (ranks copy
    into one directory; a file two of them wrote is the same file)."""
    for folder, _, files in os.walk(src):
        target = dst / Path(folder).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            part = target / f".{name}.part-{os.getpid()}"
            shutil.copyfile(Path(folder) / name, part)
            os.replace(part, target / name)
