"""Scoring many plans with a deadline per item: the plain class inside each `RewardActor`.

Rewards are pure Python and fast (tens of thousands of plans a second), but a pathological input or a bug in a
matcher must not stall a training step. So items are scored in a child process, in order, each result sent
back as soon as it is ready; when one takes longer than `deadline_s` the child is killed, that item scores
`failure_value` (and is reported with its key), and a fresh child goes on with the rest. An exception in a
scorer fails only its own item, the same way. Nothing here raises for bad input.

The scorer is named by "module:function" so that the child can import it (`score_item` by default: stage 1
against the reference future, stage 2 against the grounding label).
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tracer1.plan import Step
from tracer1.rewards.grounded import GroundingLabel, grounded_reward
from tracer1.rewards.trajectory import score_plan

DEFAULT_SCORER = "tracer1.rewards.worker:score_item"


@dataclass(frozen=True)
class RewardItem:
    """One plan to score. Stage 1 needs `reference`; stage 2 needs `label` and the executed first step."""

    key: str                            # names the item in logs and errors, e.g. "step 12 / prompt 3 / plan 5"
    plan: str
    reference: tuple[Step, ...] = ()
    label: GroundingLabel | None = None
    executed: Step | None = None
    result: str | None = None           # a tool's output or an answer, for stage 2


@dataclass(frozen=True)
class Scored:
    key: str
    reward: float
    error: str | None = None            # why the item scored failure_value (a timeout or the exception)
    seconds: float = 0.0


def score_item(item: RewardItem, cfg, horizon: int, stage: int) -> float:
    if stage == 1:
        return score_plan(item.plan, item.reference, cfg, horizon).reward
    if item.label is None:
        raise ValueError("a stage-2 item needs a grounding label")
    return grounded_reward(item.plan, item.executed, item.label, cfg, result=item.result)


def _resolve(scorer: str) -> Callable:
    module, _, name = scorer.partition(":")
    return getattr(importlib.import_module(module), name)


def _child(conn, scorer: str, cfg, horizon: int, stage: int) -> None:
    score = _resolve(scorer)
    while True:
        items = conn.recv()
        if items is None:
            return
        for item in items:
            start = time.perf_counter()
            try:
                conn.send((float(score(item, cfg, horizon, stage)), None, time.perf_counter() - start))
            except Exception as exc:  # noqa: BLE001 — one item's failure must not fail the others
                where = traceback.extract_tb(exc.__traceback__)[-1]
                conn.send((None, f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})",
                           time.perf_counter() - start))


class RewardWorker:
    """Scores `RewardItem`s for one stage with `cfg` (a `RewardConfig`: `deadline_s`, `failure_value`)."""

    def __init__(self, cfg, *, horizon: int, stage: int, scorer: str = DEFAULT_SCORER):
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, not {stage!r}")
        self.cfg, self.horizon, self.stage, self.scorer = cfg, horizon, stage, scorer
        self.timeouts = 0
        self.restarts = 0
        self._ctx = mp.get_context("spawn")  # no fork: the actor process has Ray's threads
        self._process = self._conn = None
        self._started = False

    def _start(self) -> None:
        self._conn, child_conn = self._ctx.Pipe()
        self._process = self._ctx.Process(target=_child, args=(child_conn, self.scorer, self.cfg, self.horizon,
                                                               self.stage), daemon=True)
        self._process.start()
        child_conn.close()

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join()
            self._conn.close()
        self._process = self._conn = None

    def score(self, items: Sequence[RewardItem]) -> list[Scored]:
        """One `Scored` per item, in order; late or failing items score `failure_value` with the reason."""
        out: list[Scored] = []
        pending = list(items)
        while pending:
            if self._process is None or not self._process.is_alive():
                self.restarts += self._started
                self._start()
                self._started = True
            self._conn.send(pending)
            while pending:
                item = pending[0]
                if not self._conn.poll(self.cfg.deadline_s):
                    self.timeouts += 1
                    self._kill()  # the child may be stuck in C code; only a kill is sure
                    out.append(Scored(item.key, self.cfg.failure_value,
                                      f"no reward within the {self.cfg.deadline_s:g} s deadline", self.cfg.deadline_s))
                    pending.pop(0)
                    break
                try:
                    reward, error, seconds = self._conn.recv()
                except EOFError:  # the child died (out of memory, killed): this item fails, a new child goes on
                    self._kill()
                    out.append(Scored(item.key, self.cfg.failure_value, "the scoring process died", 0.0))
                    pending.pop(0)
                    break
                pending.pop(0)
                out.append(Scored(item.key, self.cfg.failure_value if error else reward, error, seconds))
        return out

    def close(self) -> None:
        if self._process is not None and self._process.is_alive():
            try:
                self._conn.send(None)
                self._process.join(timeout=5)
            except OSError:
                pass
        self._kill()

    def __enter__(self) -> RewardWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
