"""`EnvWorker`: the plain class inside each stage-3 environment actor — `slots` live envs, one running plan-act
episode each, and the frozen executor that grounds each plan's first step beside them.

    worker = EnvWorker(config.env, config.executor, config.reward, slots=16, horizon=10)
    updates = worker.start([(slot, spec), ...], budget=12)   # reset: each slot's first decision (a `Sample`)
    updates = worker.act([(slot, plan_text), ...])     # one decision each: ground, step, the next decision or the end

Each `Update` carries the slot's next planning sample, or, when the episode ended, its result (the dict of
`tracer1.envs.episode.PlanActEpisode.result`, plus the per-decision `alignment`). The driver-side scheduler
(`tracer1.train.episodes`) decides which episode runs where and what to do when an actor dies or hangs.

Failures inside the actor stay with their episode: an env whose reset raises is built again and reset again
(`RESET_TRIES` times in all, then the episode is reported lost); a step that raises (a MiniWoB browser that died
more often than its own restarts allow) ends that episode as lost and rebuilds the env, and the other slots go on. The built-in
world's envs are cheap, so an actor holds many; MiniWoB++'s each hold a browser (which restarts and replays itself
after a crash, `MiniWoBEnv`).

The executor lives here rather than in an actor of its own because the a11y and oracle executors need the live
env and cost microseconds; a VLM executor would be its own actor pool (not supported in stage 3 yet).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tracer1.envs.episode import EpisodeSpec, PlanActEpisode, make_env

log = logging.getLogger(__name__)

RESET_TRIES = 3


@dataclass
class Update:
    """One slot after a call: its next planning sample, or its episode's end (`result`), or that it was lost."""

    slot: int
    sample: Any = None          # tracer1.data.schema.Sample of the next decision; None when the episode is over
    result: dict | None = None  # the finished episode (PlanActEpisode.result + "alignment")
    lost: str | None = None     # why the episode was lost (its env failed)

    @property
    def done(self) -> bool:
        return self.sample is None


class EnvWorker:
    def __init__(self, env_config, executor_config, reward_config, *, slots: int, horizon: int, align: bool = False,
                 time_limit_ms: int | None = None):
        """`align`: score each forecast against the expert's plan from the live state (stage 3's alignment
        shaping; costs an oracle simulation per decision)."""
        from tracer1.executors.base import make_executor  # noqa: PLC0415

        self.env_config, self.reward_config = env_config, reward_config
        self.horizon, self.align, self.time_limit_ms = horizon, align, time_limit_ms
        self.executor = make_executor(executor_config, env_config=env_config)
        self.envs: list = [None] * slots
        self.episodes: list[PlanActEpisode | None] = [None] * slots
        self.alignment: list[list[float | None]] = [[] for _ in range(slots)]
        self.budgets = [1] * slots

    def _env(self, slot: int, fresh: bool = False):
        if fresh and self.envs[slot] is not None:
            self._close(slot)
        if self.envs[slot] is None:
            self.envs[slot] = make_env(self.env_config, time_limit_ms=self.time_limit_ms)
        return self.envs[slot]

    def _close(self, slot: int) -> None:
        env, self.envs[slot] = self.envs[slot], None
        try:
            env.close()
        except Exception:  # noqa: BLE001 — a broken env is being thrown away
            log.warning("closing the env of slot %d failed", slot, exc_info=True)

    def start(self, starts: list[tuple[int, EpisodeSpec]], budget: int) -> list[Update]:
        """Reset each slot to its episode's task and seed, to play at most `budget` decisions; -> each slot's first
        decision."""
        out = []
        for slot, spec in starts:
            error = None
            for attempt in range(RESET_TRIES):
                try:
                    episode = PlanActEpisode.start(spec, self._env(slot, fresh=attempt > 0))
                    break
                except Exception as exc:  # noqa: BLE001 — retried on a new env, then reported with the reason
                    error = f"reset failed {attempt + 1} times: {type(exc).__name__}: {exc}"
                    log.warning("episode %s: %s", spec.episode, error)
            else:
                self.episodes[slot] = None
                out.append(Update(slot, lost=error))
                continue
            self.episodes[slot], self.alignment[slot], self.budgets[slot] = episode, [], budget
            out.append(Update(slot, sample=episode.planning_sample()))
        return out

    def act(self, plans: list[tuple[int, str]]) -> list[Update]:
        """One decision in each slot: its plan's first step grounded and executed; -> the next decision or the
        episode's end."""
        out = []
        for slot, plan in plans:
            episode = self.episodes[slot]
            if episode is None:
                out.append(Update(slot, lost="no episode runs in this slot (its actor was restarted)"))
                continue
            try:
                self.alignment[slot].append(self._alignment(episode, plan) if self.align else None)
                episode.act(plan, self.executor, self.budgets[slot])
            except Exception as exc:  # noqa: BLE001 — this episode is lost; the env is rebuilt, the others go on
                log.warning("episode %s lost at decision %d", episode.spec.episode, len(episode.rows) + 1,
                            exc_info=True)
                self.episodes[slot] = None
                self._close(slot)
                out.append(Update(slot, lost=f"a step failed: {type(exc).__name__}: {exc}"))
                continue
            if episode.done:
                self.episodes[slot] = None
                out.append(Update(slot, result={**episode.result(), "alignment": list(self.alignment[slot])}))
            else:
                out.append(Update(slot, sample=episode.planning_sample()))
        return out

    def _alignment(self, episode: PlanActEpisode, plan: str) -> float | None:
        """The forecast's stage-1 reward against the expert's plan from the live state, clipped to [0, 1] (so an
        unreadable plan scores 0, like one that matches nothing); None where the env has no expert."""
        from tracer1.rewards.trajectory import trajectory_reward  # noqa: PLC0415

        expert = episode.expert_plan(self.horizon)
        if not expert:
            return None
        return min(1.0, max(0.0, trajectory_reward(plan, expert, self.reward_config, self.horizon)))

    def browser_pids(self) -> list[int]:
        """Browser processes of this actor's MiniWoB++ envs (tests kill one to check recovery)."""
        return [pid for env in self.envs if env is not None for pid in getattr(env, "browser_pids", lambda: [])()]

    def close(self) -> None:
        for slot in range(len(self.envs)):
            if self.envs[slot] is not None:
                self._close(slot)
        self.executor.close()
