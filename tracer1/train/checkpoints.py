"""Periodic checkpoints of the RL stages and resuming from them.

A checkpoint is a directory `<run>/checkpoints/step-NNNNNN/`:

    policy/              the policy as an HF directory (safetensors + tokenizer/processor): what rollout workers,
                         evaluation and `init_from=` load
    deepspeed/           DeepSpeed's own state (optimizer, LR schedule, ZeRO partitions), read back only by the
                         learner resuming this run (it is torch-pickled, so never from a path the run did not write)
    trainer_state.json   step, data cursor, RNG states (`tracer1.seeding`), the evaluation before training

It is built in a temp directory beside the others and renamed into place as the last act, so a directory named
`step-*` is always complete; a crash mid-write leaves only a `.step-*.tmp` that the next save removes.

Writing ~100 GB of optimizer state to shared storage takes minutes, so with `checkpoint.async_write` the loop does
not wait for it (`CheckpointWriter`): each learner rank writes its part to `checkpoint.local_dir` on its own node
(fast local disk), returns, and copies it into the shared `.step-*.tmp` on a thread (`BackgroundCopy`) while
training goes on. The driver finishes the checkpoint — state file, rename, pruning — only once every rank says its
copy is done, so the rule above still holds: a checkpoint whose copy has not finished is a `.tmp`, never a
`step-*`. At most one is in flight: the next save, and the end of the run, wait for it first. (DeepSpeed 0.19's
decoupled checkpoint engine is not used: it covers only DeepSpeed's files, not the policy export or the completion
marker, writes straight to the shared storage from a process it spawns inside each rank, and fails a commit that
takes over 300 s, which ~100 GB to EFS does.)
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from tracer1.atomic import save_json_atomic

STATE_FILE = "trainer_state.json"


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:06d}"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """This run's complete step checkpoints, oldest first."""
    root = Path(run_dir) / "checkpoints"
    found = [p for p in root.glob("step-*") if (p / STATE_FILE).is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: p.name)


def resume_point(resume: str, run_dir: Path) -> Path | None:
    """`checkpoint.resume`: 'never' → None, 'auto' → this run's newest complete checkpoint (None when there is
    none), else a checkpoint path, which must be complete."""
    if resume == "never":
        return None
    if resume == "auto":
        done = complete_checkpoints(run_dir)
        return done[-1] if done else None
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise ValueError(f"checkpoint.resume={resume!r}: not a complete checkpoint (no {STATE_FILE}); give a "
                         f"<run>/checkpoints/step-NNNNNN directory, 'auto' or 'never'")
    return path


def policy_dir(path: str | Path) -> Path:
    """The HF policy directory behind `checkpoint.init_from`: a run directory (its final policy, else its newest
    step checkpoint's), a step checkpoint (its policy/), or an HF directory itself."""
    path = Path(path)
    if (path / "checkpoints" / "final").is_dir():
        return path / "checkpoints" / "final"
    done = complete_checkpoints(path)
    if done:
        return done[-1] / "policy"
    if (path / STATE_FILE).is_file():
        return path / "policy"
    return path


def read_state(checkpoint: Path) -> dict:
    return json.loads((Path(checkpoint) / STATE_FILE).read_text())


def _begin(run_dir: Path, step: int) -> Path:
    """A fresh temp directory for step `step`'s checkpoint, after removing what killed saves left."""
    final = step_dir(run_dir, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(".step-*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.with_name(f".{final.name}.tmp")
    tmp.mkdir()
    return tmp


def _finish(run_dir: Path, tmp: Path, state: dict, keep_last: int) -> Path:
    """The state file, the rename that makes `tmp` a complete checkpoint, and pruning beyond `keep_last`."""
    final = step_dir(run_dir, state["step"])
    try:
        save_json_atomic(tmp / STATE_FILE, state)
        if final.exists():  # the same step saved again (a resumed run): replace it
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in complete_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def write_checkpoint(run_dir: Path, step: int, write_parts: Callable[[Path], dict | None], state: dict,
                     keep_last: int) -> Path:
    """`write_parts(tmp)` writes policy/ and deepspeed/ into the temp directory (and may return more state);
    then the state file, the rename, and older checkpoints beyond `keep_last` are deleted."""
    tmp = _begin(run_dir, step)
    try:
        more = write_parts(tmp) or {}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _finish(run_dir, tmp, {**state, **more, "step": step}, keep_last)


class CheckpointWriter:
    """The loops' step checkpoints, per `checkpoint` (a `CheckpointConfig`).

    `save(step, write_parts, state)`: `write_parts(tmp, local)` has every learner rank write its part, into `tmp`
    (local None: in place, the checkpoint is complete when `save` returns) or, with `async_write`, into `local`
    on its node, from where the rank copies it into `tmp` in the background. `copied(wait)` asks all ranks whether
    their copies are done (True/False; raises if one failed; `wait=True` blocks until they are). `poll()` (once
    a step) finishes the checkpoint in flight when they are; `wait()` (before the end) waits for it."""

    def __init__(self, run_dir: Path, checkpoint, copied: Callable[[bool], bool]):
        self.run_dir, self.keep_last, self.copied = Path(run_dir), checkpoint.keep_last, copied
        self.local = Path(checkpoint.local_dir) / self.run_dir.name if checkpoint.async_write else None
        self.pending: tuple[Path, dict, float] | None = None  # (tmp, state, start) of the checkpoint in flight
        self.stall_s = 0.0  # how long the last `save` held the loop

    def save(self, step: int, write_parts: Callable[[Path, Path | None], dict | None], state: dict) -> None:
        t0 = time.perf_counter()
        self.wait()  # at most one in flight
        if self.local is None:
            write_checkpoint(self.run_dir, step, lambda tmp: write_parts(tmp, None), state, self.keep_last)
        else:
            tmp = _begin(self.run_dir, step)
            try:
                more = write_parts(tmp, self.local / f"step-{step:06d}") or {}
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            # a copy of the state as it is now: it is written later, and the loop goes on changing its objects
            self.pending = (tmp, copy.deepcopy({**state, **more, "step": step}), t0)
        self.stall_s = time.perf_counter() - t0

    def poll(self) -> Path | None:
        """Finish the checkpoint in flight if every rank's copy is done; → its path, else None."""
        return self._finish(wait=False) if self.pending else None

    def wait(self) -> Path | None:
        return self._finish(wait=True) if self.pending else None

    def _finish(self, wait: bool) -> Path | None:
        try:
            if not self.copied(wait):
                return None
        except BaseException:  # a rank's copy failed: this checkpoint never becomes complete
            shutil.rmtree(self.pending[0], ignore_errors=True)
            self.pending = None
            raise
        tmp, state, t0 = self.pending
        self.pending = None
        final = _finish(self.run_dir, tmp, state, self.keep_last)
        tqdm.write(f"  checkpoint {final.name} complete, {time.perf_counter() - t0:.1f} s after it began")
        return final


@dataclass
class Start:
    """Where an RL stage starts: the stage's starting policy (also its KL reference), the checkpoint being resumed
    (None for a fresh run) with its state, and the weights the actors load (the checkpoint's, else the planner)."""

    planner: Path
    resume: Path | None
    state: dict
    policy: Path


def stage_start(config, run_dir: Path, finished: Path) -> Start | None:
    """The run's starting point, after seeding; None when `finished` (its final report) says it has ended and
    `checkpoint.resume` is auto (nothing to do)."""
    from tracer1.seeding import seed_everything  # noqa: PLC0415
    from tracer1.train.assets import start_planner  # noqa: PLC0415 — it trains the SFT warm start when missing

    if config.checkpoint.resume == "auto" and finished.is_file():
        print(f"tracer1: {run_dir} has finished (report: {finished}); checkpoint.resume=never starts it afresh")
        return None
    seed_everything(config.seed)
    planner = start_planner(config)
    resume = resume_point(config.checkpoint.resume, run_dir)
    return Start(planner, resume, read_state(resume) if resume else {}, resume / "policy" if resume else planner)
