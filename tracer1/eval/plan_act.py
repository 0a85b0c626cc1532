"""The plan-act loop: the model-predictive way an anticipatory planner acts in a live environment.

    loop = PlanActLoop(config, ModelPlanner(policy_dir, config))     # or OraclePlanner(), a scripted planner
    results = loop.run(episode_specs(config))                       # one dict per episode
    summary = summarize(results)                                    # success rates with Wilson 95% intervals

Each decision: the planner forecasts `horizon` steps from what the env shows (instruction, screenshot,
accessibility text, the steps executed so far), the frozen executor (`make_executor(config.executor)`, the a11y
grounder by default; it acts by DOM element in MiniWoB++) grounds only the first, the env executes it, and the
planner plans again from the new observation. An episode ends when the env ends it (success or not) or when the
step budget `env.max_steps` is spent; every decision counts against the budget, also one whose plan had no readable
step or whose first step the executor could not ground (the screen is then unchanged).

Episodes run in lockstep per worker (`EvalConfig.lockstep`: each its own env), so one `generate` call plans for all
of them. `EvalWorker` is the plain class inside each Ray actor (`python -m tracer1.eval` shares the episodes among
`rollout.num_workers` of them).

What an episode reports (`_Episode.result`): success, decisions taken, whether it *looped* — tried the same action
twice on the same screen (the same accessibility text): the executed step, point included, or, when the executor
could not ground it, the planned first step (a planner stuck on a target that is not there repeats itself just
the same); with a deterministic env and a greedy planner that repeats forever, and it also catches A→B→A cycles;
an unreadable plan is no action — and one
trajectory row per decision in the schema of `tracer1.report` (`screenshot` is PNG bytes here, written to a file
by the caller; `point` and `target_box` in pixels; `correct`: in the built-in world, whether the step brought the
episode closer to its goal by the env's oracle (steps left to the end before vs after, `oracle_outcome`); in
MiniWoB++, known only on the step that ends the episode).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tracer1.eval.config import EpisodeSpec, EvalConfig
from tracer1.executors.base import make_executor, observation_from_env
from tracer1.plan import Step, format_plan, format_step, parse_plan, to_pixels

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95%


# --- planners -------------------------------------------------------------------------------------------------

@dataclass
class Decision:
    """What a planner sees at one decision point of one episode."""

    episode: str
    source: str                 # the env's name: builtin, miniwob
    instruction: str
    screenshot: bytes           # PNG
    width: int
    height: int
    a11y: str
    history: list[Step]         # the steps executed so far, oldest first
    env: Any = None             # the live env (only oracle planners read it)


class ModelPlanner:
    """A trained planner behind a rollout engine. Prompts are built by `tracer1.models.prompt.prompts_for_run` from a
    planning `Sample` of the live state, the one prompt builder of training, so the planner is asked exactly as it
    was trained (horizon, history length, prompt budget, screenshot size from the config)."""

    def __init__(self, policy_dir: str, config: EvalConfig, *, engine=None):
        from tracer1.engines import make_engine  # noqa: PLC0415 — torch loads only for model planners
        from tracer1.models.loading import PlannerBundle, load_planner  # noqa: PLC0415

        self.config = config
        self.engine = engine if engine is not None else make_engine(policy_dir, config.model, config.rollout,
                                                                    seed=config.seed)
        held = getattr(self.engine, "bundle", None)
        self.bundle = held if isinstance(held, PlannerBundle) else load_planner(
            policy_dir, trust_remote_code=config.model.trust_remote_code, load_model=False)
        self.calls = 0

    def prompts(self, decisions: Sequence[Decision], horizon: int) -> list:
        from tracer1.data.schema import Sample  # noqa: PLC0415
        from tracer1.models.prompt import prompts_for_run  # noqa: PLC0415

        samples = [Sample(sample_id=f"{d.episode}-{len(d.history):02d}", episode_id=d.episode,
                          step_index=len(d.history), source=d.source, instruction=d.instruction,
                          history=list(d.history), future=[], screenshot=d.screenshot, width=d.width,
                          height=d.height, a11y=d.a11y, split="test") for d in decisions]
        return prompts_for_run(self.bundle, samples, self.config, horizon=horizon)

    def plan(self, decisions: Sequence[Decision], horizon: int) -> list[str]:
        from tracer1.engines import Sampling  # noqa: PLC0415

        r = self.config.rollout
        self.calls += 1
        sampling = Sampling(n=1, temperature=r.eval_temperature, top_p=r.top_p, max_new_tokens=r.max_new_tokens,
                            seed=self.config.seed * 1_000_003 + self.calls)
        return [group[0].text for group in self.engine.generate(self.prompts(decisions, horizon), sampling)]

    def close(self) -> None:
        sleep = getattr(self.engine, "sleep", None)
        if callable(sleep):
            sleep()


class OraclePlanner:
    """The env's expert as the planner (`checkpoint=oracle`): the built-in world's oracle forecasts `horizon` steps
    from any state (simulated on a copy); MiniWoB++'s scripted solvers give the next step only. A ceiling for the
    loop: with the a11y executor it should solve (nearly) every episode."""

    def plan(self, decisions: Sequence[Decision], horizon: int) -> list[str]:
        out = []
        for d in decisions:
            oracle_plan = getattr(d.env, "oracle_plan", None)
            steps = oracle_plan(horizon) if callable(oracle_plan) else [d.env.oracle_action()]
            out.append(format_plan(steps))
        return out

    def close(self) -> None:
        pass


# --- envs -----------------------------------------------------------------------------------------------------

def make_env(config: EvalConfig):
    """A live env for `config.env.name`, with the step budget as its own step limit."""
    env = config.env
    if env.name == "builtin":
        from tracer1.envs.builtin import BuiltinEnv  # noqa: PLC0415

        return BuiltinEnv(width=env.screen_width, height=env.screen_height, max_steps=env.max_steps,
                          tasks=tuple(env.tasks))
    from tracer1.envs.miniwob import MiniWoBEnv  # noqa: PLC0415

    return MiniWoBEnv(max_steps=env.max_steps, headless=env.headless, time_limit_ms=config.time_limit_ms)


def png(screenshot) -> bytes:
    from PIL import Image  # noqa: PLC0415

    buffer = io.BytesIO()
    Image.fromarray(screenshot).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def pixel_box(box, width: int, height: int) -> list[int]:
    x0, y0 = to_pixels((box[0], box[1]), width, height)
    x1, y1 = to_pixels((box[2], box[3]), width, height)
    return [round(x0), round(y0), round(x1), round(y1)]


# --- one episode ----------------------------------------------------------------------------------------------

@dataclass
class _Episode:
    spec: EpisodeSpec
    env: Any
    obs: dict
    info: dict
    started: float
    rows: list[dict] = field(default_factory=list)
    seen: set = field(default_factory=set)
    loop_step: int | None = None
    done: bool = False
    success: bool = False
    end: str = ""
    unreadable: int = 0
    not_executed: int = 0
    distance: tuple | None = None  # built-in: the oracle's (steps to the end, success) from the current state
    shot: bytes = b""

    def decision(self) -> Decision:
        self.shot = png(self.obs["screenshot"])
        height, width = self.obs["screenshot"].shape[:2]
        return Decision(self.spec.episode, self.spec.env, self.obs["instruction"], self.shot, int(width),
                        int(height), self.obs["a11y"], list(self.env.history), self.env)

    def distance_now(self) -> tuple | None:
        if self.spec.env != "builtin":
            return None
        from tracer1.executors.live import oracle_outcome  # noqa: PLC0415

        return oracle_outcome(self.env.episode)

    def act(self, plan_text: str, executor, budget: int) -> None:
        steps = parse_plan(plan_text).steps
        screen = self.obs["a11y"]
        height, width = self.obs["screenshot"].shape[:2]
        row = {"screenshot": self.shot if self.spec.keep_screenshots else None, "plan": plan_text,
               "executed": None, "point": None, "target_box": None, "correct": None, "feedback": None}
        problems: list[str] = []
        terminated = truncated = False
        if not steps:
            self.unreadable += 1
            problems.append("the plan has no readable step")
            row["correct"] = False
        else:
            execution = executor.execute(steps[0], observation_from_env(self.obs, self.info, self.env))
            problems += execution.problems
            grounded = execution.grounded_step
            tried = format_step(grounded) if grounded is not None else "planned: " + format_step(steps[0])
            if (screen, tried) in self.seen and self.loop_step is None:
                self.loop_step = len(self.rows)
            self.seen.add((screen, tried))
            if execution.step is None:
                self.not_executed += 1
                row["correct"] = False
            else:
                row["executed"] = format_step(grounded)
                if execution.point is not None:
                    row["point"] = [round(v) for v in to_pixels(execution.point, width, height)]
                if execution.element is not None:
                    row["target_box"] = pixel_box(execution.element.box, width, height)
                before = self.distance if self.distance is not None else self.distance_now()
                self.obs, _, terminated, truncated, self.info = self.env.step(execution.step)
                problems += self.info.get("problems", [])
                self.distance = self.distance_now()
                row["correct"] = _progress(before, self.distance, terminated, bool(self.info.get("success")),
                                           self.spec.env)
        self.rows.append(row)
        self.success = bool(self.info.get("success"))
        if terminated or self.success:
            self.done, self.end = True, "success" if self.success else "ended"
        elif truncated or len(self.rows) >= budget:
            self.done, self.end = True, "budget"
        if self.done:
            problems.append({"success": "episode succeeded", "ended": "episode ended, failed",
                             "budget": f"step budget ({budget}) used up"}[self.end])
        row["feedback"] = "; ".join(problems) or None

    def result(self) -> dict:
        return {"episode": self.spec.episode, "env": self.spec.env, "task": self.info.get("task", self.spec.task),
                "seed": self.spec.seed, "instruction": self.obs["instruction"], "success": self.success,
                "steps": len(self.rows), "end": self.end, "looped": self.loop_step is not None,
                "loop_step": self.loop_step, "unreadable_plans": self.unreadable, "not_executed": self.not_executed,
                "seconds": round(time.perf_counter() - self.started, 3), "trajectory": self.rows}


def _progress(before, after, terminated: bool, success: bool, env: str) -> bool | None:
    """Was the step right? Ending in success is; ending otherwise is not; in the built-in world, a step after
    which the oracle needs fewer steps to a successful end is (None when the goal is out of its reach before)."""
    if terminated or success:
        return success
    if env != "builtin" or before is None or before[0] is None or not before[1]:
        return None
    return after is not None and after[0] is not None and after[1] and after[0] < before[0]


# --- the loop -------------------------------------------------------------------------------------------------

class PlanActLoop:
    """Plays episodes with a planner and the frozen executor (see the module docstring). `planner.plan(decisions,
    horizon) -> plan texts`. Envs are kept between batches (a MiniWoB env holds a browser); `close()` ends them."""

    def __init__(self, config: EvalConfig, planner, *, executor=None):
        self.config, self.planner = config, planner
        self.executor = executor if executor is not None else make_executor(config.executor, env_config=config.env)
        self._envs: list = []

    def _env(self, slot: int):
        while len(self._envs) <= slot:
            self._envs.append(make_env(self.config))
        return self._envs[slot]

    def run(self, specs: Sequence[EpisodeSpec], horizon: int | None = None) -> list[dict]:
        """One result dict per episode (`_Episode.result`), in the order of `specs`."""
        horizon = horizon or self.config.horizon
        out: list[dict] = []
        size = self.config.lockstep
        for start in range(0, len(specs), size):
            out += self._batch(specs[start:start + size], horizon)
        return out

    def _batch(self, specs: Sequence[EpisodeSpec], horizon: int) -> list[dict]:
        budget = self.config.env.max_steps
        episodes = []
        for slot, spec in enumerate(specs):
            env = self._env(slot)
            obs, info = env.reset(seed=spec.seed, options={"task": spec.task} if spec.task else None)
            episodes.append(_Episode(spec, env, obs, info, time.perf_counter()))
        while active := [e for e in episodes if not e.done]:
            plans = self.planner.plan([e.decision() for e in active], horizon)
            if len(plans) != len(active):
                raise RuntimeError(f"the planner answered {len(plans)} plans for {len(active)} decisions")
            for episode, plan in zip(active, plans):
                episode.act(plan, self.executor, budget)
        return [e.result() for e in episodes]

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs.clear()
        self.executor.close()
        self.planner.close()


class EvalWorker:
    """The plain class inside each evaluation actor: a planner (the model at `policy_dir`, or the env's oracle when
    it is None) and a `PlanActLoop`."""

    def __init__(self, config: EvalConfig, policy_dir: str | None):
        planner = OraclePlanner() if policy_dir is None else ModelPlanner(policy_dir, config)
        self.loop = PlanActLoop(config, planner)

    def run(self, specs: Sequence[EpisodeSpec], horizon: int | None = None) -> list[dict]:
        return self.loop.run(specs, horizon)

    def close(self) -> None:
        self.loop.close()


# --- statistics -----------------------------------------------------------------------------------------------

def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a success rate (None for no trials). Unlike p ± z·sqrt(p(1-p)/n) it stays within
    [0, 1] and is not empty at 0/n or n/n, which small evaluations hit all the time."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must be between 0 and n={n}")
    p, z2 = successes / n, z * z
    denominator = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At 0/n and n/n the closed side is exactly 0 or 1 (rounding would leave 1e-16 off).
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high


def rates(results: Sequence[dict]) -> dict:
    """Success rate with its Wilson 95% interval, steps per success (mean decisions of the successful episodes),
    loop share and mean decisions of a set of episode results."""
    n = len(results)
    wins = [r for r in results if r["success"]]
    interval = wilson_interval(len(wins), n)
    return {"episodes": n, "successes": len(wins), "success_rate": len(wins) / n if n else None,
            "ci95": list(interval) if interval else None,
            "steps_per_success": sum(r["steps"] for r in wins) / len(wins) if wins else None,
            "loop_share": sum(r["looped"] for r in results) / n if n else None,
            "mean_steps": sum(r["steps"] for r in results) / n if n else None}


def summarize(results: Sequence[dict]) -> dict:
    """`rates` over all episodes and per (env, task)."""
    by_task: dict[str, list[dict]] = {}
    for r in results:
        by_task.setdefault(f"{r['env']}/{r['task']}", []).append(r)
    return {"overall": rates(results), "by_task": {k: rates(v) for k, v in sorted(by_task.items())}}
