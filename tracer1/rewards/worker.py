"""Scoring many plans with a deadline per item: the plain class inside each `RewardActor`.

Rewards are pure Python and fast (tens of thousands of plans a second), but a pathological input or a bug in a
matcher must not stall a training step. So items are scored in a child process, in order, each result sent
back as soon as it is ready; when one takes longer than `deadline_s` the child is killed, that item scores
the failure value (and is reported with its key), and a fresh child goes on with the rest. An exception in a
scorer fails only its own item, the same way. Nothing here raises for bad input. The failure value is
`min(failure_value, unparseable)`: a plan that makes the scorer raise or hang never scores better than an
unreadable one (on both stages' scales `unparseable` is what a plan with no readable step gets), so failing is
no reward to learn; `RewardConfig` also refuses a `failure_value` above `unparseable`. A scoring child whose
parent is gone exits quietly.

The scorer is named by "module:function" so that the child can import it (`score_item` by default: stage 1
against the reference future, stage 2 by the live env's feedback when the item carries it (online,
`live_reward`), else against the grounding label (`grounded_reward`)). The child answers item by item, so the
worker scores fewer plans a second than calling the reward in-process — the price of the deadline, small next to
generation.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

from tracer1.plan import Step
from tracer1.rewards.grounded import GroundingLabel, grounded_reward
from tracer1.rewards.live import LiveFeedback, live_reward
from tracer1.rewards.trajectory import score_plan

DEFAULT_SCORER = "tracer1.rewards.worker:score_item"
STARTUP_S = 120.0  # a scoring process that is not ready by then is broken, not slow


@dataclass(frozen=True)
class RewardItem:
    """One plan to score. Stage 1 needs `reference`; stage 2 needs `label` and the executed first step, or
    (online) the live env's `feedback`, which is then what is scored."""

    key: str                            # names the item in logs and errors, e.g. "step 12 / prompt 3 / plan 5"
    plan: str
    reference: tuple[Step, ...] = ()
    label: GroundingLabel | None = None
    executed: Step | None = None
    result: str | None = None           # a tool's output or an answer, for stage 2
    feedback: LiveFeedback | None = None  # stage 2 online: the live env's answer to the executed step


@dataclass(frozen=True)
class Scored:
    key: str
    reward: float
    error: str | None = None            # why the item scored the failure value (a timeout or the exception)
    seconds: float = 0.0


def score_item(item: RewardItem, cfg, horizon: int, stage: int) -> float:
    if stage == 1:
        return score_plan(item.plan, item.reference, cfg, horizon).reward
    if item.feedback is not None:
        return live_reward(item.plan, item.feedback, cfg)
    if item.label is None:
        raise ValueError("a stage-2 item needs a grounding label (offline) or live feedback (online)")
    return grounded_reward(item.plan, item.executed, item.label, cfg, result=item.result)


def _resolve(scorer: str) -> Callable:
    module, _, name = scorer.partition(":")
    return getattr(importlib.import_module(module), name)


def _child(read_fd: int, write_fd: int) -> None:
    """The scoring process (`python -m tracer1.rewards.worker READ_FD WRITE_FD`): receives (scorer, cfg, horizon,
    stage) once, then lists of items; answers (reward, error, seconds) per item as each is done. Exits quietly
    when the parent is gone (its pipe closed: the reward actor was killed), with no traceback in the run's output."""
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    try:
        _serve(inbox, outbox)
    except (EOFError, OSError):  # the parent's end closed: nobody is left to answer
        pass


def _serve(inbox: Connection, outbox: Connection) -> None:
    scorer, cfg, horizon, stage = inbox.recv()
    score = _resolve(scorer)
    outbox.send("ready")
    while True:
        items = inbox.recv()
        if items is None:
            return
        for item in items:
            start = time.perf_counter()
            try:
                outbox.send((float(score(item, cfg, horizon, stage)), None, time.perf_counter() - start))
            except Exception as exc:  # noqa: BLE001 — one item's failure must not fail the others
                where = traceback.extract_tb(exc.__traceback__)[-1]
                outbox.send((None, f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})",
                             time.perf_counter() - start))


class RewardWorker:
    """Scores `RewardItem`s for one stage with `cfg` (a `RewardConfig`: `deadline_s`, `failure_value`)."""

    def __init__(self, cfg, *, horizon: int, stage: int, scorer: str = DEFAULT_SCORER):
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, not {stage!r}")
        self.cfg, self.horizon, self.stage, self.scorer = cfg, horizon, stage, scorer
        self.failed = min(cfg.failure_value, cfg.unparseable)  # by construction never above junk, see above
        self.timeouts = 0
        self.restarts = 0
        self._process = self._send = self._conn = None
        self._started = False

    def _start(self) -> None:
        # A fresh interpreter, not fork (the actor process runs Ray's threads) and not multiprocessing's spawn
        # (which re-runs the caller's __main__); sys.path travels so scorers importable here are there too.
        child_reads, parent_writes = os.pipe()
        parent_reads, child_writes = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tracer1.rewards.worker", str(child_reads), str(child_writes)],
            pass_fds=(child_reads, child_writes), env=env, stdin=subprocess.DEVNULL)
        os.close(child_reads)
        os.close(child_writes)
        self._send = Connection(parent_writes, readable=False)
        self._conn = Connection(parent_reads, writable=False)
        self._send.send((self.scorer, self.cfg, self.horizon, self.stage))

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._send.close()
            self._conn.close()
        self._process = self._send = self._conn = None

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def score(self, items: Sequence[RewardItem]) -> list[Scored]:
        """One `Scored` per item, in order; late or failing items score `self.failed` with the reason."""
        out: list[Scored] = []
        while len(out) < len(items):
            if not self._alive():
                self._restart()
            self._send.send(list(items[len(out):]))
            while len(out) < len(items):
                key = items[len(out)].key
                if not self._conn.poll(self.cfg.deadline_s):
                    self.timeouts += 1
                    self._kill()  # the child may be stuck in C code; only a kill is sure
                    out.append(Scored(key, self.failed,
                                      f"no reward within the {self.cfg.deadline_s:g} s deadline", self.cfg.deadline_s))
                    break
                try:
                    reward, error, seconds = self._conn.recv()
                except (EOFError, OSError):  # the child died (out of memory, killed): this item fails
                    self._kill()
                    out.append(Scored(key, self.failed, "the scoring process died", 0.0))
                    break
                out.append(Scored(key, self.failed if error else reward, error, seconds))
        return out

    def _restart(self) -> None:
        self._kill()
        self.restarts += self._started
        self._started = True
        self._start()
        # Start-up (a fresh interpreter importing the scorer) is not charged to the first item's deadline.
        ready = self._conn.poll(STARTUP_S)
        try:
            message = self._conn.recv() if ready else None
        except (EOFError, OSError):
            message = None
        if message != "ready":
            self._kill()
            raise RuntimeError(f"the reward scorer {self.scorer!r} did not start within {STARTUP_S:g} s "
                               "(its import error, if any, is on stderr above)")

    def close(self) -> None:
        if self._alive():
            try:
                self._send.send(None)
                self._process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()

    def __enter__(self) -> RewardWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    _child(int(sys.argv[1]), int(sys.argv[2]))
