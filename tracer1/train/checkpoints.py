"""Periodic checkpoints of the RL stages and resuming from them.

A checkpoint is a directory `<run>/checkpoints/step-NNNNNN/`:

    policy/              the policy as an HF directory (safetensors + tokenizer/processor): what rollout workers,
                         evaluation and `init_from=` load
    deepspeed/           DeepSpeed's own state (optimizer, LR schedule, ZeRO partitions), read back only by the
                         learner resuming this run (it is torch-pickled, so never from a path the run did not write)
    trainer_state.json   step, data cursor, RNG states (`tracer1.seeding`), the evaluation before training

It is built in a temp directory beside the others and renamed into place as the last act, so a directory named
`step-*` is always complete; a crash mid-write leaves only a `.step-*.tmp-*` that the next save removes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def write_checkpoint(run_dir: Path, step: int, write_parts: Callable[[Path], dict | None], state: dict,
                     keep_last: int) -> Path:
    """`write_parts(tmp)` writes policy/ and deepspeed/ into the temp directory (and may return more state);
    then the state file, the rename, and older checkpoints beyond `keep_last` are deleted."""
    final = step_dir(run_dir, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(".step-*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.with_name(f".{final.name}.tmp")
    tmp.mkdir()
    try:
        more = write_parts(tmp) or {}
        save_json_atomic(tmp / STATE_FILE, {**state, **more, "step": step})
        if final.exists():  # the same step saved again (a resumed run): replace it
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in complete_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
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
