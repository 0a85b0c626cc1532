"""The RL loop's actors on a real local Ray: several learner ranks in one process group, and failure handling:
a rollout, executor (offline or live) or reward actor killed (SIGKILL of its process) while it works on a call
is restarted by Ray, the call is sent again, and the answers are those an uninterrupted call gives — for a
rollout worker only because it is given the current weights again first, also when its batch was generated
ahead of the learner (max_staleness).

The actors are the real worker classes; the only addition is a flag file each touches when a call starts, so the
test kills the process mid-call rather than before or after it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import ray
import torch
from ray_faults import flagged, kill_when_started
from tiny_planners import one_thread, samples, tiny_dirs  # noqa: F401  (fixtures)

from tracer1.config import Resources, RunConfig
from tracer1.executors.live import LiveExecutorWorker
from tracer1.executors.worker import ExecutorWorker
from tracer1.learner.worker import LearnerWorker
from tracer1.models.loading import load_planner
from tracer1.plan import format_plan
from tracer1.rewards.worker import RewardItem, RewardWorker
from tracer1.rollout import RolloutWorker
from tracer1.train.actors import call_actors, call_pool, learner_ranks, make_actor, release
from tracer1.train.ahead import Batch, RolloutsAhead
from tracer1.train.batch import training_batches

CONFIG = RunConfig.model_validate({"rollout": {"group_size": 3, "max_new_tokens": 40}, "horizon": 5,
                                   "cluster": {"max_restarts": 2, "max_task_retries": 2}})


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


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


def test_a_rollout_worker_killed_while_a_batch_is_in_flight_is_restarted_and_the_batch_generated_again(
        local_ray, tiny_dirs, samples, tmp_path):
    """max_staleness 1: batch 2 is generated ahead while the learner is on step 1; its worker is killed
    mid-rollout, restarted, given the weights batch 2 is due (version 0, not the ones it was created with) and
    the rollout retried; the learner gets the batch an uninterrupted pipeline gives, and batch 3 comes from the
    weights pushed after step 1."""
    flag, batch = tmp_path / "started", samples[:4]
    worker = make_actor(flagged(RolloutWorker, "rollout", flag), CONFIG.cluster.rollout, CONFIG).remote(
        str(tiny_dirs["text"]), CONFIG)
    synced = {"ref": ray.put(perturbed(tiny_dirs["text"])), "version": 0}  # what the loop's FileSync keeps
    ray.get(worker.update_weights.remote(synced["ref"], version=0))
    expected = [g.texts for g in ray.get(worker.rollout.remote(batch, seed=2))]
    gate = threading.Event()

    def resync(w):
        ray.get(w.update_weights.remote(synced["ref"], version=synced["version"]))

    def produce(step):
        if step == 2:
            gate.wait(60)  # held until the killer waits for the call to start
        out = call_pool([worker], "rollout", batch, retries=2, before_retry=resync, label=lambda s: s.sample_id,
                        seed=step)
        return Batch(step, batch, out)

    def push(version):
        synced.update(ref=ray.put(perturbed(tiny_dirs["text-seed1"])), version=version)
        ray.get(worker.update_weights.remote(synced["ref"], version=version))

    ahead = RolloutsAhead(produce, first=1, last=3, staleness=1, version=0)
    ahead.take(1)
    killer = kill_when_started(worker, flag)
    gate.set()  # batch 2 starts: the learner is busy with step 1
    ahead.weights_changed(1, lambda: push(1))  # waits for batch 2, whose worker dies on the way
    killer.join()
    second, _ = ahead.take(2)
    assert second.answers.retried == 1 and second.version == 0
    assert [g.texts for g in second.answers.results] == expected
    assert {g.weights_version for g in second.answers.results} == {0}
    third, _ = ahead.take(3)
    assert third.version == 1 and {g.weights_version for g in third.answers.results} == {1}
    ahead.close()


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


def test_a_killed_live_executor_actor_is_restarted_and_the_first_steps_executed_and_judged(local_ray, samples,
                                                                                           tmp_path):
    """The online stage 2's executor (`env.grounding: online`): its live envs and cached states die with it; the
    restarted actor rebuilds them and answers as an uninterrupted one."""
    flag = tmp_path / "started"
    pairs = [(format_plan(s.future[:2]), s) for s in samples] * 100
    executor = make_actor(flagged(LiveExecutorWorker, "first_steps", flag), CONFIG.cluster.executor,
                          CONFIG).remote(CONFIG.executor, CONFIG.env)
    local = LiveExecutorWorker(CONFIG.executor, CONFIG.env)
    expected = local.first_steps(pairs[:len(samples)])
    local.close()
    assert all(x.feedback is not None and not x.fell_back for x in expected)  # judged live, not offline
    killer = kill_when_started(executor, flag)
    out = call_pool([executor], "first_steps", pairs, retries=2, label=lambda pair: pair[1].sample_id)
    killer.join()
    assert out.retried == 1 and len(out.results) == len(pairs)
    assert out.results == expected * 100


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


def hanging_executor():
    """An executor stand-in whose `first_steps` hangs on a "poison" item: on every call, or (with `once`) only on
    the first, recorded in a file since a restarted actor forgets. Made in a function so that Ray ships the class
    itself (the workers cannot import this test module)."""

    class Hangs:
        def __init__(self, marker: str, once: bool):
            self.marker, self.once = Path(marker), once

        def first_steps(self, items: list) -> list:
            if "poison" in items and not (self.once and self.marker.exists()):
                self.marker.touch()
                time.sleep(3600)
            return [item.upper() for item in items]

    return Hangs


def test_an_executor_call_past_its_deadline_is_killed_and_retried_on_the_restarted_actor(local_ray, tmp_path):
    worker = make_actor(hanging_executor(), CONFIG.cluster.executor, CONFIG).remote(str(tmp_path / "hung"), once=True)
    ray.get(worker.__ray_ready__.remote())  # placed and constructed first, as in the RL loop
    items = ["a", "poison", "b"]
    started = time.monotonic()
    out = call_pool([worker], "first_steps", items, retries=2, item_deadline_s=1.0)
    assert out.retried == 1 and out.results == ["A", "POISON", "B"]
    assert time.monotonic() - started < 120  # not the hour the hung call would have taken


def test_an_executor_that_hangs_on_every_try_fails_the_call_naming_the_deadline(local_ray, tmp_path):
    worker = make_actor(hanging_executor(), CONFIG.cluster.executor, CONFIG).remote(str(tmp_path / "hung"), once=False)
    ray.get(worker.__ray_ready__.remote())
    with pytest.raises(RuntimeError, match=r"first_steps \(2 items from x\) .* failed 2 times, it ran past its 1 s "
                                           r"deadline"):
        call_pool([worker], "first_steps", ["x", "poison"], retries=1, item_deadline_s=0.5)


def test_two_learner_ranks_take_the_same_step_as_one_rank_with_the_whole_batch(local_ray, tiny_dirs, samples):
    """Data parallelism is exact: rank r gets micro-batches [r·k, (r+1)·k), DeepSpeed averages the ranks'
    gradients over gloo, and the loss denominator is the whole step's — so 2 ranks × 1 micro-batch take the step
    of 1 rank with the whole batch in one micro-batch. The optimizer is SGD without clipping, whose step is
    −lr·gradient: AdamW's first step (≈ lr·sign(g)) would hide a gradient off by a constant factor
    (tests/test_learner.py shows it)."""
    config = RunConfig.model_validate({"rollout": {"group_size": 3, "max_new_tokens": 12}, "horizon": 5,
                                       "algorithm": {"lr": 1.0, "total_steps": 1}, "learner": {"grad_clip": 0.0}})
    worker = RolloutWorker(tiny_dirs["text"], config)
    groups = worker.rollout(samples[:2], seed=3)
    rewards = [[1.0, 0.0, 0.5], [0.0, 2.0, 1.0]]

    def trained(ranks: int) -> dict:
        micro, _ = training_batches(worker.bundle, groups, rewards, config.algorithm, accumulation=ranks)
        cfg = config.model_copy(update={"learner": config.learner.model_copy(
            update={"num_ranks": ranks, "grad_accum_steps": 1})})
        owned: list = []
        try:
            learners = learner_ranks(LearnerWorker, cfg, str(tiny_dirs["text"]), cfg, owned=owned, optimizer="sgd")
            ray.get([r.step.remote(micro[i:i + 1]) for i, r in enumerate(learners)])
            return ray.get([r.state_dict.remote() for r in learners][0])
        finally:
            release(owned)

    one, two = trained(ranks=1), trained(ranks=2)
    start = load_planner(tiny_dirs["text"]).model.state_dict()
    # the step is far above the tolerance, so a gradient off by a few percent would show
    assert max((one[k] - start[k]).abs().max().item() for k in start if start[k].is_floating_point()) > 1e-3
    for name in one:
        torch.testing.assert_close(two[name] - start[name], one[name] - start[name], atol=1e-6, rtol=1e-4,
                                   msg=name)


def test_an_actor_gets_the_torch_threads_of_its_role(local_ray):
    # Ray gives a 1-CPU actor one OpenMP thread; `threads` raises it for roles that take turns (rollout, learner)
    made = [make_actor(RewardWorker, resources, CONFIG).remote(RunConfig().reward, horizon=5, stage=1)
            for resources in (Resources(cpus=1), Resources(cpus=1, threads=2))]
    counts = ray.get([a.__ray_call__.remote(lambda self: __import__("torch").get_num_threads()) for a in made])
    assert counts == [1, 2]
    # and logging.level for tracer1's log messages in the actor's process
    errors_only = CONFIG.model_copy(update={"logging": CONFIG.logging.model_copy(update={"level": "ERROR"})})
    quiet = make_actor(RewardWorker, Resources(cpus=1), errors_only)
    made.append(quiet.remote(RunConfig().reward, horizon=5, stage=1))
    levels = ray.get([a.__ray_call__.remote(lambda self: __import__("logging").getLogger("tracer1.x")
                                            .getEffectiveLevel()) for a in made[1:]])
    assert levels == [20, 40]  # INFO (the default), ERROR
    roles = CONFIG.cluster
    assert (roles.learner.threads, roles.rollout.threads, roles.reward.threads, roles.executor.threads) == \
        (2, 2, None, None)
    for actor in made:
        ray.kill(actor)
