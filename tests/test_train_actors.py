"""Failure handling of the RL loop's actor pools on a real local Ray: a rollout, executor or reward actor killed
(SIGKILL of its process) while it works on a call is restarted by Ray, the call is sent again, and the answers are
those an uninterrupted call gives — for a rollout worker only because it is given the current weights again first.

The actors are the real worker classes; the only addition is a flag file each touches when a call starts, so the
test kills the process mid-call rather than before or after it."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import ray
import torch
from tiny_planners import one_thread, samples, tiny_dirs  # noqa: F401  (fixtures)

from tracer1.config import RunConfig
from tracer1.executors.worker import ExecutorWorker
from tracer1.models.loading import load_planner
from tracer1.plan import format_plan
from tracer1.rewards.worker import RewardItem, RewardWorker
from tracer1.rollout import RolloutWorker
from tracer1.train.actors import call_actors, call_pool, make_actor

CONFIG = RunConfig.model_validate({"rollout": {"group_size": 3, "max_new_tokens": 40}, "horizon": 5,
                                   "cluster": {"max_restarts": 2, "max_task_retries": 2}})


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def flagged(cls, method: str, flag: Path):
    """`cls` whose `method` touches `flag` as it starts."""

    def call(self, *args, **kwargs):
        flag.touch()
        return getattr(cls, method)(self, *args, **kwargs)

    return type(cls.__name__, (cls,), {method: call})


def kill_when_started(actor, flag: Path) -> threading.Thread:
    """SIGKILL the actor's process as soon as its call has started (the flag appears)."""
    pid = ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))
    flag.unlink(missing_ok=True)

    def kill():
        deadline = time.monotonic() + 60
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def perturbed(model_dir) -> dict:
    torch.manual_seed(0)
    state = load_planner(model_dir).model.state_dict()
    return {k: v + 0.3 * torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}


def test_a_killed_rollout_worker_is_restarted_given_the_weights_again_and_its_rollout_retried(
        local_ray, tiny_dirs, samples, tmp_path):
    flag, batch = tmp_path / "started", samples[:4]
    worker = make_actor(flagged(RolloutWorker, "rollout", flag), CONFIG.cluster.rollout, CONFIG).remote(
        str(tiny_dirs["text"]), CONFIG)
    weights = ray.put(perturbed(tiny_dirs["text"]))
    ray.get(worker.update_weights.remote(weights, version=7))
    expected = [g.texts for g in ray.get(worker.rollout.remote(batch, seed=5))]

    resent = []

    def resync(w):
        resent.append(ray.get(w.update_weights.remote(weights, version=7)))

    killer = kill_when_started(worker, flag)
    out = call_pool([worker], "rollout", batch, retries=2, before_retry=resync, label=lambda s: s.sample_id, seed=5)
    killer.join()
    assert out.retried == 1 and resent == [7]
    assert [g.texts for g in out.results] == expected
    # Without the weights sent again the restarted worker samples from the planner it was created with:
    fresh = RolloutWorker(tiny_dirs["text"], CONFIG)
    assert [g.texts for g in fresh.rollout(batch, seed=5)] != expected


def test_a_killed_reward_actor_is_restarted_and_the_items_scored(local_ray, samples, tmp_path):
    flag = tmp_path / "started"
    stage1 = RunConfig().reward
    items = [RewardItem(f"plan {i}", "1. click(target='OK')\n2. type(target='Name', text='x')",
                        tuple(samples[i % len(samples)].future)) for i in range(30_000)]
    scorer = make_actor(flagged(RewardWorker, "score", flag), CONFIG.cluster.reward, CONFIG).remote(
        stage1, horizon=5, stage=1)
    killer = kill_when_started(scorer, flag)
    out = call_pool([scorer], "score", items, retries=2, label=lambda item: item.key)
    killer.join()
    assert out.retried == 1 and len(out.results) == len(items)
    assert not any(x.error for x in out.results)
    with RewardWorker(stage1, horizon=5, stage=1) as local:
        assert [x.reward for x in out.results[:50]] == [x.reward for x in local.score(items[:50])]


def test_a_killed_executor_actor_is_restarted_and_the_first_steps_executed(local_ray, samples, tmp_path):
    flag = tmp_path / "started"
    pairs = [(format_plan(s.future[:2]), s) for s in samples] * 400
    executor = make_actor(flagged(ExecutorWorker, "first_steps", flag), CONFIG.cluster.executor, CONFIG).remote(
        CONFIG.executor, CONFIG.env)
    expected = ExecutorWorker(CONFIG.executor, CONFIG.env).first_steps(pairs[:len(samples)])
    killer = kill_when_started(executor, flag)
    out = call_pool([executor], "first_steps", pairs, retries=2, label=lambda pair: pair[1].sample_id)
    killer.join()
    assert out.retried == 1 and len(out.results) == len(pairs)
    assert out.results[:len(samples)] == expected


def test_work_that_raises_is_not_retried_and_names_the_actor_and_items(local_ray, tmp_path):
    scorer = make_actor(RewardWorker, CONFIG.cluster.reward, CONFIG).remote(RunConfig().reward, horizon=5, stage=2)
    items = [RewardItem("step 3 / sample-9 / plan 0", "1. click(target='OK')")]  # stage 2 needs a label
    out = call_pool([scorer], "score", items, retries=2, label=lambda item: item.key)
    assert out.retried == 0 and out.results[0].error and "label" in out.results[0].error


def test_an_actor_that_cannot_come_back_fails_the_call_with_its_name(local_ray, samples, tmp_path):
    config = CONFIG.model_copy(update={"cluster": CONFIG.cluster.model_copy(update={"max_restarts": 0})})
    flag = tmp_path / "started"
    executor = make_actor(flagged(ExecutorWorker, "first_steps", flag), config.cluster.executor, config).remote(
        config.executor, config.env)
    killer = kill_when_started(executor, flag)
    pairs = [(format_plan(s.future[:2]), s) for s in samples] * 400
    with pytest.raises(RuntimeError, match=r"first_steps \(400 copies\) on actor .* did not come back after it"):
        call_actors([(executor, (pairs,))], "first_steps", retries=2, what=["400 copies"])
    killer.join()
