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

What an episode does and reports is `tracer1.envs.episode.PlanActEpisode` (shared with stage 3's environment
actors, so what is trained and what is measured is one loop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tracer1.envs.episode import Decision, PlanActEpisode, make_env, planning_sample
from tracer1.eval.config import EpisodeSpec, EvalConfig
from tracer1.executors.base import make_executor
from tracer1.plan import format_plan

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95%


# --- planners -------------------------------------------------------------------------------------------------

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
        from tracer1.models.prompt import prompts_for_run  # noqa: PLC0415

        return prompts_for_run(self.bundle, [planning_sample(d) for d in decisions], self.config, horizon=horizon)

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
            self._envs.append(make_env(self.config.env, time_limit_ms=self.config.time_limit_ms))
        return self._envs[slot]

    def run(self, specs: Sequence[EpisodeSpec], horizon: int | None = None) -> list[dict]:
        """One result dict per episode (`PlanActEpisode.result`), in the order of `specs`."""
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
            episodes.append(PlanActEpisode.start(spec, self._env(slot)))
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
