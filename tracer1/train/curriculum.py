"""Stage 3's task side: which tasks a step plays, what an episode earns, and the rescue of groups without signal.

* `task_families` — the families stage 3 trains on and those it holds out (`stage3.held_out_families`);
* `Curriculum` — draws `stage3.tasks_per_step` (family, seed) tasks a step. A group whose G episodes all fail or
  all succeed has no spread and teaches nothing, so with `stage3.curriculum` a family whose recent success rate
  (over its last `curriculum_window` training episodes) lies strictly between 0 and 1, or that has not been
  played yet, is drawn with weight 1 and one at 0 or 1 with `curriculum_floor`. Families differ in length (2 to
  16 oracle steps), so this is a curriculum over lengths too: it follows the frontier of what the planner can
  nearly do. Seeds come from `stage3.train_seeds` per family, hashed apart from every evaluation seed;
* `episode_return` — success, plus the optional shaping terms, each a mean over decisions in [0, 1];
* `ReplayBuffer` — the shortest successful episode of each task seen, and the latest of each family
  (`stage3.replay`); `rescue` puts the task's own into a group of that task whose episodes all failed, in place of
  one failure (ARPO's replay), or, when the task has none yet, the family's latest (another seed of the same
  family: with 64 seeds per family a task recurs rarely in a short run, its family every few steps). Its decisions
  keep their prompts and sampled ids; the learner takes their log-probs under the current policy, as for fresh
  ones.
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque
from dataclasses import replace

from tracer1.config import BUILTIN_HELD_OUT
from tracer1.envs.episode import EpisodeSpec, task_seed

TRAIN_PREFIX = "tracer1-stage3-train"


def task_families(config) -> tuple[list[str], list[str]]:
    """(families trained on, families held out of training) for the run's env."""
    env = config.env
    if env.name == "builtin":
        from tracer1.envs.builtin import FAMILIES  # noqa: PLC0415

        known = list(FAMILIES)
        default_held_out = list(BUILTIN_HELD_OUT)
    else:
        from tracer1.eval.config import MINIWOB_SUITES  # noqa: PLC0415

        known = list(env.tasks or MINIWOB_SUITES["click"])
        default_held_out = []
    pool = list(env.tasks) if env.tasks else known
    held = config.stage3.held_out_families
    held = [f for f in default_held_out if f in pool] if held is None else list(held)
    unknown = [f for f in [*pool, *held] if env.name == "builtin" and f not in known]
    if unknown:
        raise ValueError(f"unknown built-in task families {', '.join(unknown)}; known: {', '.join(known)}")
    train = [f for f in pool if f not in held]
    if not train:
        raise ValueError(f"stage 3 has no family left to train on: env.tasks {pool} are all held out ({held})")
    return train, held


class Curriculum:
    def __init__(self, families: list[str], config):
        s3 = config.stage3
        self.families, self.env, self.seed = list(families), config.env.name, config.seed
        self.enabled, self.floor, self.train_seeds = s3.curriculum, s3.curriculum_floor, s3.train_seeds
        self.recent = {f: deque(maxlen=s3.curriculum_window) for f in self.families}

    def rate(self, family: str) -> float | None:
        seen = self.recent[family]
        return sum(seen) / len(seen) if seen else None

    def weight(self, family: str) -> float:
        rate = self.rate(family)
        if not self.enabled or rate is None or 0.0 < rate < 1.0:
            return 1.0
        return self.floor

    def draw(self, count: int, step: int) -> list[tuple[str, int]]:
        """`count` (family, seed) tasks for `step`: distinct families while there are enough, by weight."""
        rng = random.Random(f"{TRAIN_PREFIX}:{self.seed}:{step}")
        pool, tasks = list(self.families), []
        for _ in range(count):
            if not pool:
                pool = list(self.families)
            family = rng.choices(pool, weights=[self.weight(f) for f in pool])[0]
            pool.remove(family)
            index = rng.randrange(self.train_seeds)
            tasks.append((family, task_seed(TRAIN_PREFIX, self.env, family, index, self.seed)))
        return tasks

    def record(self, family: str, success: bool) -> None:
        if family in self.recent:
            self.recent[family].append(bool(success))

    def state(self) -> dict:
        return {f: list(seen) for f, seen in self.recent.items()}

    def load(self, state: dict) -> None:
        for family, seen in state.items():
            if family in self.recent:
                self.recent[family].extend(seen)


def group_specs(env: str, tasks: list[tuple[str, int]], group_size: int, step: int) -> list[list[EpisodeSpec]]:
    """G episode specs per (family, seed) task, named by step, task and member."""
    return [[EpisodeSpec(f"s{step:04d}-t{t}-{family}-e{e}", env, family, seed) for e in range(group_size)]
            for t, (family, seed) in enumerate(tasks)]


def episode_return(result: dict, stage3) -> float:
    """success_weight · success + align_weight · mean alignment + progress_weight · share of decisions that made
    progress. Both shaping terms are means in [0, 1] over the episode's decisions, so looping longer does not pay,
    and their weights sum below success_weight (checked by the config), so no failing episode earns more than a
    successful one."""
    rows = result["trajectory"]
    value = stage3.success_weight * bool(result["success"])
    if stage3.align_weight:
        scores = [a for a in result.get("alignment", []) if a is not None]
        value += stage3.align_weight * (sum(scores) / len(scores) if scores else 0.0)
    if stage3.progress_weight and rows:
        value += stage3.progress_weight * sum(row["correct"] is True for row in rows) / len(rows)
    return value


class ReplayBuffer:
    """The shortest successful episode of each task, for `capacity` tasks (the least recently stored go first), and
    the latest successful episode of each family."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.episodes: OrderedDict = OrderedDict()
        self.families: dict = {}

    def add(self, task: tuple[str, int], episode) -> None:
        kept = self.episodes.get(task)
        if kept is None or len(episode.decisions) <= len(kept.decisions):
            self.episodes[task] = episode
        self.episodes.move_to_end(task)
        self.families[task[0]] = episode
        while len(self.episodes) > self.capacity:
            self.episodes.popitem(last=False)

    def rescue(self, task: tuple[str, int], group: list) -> bool:
        """Put the task's stored success — else its family's — into `group` (in place of its last episode) when
        every episode of it failed; -> whether it did."""
        stored = self.episodes.get(task) or self.families.get(task[0])
        if stored is None or any(e.success for e in group):
            return False
        group[-1] = replace(stored, replayed=True)
        return True
