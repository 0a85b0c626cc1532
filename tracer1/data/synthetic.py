"""Planning samples from the built-in GUI world: the oracle plays generated tasks, one sample per step.

    python -m tracer1.data.synthetic --episodes 200 --out data/builtin --seed 0 --split train

writes `data/builtin/train.parquet` (the schema of `tracer1.data.schema`). Each sample is one decision point:
the instruction, the PNG screenshot and its size, the accessibility text, the steps executed so far (history),
the oracle's next steps from this state, up to `horizon` (future; simulated on a copy of the state, so
future[0] is the step the episode takes next) and the grounding label of future[0]: the target element's box
and centre for click/long_press/type, the text typed or answered, the scroll direction, the key, the app, the
finish status. `meta` holds the task family, the app, the episode's seed and the oracle's episode length.

The same arguments give the same bytes. Episode i of a run uses the task seed `episode_seed(seed, split, i)`,
so train and eval runs with the same --seed still see different tasks.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from PIL import Image

from tracer1.data.schema import SPLITS, Sample, SampleWriter
from tracer1.envs.base import Element, a11y_text, find_element
from tracer1.envs.builtin import FAMILIES, BuiltinEnv
from tracer1.plan import Step
from tracer1.rewards import GroundingLabel

SOURCE = "builtin"
PNG_COMPRESS_LEVEL = 1  # zlib level: 1 is about as small as 6 on flat UI screenshots, and twice as fast


def episode_seed(seed: int, split: str, index: int) -> int:
    """The task seed of episode `index` of a run (stable across processes and Python versions)."""
    digest = hashlib.sha256(f"tracer1-synthetic:{split}:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def step_label(step: Step, elements: list[Element]) -> GroundingLabel:
    """The grounding label of `step` on the screen it is taken from: the target element's box and centre when
    it names one (or its point), and the step's text, direction, key, app or status."""
    box = point = None
    if step.target is not None:
        element = find_element(elements, step.target)
        if element is not None:
            box, point = element.box, element.center
    if point is None and step.point is not None:
        point = step.point
    text = step.text if step.action in ("type", "answer") else None
    return GroundingLabel(action=step.action, box=box, point=point, text=text, direction=step.direction,
                          key=step.key, app=step.app, status=step.status)


def png_bytes(image: Image.Image, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=compress_level)
    return buffer.getvalue()


def episode_samples(env: BuiltinEnv, episode_id: str, horizon: int = 10, split: str = "train",
                    compress_level: int = PNG_COMPRESS_LEVEL) -> Iterator[Sample]:
    """Play the oracle through the env's current episode (after `reset`), yielding one sample per step."""
    task = env.task
    meta = {"task": task.family, "app": task.app, "seed": task.seed, "oracle_steps": task.oracle_steps}
    t = 0
    while True:
        future = env.oracle_plan(horizon)
        elements = env.elements
        image = env.image()
        yield Sample(
            sample_id=f"{episode_id}-{t:02d}", episode_id=episode_id, step_index=t, source=SOURCE,
            instruction=task.instruction, history=env.history, future=future,
            label=step_label(future[0], elements), screenshot=png_bytes(image, compress_level),
            width=image.width, height=image.height, a11y=a11y_text(elements), split=split,
            meta={**meta, "screen": env.phone.screen[0]})
        _, _, terminated, truncated, info = env.step(future[0])
        if info["problems"]:
            raise RuntimeError(f"{episode_id}: oracle step {future[0]} failed: {info['problems']}")
        t += 1
        if terminated or truncated:
            if not info["success"]:
                raise RuntimeError(f"{episode_id}: the oracle did not solve {task.family!r} (seed {task.seed})")
            return


def generate_samples(episodes: int, seed: int = 0, horizon: int = 10, split: str = "train", width: int = 360,
                     height: int = 640, tasks: Sequence[str] = (), max_steps: int = 20,
                     compress_level: int = PNG_COMPRESS_LEVEL, progress=None) -> Iterator[Sample]:
    """Samples from `episodes` oracle episodes of generated tasks (families `tasks`, all when empty).
    `progress`, when given, is called with the episode's sample count after each episode."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    env = BuiltinEnv(width=width, height=height, max_steps=max_steps, tasks=tuple(tasks))
    for i in range(episodes):
        env.reset(seed=episode_seed(seed, split, i))
        n = 0
        for sample in episode_samples(env, f"{SOURCE}-{split}-{seed}-{i:06d}", horizon, split, compress_level):
            n += 1
            yield sample
        if progress is not None:
            progress(n)


def write_dataset(out_dir: str | Path, episodes: int, seed: int = 0, horizon: int = 10, split: str = "train",
                  width: int = 360, height: int = 640, tasks: Sequence[str] = (), max_steps: int = 20,
                  show_progress: bool = True) -> tuple[Path, int]:
    """Write `out_dir/<split>.parquet`; returns its path and the number of samples."""
    from tqdm import tqdm

    path = Path(out_dir) / f"{split}.parquet"
    with tqdm(total=episodes, unit="episode", disable=not show_progress, desc=f"builtin {split}") as bar:
        def advance(n: int) -> None:
            bar.update(1)
            bar.set_postfix(samples=writer.count, refresh=False)

        with SampleWriter(path) as writer:
            writer.write_all(generate_samples(episodes, seed, horizon, split, width, height, tasks, max_steps,
                                              progress=advance))
    return path, writer.count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracer1.data.synthetic",
                                     description="Write planning samples from oracle episodes of the built-in GUI "
                                                 "world (one Parquet file per split).")
    parser.add_argument("--episodes", type=int, required=True, help="oracle episodes to play")
    parser.add_argument("--out", required=True, help="output directory (writes <split>.parquet there)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (episode i plays task seed f(seed, split, i))")
    parser.add_argument("--horizon", type=int, default=10, help="T: reference future steps per sample")
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("--width", type=int, default=360, help="screenshot width in pixels")
    parser.add_argument("--height", type=int, default=640, help="screenshot height in pixels")
    parser.add_argument("--max-steps", type=int, default=20, help="episode step limit (tasks fit within it)")
    parser.add_argument("--tasks", default="", help=f"comma-separated task families (default all: "
                                                    f"{', '.join(FAMILIES)})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in FAMILIES]
    if unknown:
        parser.error(f"unknown task families {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    try:
        path, count = write_dataset(args.out, args.episodes, args.seed, args.horizon, args.split, args.width,
                                    args.height, tasks, args.max_steps, show_progress=not args.no_progress)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"wrote {count} samples from {args.episodes} episodes to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
