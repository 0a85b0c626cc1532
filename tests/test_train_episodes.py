"""Stage 3's episode scheduler on a real local Ray: episodes go one at a time onto free env slots, decisions are
planned in one rollout call per worker and round, and an env actor that dies (SIGKILL mid-call) or hangs past
`stage3.step_timeout_s` is restarted by Ray, its episodes counted as lost and played again from the start (or
dropped, with `stage3.lost_episodes=drop`) — the call completes and no group is silently shortened. The planner
is scripted (a plain class answering the rollout call), so each episode's length is known; the env actors are the
real `EnvWorker`, in the built-in world and in MiniWoB++ with a browser killed mid-episode."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import ray
from ray_faults import flagged, kill_when_started

from tracer1.config import load_config
from tracer1.engines.base import Completion
from tracer1.envs.episode import EpisodeSpec
from tracer1.envs.pool import EnvWorker
from tracer1.models.inputs import EncodedPrompt
from tracer1.rollout import Group
from tracer1.train.actors import make_actor
from tracer1.train.episodes import EpisodeRunner

GIVE_UP = '<plan>\n1. finish(status="success")\n</plan>'   # ends the episode at once (a failure: nothing was done)
WANDER = '<plan>\n1. click(target="Nothing like this")\n</plan>'  # a no-op: the episode runs to its budget


class ScriptedPlanner:
    """Answers the rollout call as `RolloutWorker.rollout` does: gives up in episodes e0, e3, e6, ..., wanders in
    the others."""

    def __init__(self):
        self.calls = []

    def rollout(self, samples, *, seed=0, group_size=None, greedy=False):
        self.calls.append(len(samples))
        return [Group(s.sample_id, EncodedPrompt((1, 2, 3)),
                      [Completion(0, GIVE_UP if int(s.episode_id[1:]) % 3 == 0 else WANDER, [7, 8], [0.0, 0.0])])
                for s in samples]

    def calls_made(self):
        return self.calls


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the actors below are defined in this file
    yield
    ray.shutdown()


def setup(*overrides, worker_cls=EnvWorker, actors=1, slots=3):
    config = load_config(["stage=3", f"stage3.env_actors={actors}", f"stage3.envs_per_actor={slots}",
                          "cluster.max_restarts=3", "cluster.max_task_retries=2", *overrides])
    envs = [make_actor(worker_cls, config.cluster.env, config).remote(config.env, config.executor, config.reward,
                                                                      slots=slots, horizon=3)
            for _ in range(actors)]
    planner = make_actor(ScriptedPlanner, config.cluster.rollout, config).remote()
    ray.get([a.__ray_ready__.remote() for a in [*envs, planner]])  # started, as the loop's wait_until_placed does
    return config, envs, planner


def specs(n, env="builtin"):
    tasks = ["go_home", "toggle", "call"]
    return [EpisodeSpec(f"e{i}", env, tasks[i % 3], 100 + i) for i in range(n)]


def test_episodes_fill_free_slots_and_decisions_are_planned_in_one_call_per_round(local_ray):
    config, envs, planner = setup()
    played, stats = EpisodeRunner(envs, config).play(specs(7), [planner], seed=0, budget=4)
    assert [p.spec.episode for p in played] == [f"e{i}" for i in range(7)]  # one per spec, in order
    assert [p.result["steps"] for p in played] == [1, 4, 4] * 2 + [1]
    assert all(len(p.decisions) == p.result["steps"] for p in played) and stats.decisions == 19
    calls = ray.get(planner.calls_made.remote())
    assert len(calls) == stats.rounds and max(calls) <= 3  # every running episode's decision in one call
    # a go_home episode ends after 1 decision and its slot takes the next episode at once: 19 decisions in 3
    # slots take fewer rounds than 3 batches of 3 episodes in lockstep (3 × 4 rounds)
    assert stats.rounds < 12 and stats.lost == stats.dropped == 0
    assert 0 < stats.env_utilisation <= 1


@pytest.mark.parametrize("policy", ["replay", "drop"])
def test_a_killed_env_actor_loses_its_episodes_which_are_replayed_or_dropped_and_counted(local_ray, tmp_path,
                                                                                          policy):
    flag = tmp_path / "acting"
    config, envs, planner = setup(f"stage3.lost_episodes={policy}", worker_cls=flagged(EnvWorker, "act", flag))
    killer = kill_when_started(envs[0], flag)
    played, stats = EpisodeRunner(envs, config).play(specs(4), [planner], seed=0, budget=3)
    killer.join()
    assert stats.lost == 3  # the three episodes running on it when it died
    if policy == "replay":
        assert stats.dropped == 0 and all(p is not None for p in played)
        assert [p.result["steps"] for p in played] == [1, 3, 3, 1]  # played again from the start, whole
    else:
        assert stats.dropped == 3 and sum(p is None for p in played) == 3 and played[3] is not None
    assert all("env actor died" in why for why in stats.lost_reasons)


class Hangs(EnvWorker):
    """Hangs in the first `act` call (a wedged env) and leaves its marker file; after Ray restarts it, it works."""

    marker = ""

    def act(self, plans):
        if not Path(self.marker).exists():
            Path(self.marker).touch()
            time.sleep(120)
        return super().act(plans)


def test_an_env_actor_that_hangs_past_the_step_timeout_is_killed_and_its_episodes_replayed(local_ray, tmp_path):
    config, envs, planner = setup("stage3.step_timeout_s=3", slots=2,
                                  worker_cls=type("Hangs", (Hangs,), {"marker": str(tmp_path / "hung")}))
    started = time.monotonic()
    played, stats = EpisodeRunner(envs, config).play(specs(2), [planner], seed=0, budget=2)
    assert time.monotonic() - started < 60
    assert stats.lost == 2 and stats.dropped == 0 and [p.result["steps"] for p in played] == [1, 2]
    assert all("step_timeout_s" in why for why in stats.lost_reasons)


def test_a_browser_killed_mid_episode_is_restarted_and_the_episode_goes_on():
    from tracer1.config import EnvConfig, ExecutorConfig, RewardConfig
    from tracer1.envs.miniwob import miniwob_available

    if (why := miniwob_available()) is not None:  # CI installs it: a missing piece is a broken install
        pytest.fail(f"MiniWoB++ cannot run: {why}", pytrace=False)
    worker = EnvWorker(EnvConfig(name="miniwob", max_steps=5), ExecutorConfig(), RewardConfig(), slots=1, horizon=2,
                       time_limit_ms=60_000)
    try:
        [u] = worker.start([(0, EpisodeSpec("m0", "miniwob", "click-test", 3))], budget=5)
        assert u.sample is not None
        [u] = worker.act([(0, WANDER)])
        assert u.sample is not None
        for pid in worker.browser_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        plan = '<plan>\n1. click(target="Click Me!")\n</plan>'
        [u] = worker.act([(0, plan)])
        assert u.lost is None and u.result is not None and u.result["success"], u
        assert worker.envs[0].restarts == 1
    finally:
        worker.close()
