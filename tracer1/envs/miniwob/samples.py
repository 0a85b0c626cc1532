"""Planning samples from scripted-solver episodes, and the CLI that writes them:

    python -m tracer1.envs.miniwob --tasks click-button,enter-text --episodes N --out DIR
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracer1.envs.base import Element, find_element
from tracer1.envs.miniwob.browser import miniwob_available
from tracer1.envs.miniwob.env import MiniWoBEnv
from tracer1.plan import Step

log = logging.getLogger(__name__)

SOURCE = "miniwob"


@dataclass
class SolverEpisode:
    """One episode of a scripted solver: what the agent saw before each step, and the steps."""

    task: str
    seed: int
    instruction: str
    fields: tuple
    screenshots: list[np.ndarray]
    elements: list[list[Element]]
    a11y: list[str]
    steps: list[Step]
    success: bool
    raw_reward: float
    restarts: int = 0


def run_solver_episode(env: MiniWoBEnv, task: str, seed: int, max_steps: int | None = None) -> SolverEpisode:
    """Run the task's scripted solver for one episode on `seed`, recording every observation and step."""
    obs, info = env.reset(seed=seed, options={"task": task})
    restarts0 = env.restarts
    episode = SolverEpisode(task, seed, obs["instruction"], info["fields"], [], [], [], [], False, 0.0)
    for _ in range(max_steps or env.max_steps):
        step = env.oracle_action()
        episode.screenshots.append(obs["screenshot"])
        episode.elements.append(info["elements"])
        episode.a11y.append(obs["a11y"])
        episode.steps.append(step)
        obs, _, terminated, truncated, info = env.step(step)
        if terminated or truncated:
            break
    episode.success, episode.raw_reward = info["success"], info["raw_reward"]
    episode.restarts = env.restarts - restarts0
    return episode


def _png(screenshot: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(screenshot, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def step_label(step: Step, elements: list[Element]):
    """The grounding label of a step on the screen it was taken from: the target element's box and centre for
    clicks and typing into a target, the text for typing, the key, direction or status otherwise."""
    from tracer1.rewards import GroundingLabel

    box = point = None
    if step.action in ("click", "long_press", "type", "scroll") and (step.target or step.point):
        element = find_element(elements, step.target) if step.target else None
        if element is not None:
            box, point = element.box, element.center
        elif step.point is not None:
            point = step.point
    return GroundingLabel(action=step.action, box=box, point=point, text=step.text, direction=step.direction,
                          key=step.key, status=step.status)


def episode_samples(episode: SolverEpisode, horizon: int = 10, split: str = "train"):
    """One planning sample per step of a solver episode: instruction, PNG screenshot, accessibility text, the
    steps taken so far, the next `horizon` solver steps, and the grounding label of the first of them."""
    from tracer1.data.schema import Sample

    episode_id = f"{SOURCE}-{episode.task}-{episode.seed}"
    samples = []
    for t, step in enumerate(episode.steps):
        shot = episode.screenshots[t]
        samples.append(Sample(
            sample_id=f"{episode_id}-{t}", episode_id=episode_id, step_index=t, source=SOURCE,
            instruction=episode.instruction, history=list(episode.steps[:t]),
            future=list(episode.steps[t:t + horizon]), label=step_label(step, episode.elements[t]),
            screenshot=_png(shot), width=int(shot.shape[1]), height=int(shot.shape[0]), a11y=episode.a11y[t],
            split=split, meta={"task": episode.task, "seed": episode.seed,
                               "fields": [list(f) for f in episode.fields]}))
    return samples


@contextlib.contextmanager
def _env_or_new(env: MiniWoBEnv | None):
    """`env`, or a new env that is closed afterwards (a caller's env stays open for the caller)."""
    if env is not None:
        yield env
        return
    env = MiniWoBEnv()
    try:
        yield env
    finally:
        env.close()


def generate_samples(tasks: Iterable[str], episodes: int, seed: int = 0, horizon: int = 10, split: str = "train",
                     env: MiniWoBEnv | None = None, stats: dict | None = None) -> Iterator:
    """Samples from `episodes` solver episodes per task on seeds `seed`, `seed`+1, ... (an episode the solver
    fails is skipped and counted in `stats[task]["failed"]`). One browser serves every task."""
    with _env_or_new(env) as env:
        for task in tasks:
            counts = {"episodes": 0, "failed": 0, "samples": 0}
            if stats is not None:
                stats[task] = counts
            for i in range(episodes):
                episode = run_solver_episode(env, task, seed + i)
                if not episode.success:
                    counts["failed"] += 1
                    log.warning("solver failed %s seed %d (raw reward %s); episode skipped", task, seed + i,
                                episode.raw_reward)
                    continue
                counts["episodes"] += 1
                for sample in episode_samples(episode, horizon, split):
                    counts["samples"] += 1
                    yield sample


def write_samples_for_tasks(out_dir: str | os.PathLike, tasks: Sequence[str], episodes: int, seed: int = 0,
                            horizon: int = 10, split: str = "train", env: MiniWoBEnv | None = None) -> dict:
    """Write `out_dir/miniwob-<task>.parquet` for each task through `SampleWriter`; returns per-task counts."""
    from tracer1.data.schema import SampleWriter

    out = Path(out_dir)
    stats: dict = {}
    with _env_or_new(env) as env:
        for task in tasks:
            with SampleWriter(out / f"{SOURCE}-{task}.parquet") as writer:
                writer.write_all(generate_samples([task], episodes, seed, horizon, split, env, stats))
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    from tracer1.envs.miniwob.solvers import SOLVERS

    parser = argparse.ArgumentParser(prog="python -m tracer1.envs.miniwob",
                                     description="Write planning samples from MiniWoB++ scripted-solver episodes.")
    parser.add_argument("--tasks", required=True,
                        help=f"comma-separated MiniWoB tasks, or 'all' ({', '.join(sorted(SOLVERS))})")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per task")
    parser.add_argument("--out", required=True, help="output directory (one Parquet file per task)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (then +1, +2, ...)")
    parser.add_argument("--horizon", type=int, default=10, help="future steps per sample (T)")
    parser.add_argument("--split", default="train", choices=("train", "eval", "test"))
    args = parser.parse_args(argv)
    tasks = sorted(SOLVERS) if args.tasks == "all" else [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in SOLVERS]
    if unknown:
        parser.error(f"no scripted solver for {', '.join(unknown)}; solved tasks: {', '.join(sorted(SOLVERS))}")
    if args.episodes < 1 or args.horizon < 1:
        parser.error("--episodes and --horizon must be at least 1")
    why = miniwob_available()
    if why is not None:
        print(f"MiniWoB++ cannot run: {why}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stats = write_samples_for_tasks(args.out, tasks, args.episodes, args.seed, args.horizon, args.split)
    for task, counts in stats.items():
        print(f"{task}: {counts['samples']} samples from {counts['episodes']} episodes"
              + (f" ({counts['failed']} failed, skipped)" if counts["failed"] else ""))
    return 0
