"""Stages 1 and 2: GRPO on Ray, top to bottom.

    start planner (init_from, else the cached SFT warm start) → Ray actors → held-out evaluation (before)
    → per step: rollout (G plans per sample) → [stage 2: execute first steps] → rewards → advantages
      → learner update → weight sync to every rollout worker → metrics → [evaluation] → [checkpoint]
      (with algorithm.max_staleness = k ≥ 1 the rollouts of the next k steps run meanwhile, from older weights)
    → held-out evaluation (after) → final checkpoint + report + summary

Stage 1 scores each plan against the sample's reference future (`trajectory_reward`); stage 2 executes its first
step with the frozen executor and scores the execution against the grounding label (`grounded_reward`), or, with
`env.grounding=online`, in a live environment brought to the sample's state, whose feedback is the reward
(`live_reward`).
Actors are thin Ray shells around plain classes (`RolloutWorker`, `ExecutorWorker`, `RewardWorker`,
`LearnerWorker`); the Ray plumbing — placement, retries of work whose actor died — is `tracer1.train.actors`,
checkpoints and resume are `tracer1.train.checkpoints`, where the samples come from (the driver's split, or Parquet
shards each rollout worker streams) is `tracer1.train.data_source`, and the weight sync (file or NCCL) is
`tracer1.train.sync`; the held-out evaluation runs on the rollout workers, on the weights they hold
(`tracer1.eval.rollout_pool`), so the driver loads only the tokenizer / processor. A step is a pure function of
(seed, step, weights): the batch and the sampling seeds come from the step number (with shards: from each
worker's cursor, kept in the checkpoint), so a resumed run continues with the same next batch.

With `algorithm.max_staleness` = k ≥ 1 a thread generates each step's batch from the weights of k updates before
(`tracer1.train.ahead.RolloutsAhead`), overlapping the learner's update; batches generated but not yet trained on
go into each checkpoint (`tracer1.train.in_flight`). The learner weights those off-policy tokens against the
engine's log-probs (`tracer1.learner.grpo`).
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import ray
from tqdm import tqdm

from tracer1.atomic import save_json_atomic
from tracer1.eval.held_out import evaluate_held_out, held_out, keep_evaluation
from tracer1.eval.planning import PlanningReport
from tracer1.eval.rollout_pool import RolloutPool
from tracer1.executors.live import LiveExecutorWorker
from tracer1.executors.worker import ExecutorWorker
from tracer1.learner.worker import LearnerWorker
from tracer1.metrics import MetricsLogger
from tracer1.models.loading import load_planner
from tracer1.models.prompt import prompts_for_run
from tracer1.report.text import summary_table
from tracer1.rewards.worker import RewardItem, RewardWorker
from tracer1.rollout import RolloutWorker
from tracer1.seeding import rng_state, set_rng_state
from tracer1.train.ahead import Batch, RolloutsAhead
from tracer1.train.actors import (
    call_actors, call_pool, engines_asleep, learner_ranks, make_actor, place_actors, ray_session, wait_until_placed,
)
from tracer1.train.assets import load_split
from tracer1.train.batch import training_batches
from tracer1.train.checkpoints import CheckpointWriter, stage_start
from tracer1.train.data_source import training_data
from tracer1.train.in_flight import load_in_flight, save_in_flight
from tracer1.train.sync import select_weight_sync, start_weight_sync, with_weight_sender

PARTS = ("rollout", "execute", "reward", "learner", "sync")  # the timed parts of a step, in order


def train_rl(config, run_dir: Path) -> int:
    started, finished = time.time(), run_dir / f"stage{config.stage}_report.json"
    if (start := stage_start(config, run_dir, finished)) is None:
        return 0
    planner, resume, state, policy = start.planner, start.resume, start.state, start.policy
    stage, alg, retries = config.stage, config.algorithm, config.cluster.max_task_retries
    data = training_data(config, state)  # the driver's split, or Parquet shards each rollout worker streams
    evals = held_out(load_split(config, "eval"), config.sft.eval_samples, config.seed)
    print(f"tracer1 stage {stage}: planner {planner}, {data.describe()}, {len(evals)} held-out")

    # The driver holds no model: the tokenizer / processor builds prompts and pads the learner's batches, and the
    # held-out evaluation runs on the rollout workers (`RolloutPool`), on the weights they hold.
    bundle = load_planner(policy, trust_remote_code=config.model.trust_remote_code, load_model=False)
    eval_prompts = prompts_for_run(bundle, evals, config, desc="prompts (held-out)")
    first = state["step"] + 1 if resume else 1
    if resume:
        set_rng_state(state["rng"])
        print(f"  resuming from {resume} at step {first}")

    with ray_session(config) as owned, MetricsLogger(run_dir, config.logging, config=config,
                                                     prefix=f"stage{stage}/") as log:
        cl, sync_mode = config.cluster, select_weight_sync(config)  # NCCL on GPUs where it can, else the file path
        placement = place_actors(config, owned)  # where `--plan` puts each actor; groups in the plan's order
        at = placement.options
        learners = learner_ranks(with_weight_sender(LearnerWorker, sync_mode), config, str(policy), config,
                                 reference_dir=str(planner), owned=owned, placement=placement)
        rollouts = [make_actor(RolloutWorker, cl.rollout, config, **at("rollout", i)).remote(
                        str(policy), config, weights_version=first - 1, weight_sync=sync_mode, **data.worker_options(i))
                    for i in range(config.rollout.num_workers)]
        scorers = [make_actor(RewardWorker, cl.reward, config, **at("reward", i)).remote(
                       config.reward, horizon=config.horizon, stage=stage) for i in range(config.reward.num_actors)]
        executing = LiveExecutorWorker if config.env.grounding == "online" else ExecutorWorker  # live env or not
        grounder = {"dtype": config.model.dtype, "seed": config.seed}  # a VLM executor's grounding model
        executors = ([make_actor(executing, cl.executor, config, **at("executor", i)).remote(
                          config.executor, config.env, **grounder) for i in range(config.executor.num_actors)]
                     if stage == 2 else [])
        owned += [*rollouts, *scorers, *executors]
        wait_until_placed([*rollouts, *scorers, *executors, *learners], config)
        if resume:
            ray.get([r.load_checkpoint.remote(str(resume), rng) for r, rng in zip(learners, state["learner_rng"])])
        per_rank = ray.get(learners[0].accumulation_steps.remote())
        sync = start_weight_sync(sync_mode, config, learners, rollouts, version=first - 1)  # learner → rollouts
        checkpoints = CheckpointWriter(run_dir, config.checkpoint, copied=lambda wait: all(
            ray.get([r.checkpoint_copied.remote(wait) for r in learners])))  # async_write: in the background
        engine = RolloutPool(rollouts, retries=retries, resync=sync.resync, version=lambda: sync.version)
        before = (PlanningReport(**state["before"]) if resume else
                  evaluate_held_out(engine, eval_prompts, evals, config, policy=policy))  # workers hold `policy`
        print(f"  before: {before.headline()}")

        def produce(step: int) -> Batch:  # the step's rollouts, from the weights the rollout workers hold
            t = time.perf_counter()
            samples, out = data.rollout(rollouts, step, retries=retries, before_retry=sync.resync)
            lag = sync.version - min(g.weights_version for g in out.results)  # 0 unless a sync was lost
            return Batch(step, samples, out, data.state(step), time.perf_counter() - t, lag)

        ahead = RolloutsAhead(produce, first=first, last=alg.total_steps, staleness=alg.max_staleness,
                              version=first - 1, kept=load_in_flight(resume) if resume else {})
        bar = tqdm(range(first, alg.total_steps + 1), desc=f"stage {stage}", unit="step", initial=first - 1,
                   total=alg.total_steps)
        for step in bar:
            wall, busy, retried, t0 = {}, {}, 0, time.perf_counter()

            def done(part: str, answers=None) -> None:
                nonlocal t0, retried
                wall[part], t0 = time.perf_counter() - t0, time.perf_counter()
                busy[part] = answers.busy_s if answers is not None else 0.0
                retried += answers.retried if answers is not None else 0

            batch, waited = ahead.take(step)  # generated ahead with max_staleness ≥ 1, else now
            samples, out, groups = batch.samples, batch.answers, batch.answers.results
            done("rollout", out)
            plans = [(s, p) for g, s in zip(groups, samples) for p in g.completions]
            names = [f"step {step} / {s.sample_id} / plan {i}" for i, (s, _) in enumerate(plans)]
            if stage == 1:
                items = [RewardItem(n, p.text, tuple(s.future)) for n, (s, p) in zip(names, plans)]
                fallbacks = 0
                done("execute")
            else:
                out = call_pool(executors, "first_steps", [(p.text, s) for s, p in plans], retries=retries,
                                label=lambda pair: pair[1].sample_id, item_deadline_s=config.executor.deadline_s)
                items = [RewardItem(n, p.text, label=s.label, executed=x.step, result=x.result,
                                    feedback=x.feedback) for n, (s, p), x in zip(names, plans, out.results)]
                fallbacks = sum(x.fell_back for x in out.results)  # online: samples the live env could not restore
                done("execute", out)
            out = call_pool(scorers, "score", items, retries=retries, label=lambda item: item.key)
            G = len(groups[0].completions)
            rewards = [[x.reward for x in out.results[i * G:(i + 1) * G]] for i in range(len(groups))]
            failed = [f"{x.key}: {x.error}" for x in out.results if x.error]  # named, not only counted
            for line in failed[:3] + ([f"... and {len(failed) - 3} more"] if len(failed) > 3 else []):
                tqdm.write(f"reward failed: {line}")
            if failed:
                log.log_text("reward_failures", "\n".join(failed[:50]), step)
            done("reward", out)
            micro, stats = training_batches(bundle, groups, rewards, alg, accumulation=per_rank * len(learners))
            metrics = {}
            if micro:  # rank r takes micro-batches [r·k, (r+1)·k); DeepSpeed averages their gradients
                with engines_asleep(rollouts, config):  # cluster.colocate: the update has the GPUs' memory
                    out = call_actors([(r, (micro[i * per_rank:(i + 1) * per_rank],))
                                       for i, r in enumerate(learners)], "step", retries=0)
                metrics = {k: sum(m[k] for m in out.results) / len(out.results) for k in out.results[0]}
            done("learner", out if micro else None)
            # weights changed: every rollout worker gets them before its next batch (after those due from older ones)
            out, pushing_wait = ahead.weights_changed(step, lambda: sync.push(step) if micro else None)
            waited += pushing_wait
            done("sync", out)

            step_s = sum(wall.values())
            timing = {**{f"time/{k}": v for k, v in wall.items()}, **{f"busy/{k}": v for k, v in busy.items()},
                      "time/step": step_s, "time/overhead": step_s - sum(min(busy[k], wall[k]) for k in wall),
                      **ahead.step_metrics(step, batch, waited)}  # staleness, who waited for whom
            if step % config.logging.log_every == 0 or step == alg.total_steps:
                log.log({**metrics, **timing, "reward_mean": stats.reward_mean, "reward_std": stats.reward_std,
                         "kept_groups": stats.kept_groups, "reward_failures": len(failed), "retried_calls": retried,
                         "executor_fallbacks": fallbacks, "weights_lag": batch.lag,
                         "batch_crc32": zlib.crc32(" ".join(s.sample_id for s in samples).encode())}, step)
                flat = (r for row in rewards for r in row)  # in the order of `plans`
                for i, ((s, p), r) in enumerate(zip(plans[:config.logging.log_samples], flat)):
                    log.log_text(f"sample{i}", f"{s.sample_id} (reward {r:+.3f})\n{p.text}", step)
            bar.set_postfix(reward=f"{stats.reward_mean:+.3f}", kept=stats.kept_groups, refresh=False)

            if alg.eval_every and step % alg.eval_every == 0 and step < alg.total_steps:  # the synced weights
                now = evaluate_held_out(engine, eval_prompts, evals, config)
                log.log({f"eval/{k}": v for k, v in now.to_dict().items()}, step)
            checkpoints.poll()  # finishes a checkpoint whose background copies are done
            if config.checkpoint.every_steps and step % config.checkpoint.every_steps == 0 \
                    and step < alg.total_steps:
                flying = ahead.in_flight(step)  # generated by older weights than the checkpoint's: kept with it

                def parts(tmp: Path, local: Path | None) -> dict:
                    save_in_flight(tmp, flying)
                    return {"learner_rng": ray.get([r.save_checkpoint.remote(str(tmp), local) for r in learners])}

                checkpoints.save(step, parts, {"before": before.to_dict(), "rng": rng_state(),
                                               **(flying[-1] if flying else batch).data_state,
                                               "planner": str(planner)})

        ahead.close()
        checkpoints.wait()
        after = evaluate_held_out(engine, eval_prompts, evals, config)  # the rollout workers hold the final weights
        log.log({f"eval/{k}": v for k, v in after.to_dict().items()}, alg.total_steps)
        final = str(run_dir / "checkpoints" / "final")
        checkpoint = Path(ray.get([r.save.remote(final) for r in learners])[0])
        keep_evaluation(config, checkpoint, after)

    report = {"stage": stage, "planner": str(planner), "checkpoint": str(checkpoint), "steps": alg.total_steps,
              "resumed_from": str(resume) if resume else None, "seconds": round(time.time() - started, 1),
              "before": before.to_dict(), "after": after.to_dict()}
    report_path = save_json_atomic(finished, report)
    title = "stage 1 (trajectory alignment)" if stage == 1 else "stage 2 (grounded execution)"
    print(summary_table(title, before, after, {"checkpoint": checkpoint, "report": report_path,
                                               "TensorBoard": run_dir / "tensorboard",
                                               "config": run_dir / "config.yaml"}, seconds=report["seconds"]))
    return 0
