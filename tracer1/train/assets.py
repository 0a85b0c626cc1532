"""What a run needs before it trains: the planner checkpoint and the planning samples, built when missing, and
the order in which a run walks the samples (`batches`), and the policy an RL stage starts from (`start_planner`).

The embedded default downloads nothing: with `model.path` null the tiny planner is built from its config, and with
`data.train_path` / `data.eval_path` null the built-in world's oracle writes the samples. Both are cached under
`<logging.out_dir>/.cache/`, keyed by everything that changes their content, and created atomically (temp dir,
then rename), so two runs started together never read half a cache entry.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from tracer1.data.schema import read_samples


def cache_dir(config) -> Path:
    return Path(config.logging.out_dir) / ".cache"


def cached(path: Path, build: Callable[[Path], None]) -> Path:
    """`path` if it exists, else `build(tmp)` into a temp dir beside it and rename that into place."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        build(tmp)
        try:
            tmp.rename(path)
        except OSError:  # another run finished the same entry first: theirs is as good as ours
            if not path.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def planner_path(config) -> Path:
    """The planner to start from: `model.path` when set, else the tiny planner of `model.kind` (built once)."""
    if config.model.path:
        return Path(config.model.path)
    from tracer1.models.tiny import build_tiny_planner, recipe_digest  # noqa: PLC0415 — embedded default only

    kind = "text" if config.model.kind == "tiny-text" else "vl"
    return cached(cache_dir(config) / f"tiny-{kind}-seed{config.seed}-{recipe_digest()}",
                  lambda tmp: build_tiny_planner(tmp, kind=kind, seed=config.seed))


def _generated(config, split: str, episodes: int) -> Path:
    from tracer1.data.synthetic import write_dataset  # noqa: PLC0415

    env = config.env
    key = {"split": split, "episodes": episodes, "seed": config.seed, "horizon": config.horizon,
           "size": [env.screen_width, env.screen_height], "max_steps": env.max_steps, "tasks": env.tasks}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    directory = cached(cache_dir(config) / f"builtin-{split}-{digest}", lambda tmp: write_dataset(
        tmp, episodes, seed=config.seed, horizon=config.horizon, split=split, width=env.screen_width,
        height=env.screen_height, tasks=env.tasks, max_steps=env.max_steps))
    return directory / f"{split}.parquet"


def dataset_path(config, split: str) -> Path:
    """Training ('train') or held-out ('eval') samples: the configured path, else generated built-in episodes."""
    configured = config.data.train_path if split == "train" else config.data.eval_path
    if configured:
        return Path(configured)
    if config.env.name != "builtin":
        raise ValueError(f"data.{'train' if split == 'train' else 'eval'}_path is null and env.name is "
                         f"{config.env.name!r}: only the built-in world generates data on its own; convert or "
                         f"generate samples first (see README) and set the path")
    episodes = config.data.generate_episodes if split == "train" else config.data.eval_episodes
    return _generated(config, split, episodes)


def load_split(config, split: str, limit: int | None = None) -> list:
    """The samples of `split` (whole file: the planning datasets of the embedded default are small)."""
    samples = read_samples(dataset_path(config, split))
    return samples[:limit] if limit is not None else samples


def batches(size: int, count: int, seed: int, shuffle: bool = True):
    """Indices of `size` samples per step, walking epoch after epoch through seeded permutations of the `count`
    samples, or through 0..count-1 in order (`shuffle=False`, `data.shuffle`)."""
    rng, order = random.Random(seed), []
    while True:
        while len(order) < size:
            fresh = list(range(count))
            if shuffle:
                rng.shuffle(fresh)
            order += fresh
        yield order[:size]
        order = order[size:]


def start_planner(config) -> Path:
    """`checkpoint.init_from`, else the SFT warm start of the embedded default (trained once, then cached)."""
    if config.checkpoint.init_from:
        from tracer1.train.checkpoints import policy_dir  # noqa: PLC0415

        return policy_dir(config.checkpoint.init_from)
    from tracer1.models.prompt import PROMPT_FORMAT  # noqa: PLC0415
    from tracer1.train.sft import train_sft  # noqa: PLC0415

    warm = config.model_copy(update={"stage": "sft"}, deep=True)
    # Keyed by what shapes the warm start's weights only, so RL settings can change without retraining it.
    shaping = config.model_dump(mode="json", include={"seed", "horizon", "model", "data", "env", "sft", "learner"})
    for evaluation in config.sft.EVALUATION_FIELDS:
        del shaping["sft"][evaluation]
    shaping["history_len"] = config.rollout.history_len
    shaping["prompt_format"] = PROMPT_FORMAT
    key = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()

    def build(tmp: Path) -> None:  # the HF directory itself, with the SFT run (report, metrics) kept in run/
        train_sft(warm, tmp / "run")
        for item in (tmp / "run" / "checkpoints" / "final").iterdir():
            shutil.move(str(item), tmp / item.name)
        shutil.rmtree(tmp / "run" / "checkpoints")

    path = cache_dir(config) / f"sft-{key[:12]}"
    fresh = not path.exists()
    cached(path, build)
    if fresh:  # the SFT summary named the directory it was built in, which has just been renamed
        print(f"  the SFT warm start is kept as {path} (its report and logs in {path / 'run'})")
    return path
