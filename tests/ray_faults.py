"""Fault injection for the tests of actors on a real local Ray: a worker class whose call announces that it has
started (a flag file), and a thread that SIGKILLs the actor's process at that moment, so a test kills an actor
mid-call rather than before or after it."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import ray


def flagged(cls, method: str, flag: Path):
    """`cls` whose `method` touches `flag` as it starts."""

    def call(self, *args, **kwargs):
        flag.touch()
        return getattr(cls, method)(self, *args, **kwargs)

    return type(cls.__name__, (cls,), {method: call})


def kill_when_started(actor, flag: Path) -> threading.Thread:
    """SIGKILL the actor's process as soon as its call has started (the flag appears)."""
    pid = ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))
    flag.unlink(missing_ok=True)

    def kill():
        deadline = time.monotonic() + 60
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread
