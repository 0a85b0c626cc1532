"""Stages 1 and 2: GRPO on Ray, top to bottom.

    start planner (init_from, else the cached SFT warm start) → Ray actors → held-out evaluation (before)
    → per step: rollout (G plans per sample) → [stage 2: execute first steps] → rewards → advantages
      → learner update → weight sync to every rollout worker → metrics
    → held-out evaluation (after) → checkpoint + report + summary

Stage 1 scores each plan against the sample's reference future (`trajectory_reward`); stage 2 executes its first
step with the frozen executor and scores the execution against the grounding label (`grounded_reward`).
Actors are thin Ray shells around plain classes (`RolloutWorker`, `ExecutorWorker`, `RewardWorker`,
`LearnerWorker`); on a cluster (`RAY_ADDRESS` or `cluster.address`) the same code attaches to it.
Not yet here: periodic checkpoints and resume, actor-failure retries, several learner ranks.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import ray
from tqdm import tqdm

from tracer1.atomic import save_json_atomic
from tracer1.engines.hf import HFEngine
from tracer1.executors.worker import ExecutorWorker
from tracer1.learner.worker import LearnerWorker
from tracer1.metrics import MetricsLogger
from tracer1.rewards.worker import RewardItem, RewardWorker
from tracer1.rollout import RolloutWorker
from tracer1.train.assets import cache_dir, cached, load_split
from tracer1.train.batch import split_evenly, training_batches
from tracer1.train.report import summary_table
from tracer1.train.sft import batches, build_prompts, evaluate, held_out, seed_everything

PLACEMENT_TIMEOUT_S = 600.0


def start_planner(config) -> Path:
    """`checkpoint.init_from`, else the SFT warm start of the embedded default (trained once, then cached)."""
    if config.checkpoint.init_from:
        return Path(config.checkpoint.init_from)
    from tracer1.config import dump_config  # noqa: PLC0415
    from tracer1.train.sft import train_sft  # noqa: PLC0415

    warm = config.model_copy(update={"stage": "sft"}, deep=True)
    key = hashlib.sha256("\n".join(line for line in dump_config(warm).splitlines()
                                   if not line.lstrip().startswith(("run_name", "stage"))).encode()).hexdigest()

    def build(tmp: Path) -> None:
        train_sft(warm, tmp / "run")
        for item in (tmp / "run" / "checkpoints" / "final").iterdir():
            shutil.move(str(item), tmp / item.name)
        shutil.rmtree(tmp / "run")

    return cached(cache_dir(config) / f"sft-{key[:12]}", build)


def connect_ray(config) -> bool:
    """Attach to `cluster.address` / RAY_ADDRESS, else start a local Ray with logical CPUs for every actor of
    either stage (a laptop has fewer cores than actors; they take turns). True when this call started Ray."""
    if ray.is_initialized():
        return False
    address = config.cluster.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return False
    ray.init(num_cpus=max(1, math.ceil(actor_cpus(config))), include_dashboard=False, log_to_driver=True)
    return True


def actor_cpus(config) -> float:
    c = config.cluster
    return (config.rollout.num_workers * c.rollout.cpus + config.reward.num_actors * c.reward.cpus
            + config.learner.num_ranks * c.learner.cpus + config.executor.num_actors * c.executor.cpus)


def wait_until_placed(actors: list, config) -> None:
    """Fail with the reason instead of waiting forever when the cluster cannot host the actors."""
    ready, pending = ray.wait([a.__ray_ready__.remote() for a in actors], num_returns=len(actors),
                              timeout=PLACEMENT_TIMEOUT_S)
    if pending:
        raise RuntimeError(f"{len(pending)} of {len(actors)} actors were not placed within {PLACEMENT_TIMEOUT_S:g} "
                           f"s: they ask for {actor_cpus(config):g} CPUs (cluster.*.cpus) and the cluster has "
                           f"{ray.cluster_resources().get('CPU', 0):g}; lower the per-actor resources or add nodes")
    ray.get(ready)  # an actor whose constructor failed raises here, with its traceback


@contextmanager
def ray_session(config):
    """Ray for one stage: yields a list to register actors in; on the way out (finished or failed) they are
    killed — a next stage in this process needs their resources — and a Ray this stage started is shut down."""
    started = connect_ray(config)
    actors: list = []
    try:
        yield actors
    finally:
        for a in actors:
            ray.kill(a)
        if started:
            ray.shutdown()


def actor(cls, resources, config):
    return ray.remote(num_cpus=resources.cpus, num_gpus=resources.gpus, max_restarts=config.cluster.max_restarts,
                      max_task_retries=config.cluster.max_task_retries)(cls)


def gather_in_shards(workers, method: str, items: list, **kwargs) -> list:
    """Call `method` on each worker with an even share of `items` (in order); concatenate the answers."""
    shards = [items[s] for s in split_evenly(len(items), len(workers))]
    calls = [getattr(w, method).remote(shard, **kwargs) for w, shard in zip(workers, shards) if shard]
    return [x for part in ray.get(calls) for x in part]


def train_rl(config, run_dir: Path) -> int:
    started = time.time()
    seed_everything(config.seed)
    stage, alg, cl = config.stage, config.algorithm, config.cluster
    planner = start_planner(config)
    train = load_split(config, "train", config.data.max_samples)
    evals = held_out(load_split(config, "eval"), config.sft.eval_samples, config.seed)
    print(f"tracer1 stage {stage}: planner {planner}, {len(train)} training samples, {len(evals)} held-out")

    engine = HFEngine(planner, dtype=config.model.dtype)  # the driver's evaluation engine
    bundle = engine.bundle  # its tokenizer/processor also encode the learner's batches
    eval_prompts = build_prompts(engine.bundle, evals, config, "prompts (held-out)")
    before = evaluate(engine, eval_prompts, evals, config)
    print(f"  before: {before.headline()}")

    with ray_session(config) as actors, MetricsLogger(run_dir, config.logging, config=config,
                                                      prefix=f"stage{stage}/") as log:
        rollouts = [actor(RolloutWorker, cl.rollout, config).remote(str(planner), config)
                    for _ in range(config.rollout.num_workers)]
        scorers = [actor(RewardWorker, cl.reward, config).remote(config.reward, horizon=config.horizon, stage=stage)
                   for _ in range(config.reward.num_actors)]
        executors = ([actor(ExecutorWorker, cl.executor, config).remote(config.executor, config.env)
                      for _ in range(config.executor.num_actors)] if stage == 2 else [])
        learner = actor(LearnerWorker, cl.learner, config).remote(str(planner), config)
        actors += [*rollouts, *scorers, *executors, learner]
        wait_until_placed(actors, config)
        accumulation = ray.get(learner.accumulation_steps.remote())

        draw = batches(config.rollout.prompts_per_step, len(train), config.seed)
        bar = tqdm(range(1, alg.total_steps + 1), desc=f"stage {stage}", unit="step")
        for step in bar:
            t = {"start": time.perf_counter()}
            samples = [train[i] for i in next(draw)]
            groups = gather_in_shards(rollouts, "rollout", samples, seed=config.seed * 1_000_003 + step)
            t["rollout"] = time.perf_counter()
            plans = [(g, s, p) for g, s in zip(groups, samples) for p in g.completions]
            if stage == 1:
                items = [RewardItem(f"step {step} / {s.sample_id} / plan {i}", p.text, tuple(s.future))
                         for i, (_, s, p) in enumerate(plans)]
            else:
                executed = gather_in_shards(executors, "first_steps", [(p.text, s) for _, s, p in plans])
                items = [RewardItem(f"step {step} / {s.sample_id} / plan {i}", p.text, label=s.label, executed=e,
                                    result=r) for i, ((_, s, p), (e, r)) in enumerate(zip(plans, executed))]
            t["execute"] = time.perf_counter()
            scored = gather_in_shards(scorers, "score", items)
            G = len(groups[0].completions)
            rewards = [[x.reward for x in scored[i * G:(i + 1) * G]] for i in range(len(groups))]
            t["reward"] = time.perf_counter()
            micro, stats = training_batches(bundle, build_prompts(bundle, samples, config, "prompts"), groups,
                                            rewards, alg, accumulation=accumulation)
            metrics = ray.get(learner.step.remote(micro)) if micro else {}
            t["learner"] = time.perf_counter()
            state = learner.state_dict.remote()
            ray.get([w.update_weights.remote(state, version=step) for w in rollouts])
            t["sync"] = time.perf_counter()
            timing = {f"time/{k}": t[k] - t[p] for p, k in zip(list(t)[:-1], list(t)[1:])}
            failures = sum(1 for x in scored if x.error)
            log.log({**metrics, **timing, "reward_mean": stats.reward_mean, "reward_std": stats.reward_std,
                     "kept_groups": stats.kept_groups, "reward_failures": failures}, step)
            bar.set_postfix(reward=f"{stats.reward_mean:+.3f}", kept=stats.kept_groups, refresh=False)

        engine.update_weights(ray.get(learner.state_dict.remote()))
        after = evaluate(engine, eval_prompts, evals, config)
        log.log({f"eval/{k}": v for k, v in after.to_dict().items()}, alg.total_steps)
        checkpoint = Path(ray.get(learner.save.remote(str(run_dir / "checkpoints" / "final"))))

    report = {"stage": stage, "planner": str(planner), "checkpoint": str(checkpoint), "steps": alg.total_steps,
              "seconds": round(time.time() - started, 1), "before": before.to_dict(), "after": after.to_dict()}
    report_path = save_json_atomic(run_dir / f"stage{stage}_report.json", report)
    title = "stage 1 (trajectory alignment)" if stage == 1 else "stage 2 (grounded execution)"
    print(summary_table(title, before, after, {"checkpoint": checkpoint, "report": report_path,
                                               "TensorBoard": run_dir / "tensorboard",
                                               "config": run_dir / "config.yaml"}, seconds=report["seconds"]))
    return 0
