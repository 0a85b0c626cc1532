"""One plan-act episode in a live env: what the planner is shown at each decision and what one decision does.

    episode = PlanActEpisode.start(spec, env)           # env.reset(seed, task) of an `EpisodeSpec`
    sample = episode.planning_sample()                  # what the planner is asked from (a `Sample`, no future)
    episode.act(plan_text, executor, budget)            # ground the first step, step the env, record the row
    episode.result()                                    # the episode's dict (success, steps, loop, rows)

The evaluation loop (`tracer1.eval.plan_act.PlanActLoop`) and stage 3's environment actors
(`tracer1.envs.pool.EnvWorker`) both play episodes through this class, so what is trained and what is measured is
the same loop. Every decision counts against the step budget, also one whose plan had no readable step or whose
first step the executor could not ground (the screen is then unchanged).

The history shown to the planner is the steps executed so far *as a planner writes them*: a step that names its
target loses the point the executor grounded it at (`click(target="Settings")`, not `click(target="Settings",
point=(125, 206))`), the form of every training sample's history (oracle trajectories), so training and acting
see one history format.

What an episode reports (`result`): success, decisions taken, whether it *looped* — tried the same action twice on
the same screen (the same accessibility text): the executed step, point included, or, when the executor could not
ground it, the planned first step; with a deterministic env and a greedy planner that repeats forever, and it also
catches A→B→A cycles; an unreadable plan is no action — and one trajectory row per decision in the schema of
`tracer1.report` (`screenshot` is PNG bytes here; `point` and `target_box` in pixels; `correct`: in the built-in
world, whether the step brought the episode closer to its goal by the env's oracle (steps left to the end before
vs after, `oracle_outcome`); in MiniWoB++, known only on the step that ends the episode).
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass, field
from typing import Any

from tracer1.plan import Step, format_step, parse_plan, to_pixels


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to play: the env decides everything else from (task, seed)."""

    episode: str            # unique id, also the trajectory's name
    env: str
    task: str | None        # None: the built-in world draws the family from the seed
    seed: int
    keep_screenshots: bool = False


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
    history: list[Step]         # the steps executed so far, oldest first, as a planner writes them
    env: Any = None             # the live env (only oracle planners read it)


def task_seed(prefix: str, env: str, family: str, index: int, seed: int) -> int:
    """A task seed hashed from its purpose (`prefix`: training or evaluation), so training and evaluation seeds
    never meet (MiniWoB seeds must fit a signed 32-bit int)."""
    digest = hashlib.sha256(f"{prefix}:{env}:{family}:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def planning_sample(decision: Decision):
    """The `Sample` a planner's prompt is built from at this decision (no reference future: it is live)."""
    from tracer1.data.schema import Sample  # noqa: PLC0415

    return Sample(sample_id=f"{decision.episode}-{len(decision.history):02d}", episode_id=decision.episode,
                  step_index=len(decision.history), source=decision.source, instruction=decision.instruction,
                  history=list(decision.history), future=[], screenshot=decision.screenshot, width=decision.width,
                  height=decision.height, a11y=decision.a11y, split="test")


def as_planned(step: Step) -> Step:
    """A step as the planner wrote it: one that names its target without the executor's point."""
    return step._replace(point=None) if step.target is not None and step.point is not None else step


def make_env(env_config, *, time_limit_ms: int | None = None):
    """A live env for `env_config.name` (`EnvConfig`), with the step budget as its own step limit."""
    if env_config.name == "builtin":
        from tracer1.envs.builtin import BuiltinEnv  # noqa: PLC0415

        return BuiltinEnv(width=env_config.screen_width, height=env_config.screen_height,
                          max_steps=env_config.max_steps, tasks=tuple(env_config.tasks))
    if env_config.name == "miniwob":
        from tracer1.envs.miniwob import MiniWoBEnv  # noqa: PLC0415

        return MiniWoBEnv(max_steps=env_config.max_steps, headless=env_config.headless, time_limit_ms=time_limit_ms)
    raise ValueError(f"env.name={env_config.name!r} has no plan-act episodes; choose builtin or miniwob")


def png(screenshot) -> bytes:
    from PIL import Image  # noqa: PLC0415

    buffer = io.BytesIO()
    Image.fromarray(screenshot).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def pixel_box(box, width: int, height: int) -> list[int]:
    x0, y0 = to_pixels((box[0], box[1]), width, height)
    x1, y1 = to_pixels((box[2], box[3]), width, height)
    return [round(x0), round(y0), round(x1), round(y1)]


@dataclass
class PlanActEpisode:
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
    execute_s: float = 0.0         # seconds the executor spent grounding first steps
    env_s: float = 0.0             # seconds the env spent stepping (and the oracle judging progress)

    @classmethod
    def start(cls, spec: EpisodeSpec, env) -> PlanActEpisode:
        obs, info = env.reset(seed=spec.seed, options={"task": spec.task} if spec.task else None)
        return cls(spec, env, obs, info, time.perf_counter())

    def decision(self) -> Decision:
        self.shot = png(self.obs["screenshot"])
        height, width = self.obs["screenshot"].shape[:2]
        return Decision(self.spec.episode, self.spec.env, self.obs["instruction"], self.shot, int(width),
                        int(height), self.obs["a11y"], [as_planned(s) for s in self.env.history], self.env)

    def planning_sample(self):
        return planning_sample(self.decision())

    def expert_plan(self, horizon: int) -> list[Step] | None:
        """The env's expert's next steps from the live state: the built-in oracle forecasts `horizon` of them,
        MiniWoB++'s scripted solvers give the next one; None where there is no expert (or it cannot go on)."""
        try:
            oracle_plan = getattr(self.env, "oracle_plan", None)
            if callable(oracle_plan):
                return list(oracle_plan(horizon))
            oracle_action = getattr(self.env, "oracle_action", None)
            return [oracle_action()] if callable(oracle_action) else None
        except Exception:  # noqa: BLE001 — a state the expert cannot plan from has no reference; not an error
            return None

    def distance_now(self) -> tuple | None:
        if self.spec.env != "builtin":
            return None
        from tracer1.executors.live import oracle_outcome  # noqa: PLC0415

        return oracle_outcome(self.env.episode)

    def act(self, plan_text: str, executor, budget: int) -> None:
        from tracer1.executors.base import observation_from_env  # noqa: PLC0415

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
            t0 = time.perf_counter()
            execution = executor.execute(steps[0], observation_from_env(self.obs, self.info, self.env))
            self.execute_s += time.perf_counter() - t0
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
                t0 = time.perf_counter()
                before = self.distance if self.distance is not None else self.distance_now()
                self.obs, _, terminated, truncated, self.info = self.env.step(execution.step)
                problems += self.info.get("problems", [])
                self.distance = self.distance_now()
                self.env_s += time.perf_counter() - t0
                row["correct"] = progress(before, self.distance, terminated, bool(self.info.get("success")),
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
                "seconds": round(time.perf_counter() - self.started, 3), "execute_s": round(self.execute_s, 4),
                "env_s": round(self.env_s, 4), "trajectory": self.rows}


def progress(before, after, terminated: bool, success: bool, env: str) -> bool | None:
    """Was the step right? Ending in success is; ending otherwise is not; in the built-in world, a step after
    which the oracle needs fewer steps to a successful end is (None when the goal is out of its reach before)."""
    if terminated or success:
        return success
    if env != "builtin" or before is None or before[0] is None or not before[1]:
        return None
    return after is not None and after[0] is not None and after[1] and after[0] < before[0]
