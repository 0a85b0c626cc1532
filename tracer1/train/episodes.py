"""Stage 3's episode scheduler: whole plan-act episodes played on a pool of environment actors, planned by the
rollout workers.

    runner = EpisodeRunner(env_actors, config)
    played, stats = runner.play(specs, rollouts, seed=s, budget=12)  # one PlayedEpisode (or None: lost) per spec

Scheduling is per episode, not per batch: every env slot (`stage3.envs_per_actor` on each of `stage3.env_actors`
`EnvWorker` actors) takes the next waiting episode as soon as its last one ends, so a short episode never waits for
the longest of its batch. Each round, the decisions of all running episodes go to the rollout workers as one
`rollout` call per worker (one `generate` each, `group_size=1`: a decision samples one plan), and their plans to the
env actors as one `act` call per actor. Every decision keeps its `Group` (the prompt as encoded and the sampled
ids), which is what the learner trains on.

Failures. A rollout call whose worker died is retried on the restarted worker after it gets the current weights
(`call_pool`, as in stages 1–2). An env actor that dies, or whose call runs past `stage3.step_timeout_s` (it is then
killed), is restarted by Ray; every episode that ran on it is lost with it and, with `stage3.lost_episodes=replay`,
played again from the start on a free slot (at most `cluster.max_task_retries` times), else dropped. Lost
episodes are always counted (`EpisodeStats.lost`, `.dropped`); a group is never silently shortened: the loop
drops a group that lost an episode, and says so. Failures inside an actor (an env's reset or step raising, a
browser crash beyond its own restarts) lose only their episode (`tracer1.envs.pool`).

Why not RLlib's `EnvRunnerGroup`. It manages pools of env actors with the same fault tolerance (restarting failed
runners, `sample_timeout_s`, tolerating lost runners), but its runners own the policy and sample actions
themselves, one env step at a time. Here the policy is served by separate rollout engines (vLLM or transformers)
that batch decisions across all episodes of all env actors, and a frozen executor sits between plan and env step;
so the scheduler is this loop, with RLlib's failure semantics: restart the actor, time out a hung call, count what
was lost.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from tracer1.envs.episode import EpisodeSpec
from tracer1.envs.pool import Update
from tracer1.rollout import Group
from tracer1.train.actors import call_pool, wait_for_restart


@dataclass
class PlayedEpisode:
    """An episode as the learner sees it: its result, and every decision's prompt and sampled plan."""

    spec: EpisodeSpec
    result: dict                        # tracer1.envs.episode.PlanActEpisode.result + "alignment"
    decisions: list[Group]              # one per decision, each with its one sampled completion
    replayed: bool = False              # a stored success put into an all-fail group (tracer1.train.curriculum)

    @property
    def success(self) -> bool:
        return bool(self.result["success"])


@dataclass
class EpisodeStats:
    episodes: int = 0
    decisions: int = 0
    lost: int = 0                       # episodes whose env actor died or hung (or whose env failed)
    dropped: int = 0                    # lost episodes not played again
    rounds: int = 0                     # generate calls per rollout worker
    plan_s: float = 0.0                 # wall seconds in rollout calls
    env_s: float = 0.0                  # wall seconds in env calls
    env_busy_s: float = 0.0             # seconds env actors worked (summed over actors)
    execute_s: float = 0.0              # of which the executor grounding first steps (finished episodes)
    step_s: float = 0.0                 # of which the envs stepping (finished episodes)
    wall_s: float = 0.0
    env_actors: int = 1
    retried_calls: int = 0
    lost_reasons: list[str] = field(default_factory=list)

    @property
    def env_utilisation(self) -> float:
        """Busy time of the env actors over their wall time (how much the pool waited on planning)."""
        return self.env_busy_s / (self.wall_s * self.env_actors) if self.wall_s > 0 else 0.0


@dataclass
class _Running:
    index: int
    spec: EpisodeSpec
    sample: object = None               # the decision waiting for a plan
    decisions: list[Group] = field(default_factory=list)


class EpisodeRunner:
    def __init__(self, env_actors: list, config, *, before_retry=None):
        """`before_retry(rollout_worker)`: called on a restarted rollout worker before its call is sent again
        (the weight sync's resync)."""
        self.actors, self.config, self.before_retry = list(env_actors), config, before_retry
        self.slots = config.stage3.envs_per_actor

    def play(self, specs: list[EpisodeSpec], rollouts: list, *, seed: int, budget: int, greedy: bool = False
             ) -> tuple[list[PlayedEpisode | None], EpisodeStats]:
        """Play every spec to its end (at most `budget` decisions each); -> one PlayedEpisode per spec, in order
        (None: lost and dropped)."""
        s3, retries = self.config.stage3, self.config.cluster.max_task_retries
        stats, started = EpisodeStats(env_actors=len(self.actors)), time.perf_counter()
        queue, attempts = deque(enumerate(specs)), Counter()
        free = deque((a, s) for s in range(self.slots) for a in range(len(self.actors)))  # spread over actors
        running: dict[tuple[int, int], _Running] = {}
        played: list[PlayedEpisode | None] = [None] * len(specs)

        def lose(key: tuple[int, int], why: str) -> None:
            r = running.pop(key)
            free.append(key)
            stats.lost += 1
            stats.lost_reasons.append(f"{r.spec.episode}: {why}")
            if s3.lost_episodes == "replay" and (retries < 0 or attempts[r.index] < retries):
                attempts[r.index] += 1
                queue.appendleft((r.index, r.spec))
            else:
                stats.dropped += 1

        def apply(a: int, updates: list[Update]) -> None:
            for u in updates:
                key = (a, u.slot)
                if key not in running:
                    continue
                if u.lost is not None:
                    lose(key, u.lost)
                elif u.result is not None:
                    r = running.pop(key)
                    free.append(key)
                    played[r.index] = PlayedEpisode(r.spec, u.result, r.decisions)
                    stats.episodes += 1
                    stats.decisions += len(r.decisions)
                    stats.execute_s += u.result.get("execute_s", 0.0)
                    stats.step_s += u.result.get("env_s", 0.0)
                else:
                    running[key].sample = u.sample

        while queue or running:
            starts: dict[int, list] = defaultdict(list)
            while queue and free:
                (a, slot), (index, spec) = free.popleft(), queue.popleft()
                running[(a, slot)] = _Running(index, spec)
                starts[a].append((slot, spec))
            if starts:
                for a, updates in self._call("start", starts, running, lose, stats, budget=budget).items():
                    apply(a, updates)
            waiting = [(key, r) for key, r in running.items() if r.sample is not None]
            if not waiting:
                continue
            t0 = time.perf_counter()
            out = call_pool(rollouts, "rollout", [r.sample for _, r in waiting], retries=retries,
                            label=lambda sample: sample.sample_id, before_retry=self.before_retry,
                            seed=seed * 100_003 + stats.rounds, group_size=1, greedy=greedy)
            stats.plan_s += time.perf_counter() - t0
            stats.rounds += 1
            stats.retried_calls += out.retried
            plans: dict[int, list] = defaultdict(list)
            for (key, r), group in zip(waiting, out.results):
                r.decisions.append(group)
                r.sample = None
                plans[key[0]].append((key[1], group.completions[0].text))
            for a, updates in self._call("act", plans, running, lose, stats).items():
                apply(a, updates)
        stats.wall_s = time.perf_counter() - started
        return played, stats

    def _call(self, method: str, per_actor: dict[int, list], running: dict, lose, stats: EpisodeStats,
              **kwargs) -> dict[int, list[Update]]:
        """`method` on each env actor with its items, all at once; an actor that dies or runs past
        `stage3.step_timeout_s` loses every episode it ran (`lose`), and is waited for until Ray restarted it."""
        t0 = time.perf_counter()
        timeout = self.config.stage3.step_timeout_s
        refs = {a: self.actors[a].timed.remote(method, items, **kwargs) for a, items in per_actor.items()}
        answers: dict[int, list[Update]] = {}
        failed: dict[int, str] = {}
        deadline = time.monotonic() + timeout
        while refs:
            done, _ = ray.wait(list(refs.values()), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not done:  # hung: killed like a crashed actor, and Ray restarts it
                for a in refs:
                    ray.kill(self.actors[a], no_restart=False)
                    failed[a] = f"its env actor ran past stage3.step_timeout_s ({timeout:g} s) in {method}"
                break
            a = next(k for k, ref in refs.items() if ref == done[0])
            del refs[a]
            try:
                busy, answers[a] = ray.get(done[0])
                stats.env_busy_s += busy
            except (RayActorError, ActorUnavailableError) as exc:
                failed[a] = f"its env actor died in {method} ({type(exc).__name__})"
        for a, why in failed.items():
            print(f"tracer1: env actor {a}: {why}; its {sum(k[0] == a for k in running)} running episodes are "
                  "lost", flush=True)
            for key in [k for k in running if k[0] == a]:
                lose(key, why)
            wait_for_restart(self.actors[a])
        stats.env_s += time.perf_counter() - t0
        return answers
