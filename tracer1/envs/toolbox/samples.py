"""Planning samples from the toolbox's gold trajectories, and the CLI that writes them.

    python -m tracer1.envs.toolbox --episodes 200 --out data/toolbox [--seed 0 --horizon 10 --split train]

One sample per step of each episode (episode i is the task of seed `seed + i`): source "toolbox", the
screenshot (the task's images under their names, PNG), history = the calls executed so far, future = the gold
steps from this one on (up to `horizon`), and the label of the step to take now:
`GroundingLabel("call", tool=..., text=<the tool's result>)` for a call,
`GroundingLabel("answer", answers=<gt_answer>)` for the answer. The tool outputs so far are the sample's `a11y`
text (`[1] ocr(image="img0") -> "..."`, as GTA samples have them) and a list in `meta["tool_outputs"]`.
Every episode is played in `ToolboxEnv`, so each tool really runs; a gold trajectory whose tool results or
answer do not come out as the task says is a bug and raises.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tracer1.data.schema import SPLITS, Sample, SampleWriter
from tracer1.envs.toolbox.env import ToolboxEnv, tool_outputs_text
from tracer1.envs.toolbox.tasks import FAMILIES
from tracer1.envs.toolbox.tools import TOOLS
from tracer1.rewards import GroundingLabel

SOURCE = "toolbox"


def generate_samples(episodes: int, seed: int = 0, horizon: int = 10, split: str = "train",
                     tasks: Sequence[str] | None = None, env: ToolboxEnv | None = None) -> Iterator[Sample]:
    """Samples of `episodes` gold episodes on seeds `seed`, `seed`+1, ... (tasks: families to draw from; all
    when None)."""
    if horizon < 1:
        raise ValueError("horizon must be at least 1")
    env = env or ToolboxEnv(tasks=tasks, split=split)
    for i in range(episodes):
        _, info = env.reset(seed=seed + i, options={"split": split})
        task = env.task
        image, boxes = task.screenshot()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        png = buffer.getvalue()
        width, height = image.size
        panels = {e.text: list(e.box) for e in info["elements"]}   # each image's box on the 0..1000 grid
        episode_id = f"{SOURCE}-{task.id}"
        reward = 0.0
        for index, step in enumerate(task.steps):
            if env.oracle_action() != step:
                raise RuntimeError(f"{task.id}: the oracle left the gold trajectory at step {index}")
            calls = env.calls
            history = [s for s, _ in calls]
            _, reward, terminated, _, info = env.step(step)
            if step.action == "call":
                if info.get("result") != task.results[index] or info["problems"]:
                    raise RuntimeError(f"{task.id}: gold call {index} returned {info.get('result')!r}, not "
                                       f"{task.results[index]!r} ({'; '.join(info['problems'])})")
                label = GroundingLabel("call", tool=step.tool, text=info["result"])
            else:
                label = GroundingLabel("answer", answers=task.gt_answer)
            yield Sample(
                sample_id=f"{episode_id}-{index}", episode_id=episode_id, step_index=index, source=SOURCE,
                instruction=task.instruction, history=history, future=list(task.steps[index:index + horizon]),
                label=label, screenshot=png, width=width, height=height, a11y=tool_outputs_text(calls) or None,
                split=split,
                meta={"task": task.family, "task_id": task.id, "seed": task.seed, "images": panels,
                      "tool_outputs": [result for _, result in calls], "tools": list(TOOLS)},
            )
        if reward != 1.0:
            raise RuntimeError(f"{task.id}: the gold answer {task.answer!r} was not accepted")


def write_samples_to(out_dir: str | Path, episodes: int, seed: int = 0, horizon: int = 10, split: str = "train",
                     tasks: Sequence[str] | None = None) -> tuple[Path, int]:
    """Write `out_dir/toolbox-<split>.parquet`; returns the path and the number of samples."""
    path = Path(out_dir) / f"{SOURCE}-{split}.parquet"
    with SampleWriter(path) as writer:
        count = writer.write_all(generate_samples(episodes, seed, horizon, split, tasks))
    return path, count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracer1.envs.toolbox",
                                     description="Write planning samples from the toolbox world's gold tool-use "
                                                 "trajectories.")
    parser.add_argument("--episodes", type=int, default=100, help="episodes (tasks) to write")
    parser.add_argument("--out", required=True, help="output directory (writes toolbox-<split>.parquet)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (then +1, +2, ...)")
    parser.add_argument("--horizon", type=int, default=10, help="future steps per sample (T)")
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("--tasks", default="all", help=f"comma-separated task families, or 'all' "
                                                       f"({', '.join(FAMILIES)})")
    args = parser.parse_args(argv)
    tasks = None if args.tasks == "all" else [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks or [] if t not in FAMILIES]
    if unknown:
        parser.error(f"unknown task families {', '.join(unknown)}; families: {', '.join(FAMILIES)}")
    if args.episodes < 1 or args.horizon < 1:
        parser.error("--episodes and --horizon must be at least 1")
    path, count = write_samples_to(args.out, args.episodes, args.seed, args.horizon, args.split, tasks)
    print(f"wrote {count} samples from {args.episodes} episodes to {path}", file=sys.stderr)
    return 0
