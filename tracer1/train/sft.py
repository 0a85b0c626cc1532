"""Stage 'sft': the supervised warm start. The tiny planner starts from random weights and must learn the plan
language before RL can reward anything; this teaches it from the built-in world's oracle plans.

    planner + samples → held-out evaluation (before) → DeepSpeed steps on (prompt, oracle plan) pairs
    → held-out evaluation (after) → checkpoint (HF directory) + report (sft_report.json) + summary

Each step also trains on `sft.task_only_sequences` pairs whose prompt is the task and the steps taken alone
(`task_only_prompt`): ~70 prompt tokens instead of ~500, so the planner practises the plan language (numbering
its steps up to 10 above all) at a small part of the cost of full prompts.

The learner is the same `Learner` the RL stages use, with `sft_loss` as its objective; prompts come from
`tracer1.models.prompt`, the one place prompts are built.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

from tqdm import tqdm

from tracer1.atomic import save_json_atomic
from tracer1.engines.hf import HFEngine
from tracer1.eval import PlanningReport, evaluate_planning, grounding_check
from tracer1.executors import make_executor
from tracer1.learner import Learner, sft_loss
from tracer1.metrics import MetricsLogger
from tracer1.models.inputs import encode_for_training, encode_prompts, tokenize_target
from tracer1.models.loading import load_planner
from tracer1.models.prompt import plan_target, prompt_from_sample, task_only_prompt
from tracer1.seeding import seed_everything
from tracer1.train.assets import load_split, planner_path
from tracer1.train.report import summary_table


def build_prompts(bundle, samples, config, desc: str, progress: bool = True) -> list:
    return [prompt_from_sample(bundle, s, horizon=config.horizon, history_len=config.rollout.history_len,
                               max_prompt_tokens=config.model.max_prompt_tokens,
                               max_image_pixels=config.model.max_image_pixels)
            for s in tqdm(samples, desc=desc, unit="prompt", leave=False, disable=not progress)]


def task_only_prompts(bundle, samples, config) -> list:
    return [task_only_prompt(bundle, instruction=s.instruction, history=s.history, horizon=config.horizon,
                             history_len=config.rollout.history_len) for s in samples]


def oracle_targets(bundle, samples, config) -> list[list[int]]:
    return [tokenize_target(bundle, plan_target(s.future, config.horizon)) for s in samples]


def held_out(samples: list, count: int, seed: int) -> list:
    """A seeded spread of held-out samples (consecutive samples share an episode; a random pick covers more)."""
    return sorted(random.Random(seed).sample(samples, min(count, len(samples))), key=lambda s: s.sample_id)


def evaluation_file(config, policy: Path) -> Path:
    """Where the held-out evaluation of the weights in `policy` under this config's evaluation settings is kept.
    The evaluation is deterministic (seeded sampling), so the weights a stage ends with and the next stage starts
    from are evaluated once: stage 1's "before" is the SFT's "after", stage 2's "before" is stage 1's "after"."""
    settings = config.model_dump(mode="json", include={"seed", "horizon", "data", "env", "executor", "reward"})
    settings.update(eval_samples=config.sft.eval_samples, eval_plans=config.sft.eval_plans,
                    temperature=config.rollout.temperature, max_new_tokens=config.rollout.max_new_tokens,
                    history_len=config.rollout.history_len, max_prompt_tokens=config.model.max_prompt_tokens,
                    max_image_pixels=config.model.max_image_pixels)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return Path(policy) / f"heldout-eval-{key}.json"


def evaluate(engine, prompts, samples, config, policy: Path | None = None) -> PlanningReport:
    """The held-out evaluation; with `policy` (the directory holding the engine's current weights), reused from
    that directory when these weights were already evaluated with these settings."""
    if policy is not None and evaluation_file(config, policy).is_file():
        return PlanningReport(**json.loads(evaluation_file(config, policy).read_text()))
    # Grounded accuracy needs a frozen executor; a VLM one would need its own engine, so it is left to stage 2.
    grounded = None
    if config.executor.kind != "vlm":
        grounded = grounding_check(make_executor(config.executor, env_config=config.env), config.reward)
    return evaluate_planning(engine, prompts, samples, reward_cfg=config.reward, horizon=config.horizon,
                             n=config.sft.eval_plans, temperature=config.rollout.temperature,
                             max_new_tokens=config.rollout.max_new_tokens, seed=config.seed, grounded=grounded)


def keep_evaluation(config, policy: Path, report: PlanningReport) -> None:
    """Store `report` beside the weights it measured (see `evaluation_file`)."""
    save_json_atomic(evaluation_file(config, policy), report.to_dict())


def batches(size: int, count: int, seed: int, shuffle: bool = True):
    """Indices of `size` samples per step, walking epoch after epoch through seeded permutations of the `count`
    samples, or through 0..count-1 in order (`shuffle=False`, `data.shuffle`)."""
    rng, order = random.Random(seed), []
    while True:
        while len(order) < size:
            fresh = list(range(count))
            if shuffle:
                rng.shuffle(fresh)
            order += fresh
        yield order[:size]
        order = order[size:]


def train_sft(config, run_dir: Path) -> int:
    started = time.time()
    seed_everything(config.seed)
    sft = config.sft
    path = planner_path(config)
    bundle = load_planner(path, dtype=config.model.dtype, attn_implementation=config.model.attn_implementation,
                          trust_remote_code=config.model.trust_remote_code)
    train = load_split(config, "train", config.data.max_samples)
    evals = held_out(load_split(config, "eval"), sft.eval_samples, config.seed)
    print(f"tracer1 sft: planner {path} ({sum(p.numel() for p in bundle.model.parameters()) / 1e6:.2f}M params), "
          f"{len(train)} training samples, {len(evals)} held-out")

    eval_prompts = build_prompts(bundle, evals, config, "prompts (held-out)")

    engine = HFEngine(bundle)
    before = evaluate(engine, eval_prompts, evals, config)
    print(f"  before: {before.headline()}")

    policy = load_planner(path, dtype=config.model.dtype, attn_implementation=config.model.attn_implementation,
                          trust_remote_code=config.model.trust_remote_code).model
    micro = config.learner.micro_batch_size
    learner = Learner(policy, config.learner, lr=sft.lr, total_steps=sft.steps,
                      weight_decay=config.algorithm.weight_decay, betas=sft.adam_betas,
                      warmup_steps=sft.warmup_steps, lr_schedule="cosine", dtype=config.model.dtype,
                      accumulation=sft.batch_size // micro + (1 if sft.task_only_sequences else 0))
    with MetricsLogger(run_dir, config.logging, config=config, prefix="sft/") as log:
        for warning in log.warnings:
            print(f"  {warning}")

        def evaluate_now(step: int) -> PlanningReport:  # the learner's current weights, logged at `step`
            engine.update_weights(learner.state_dict())
            report = evaluate(engine, eval_prompts, evals, config)
            log.log({f"eval/{k}": v for k, v in report.to_dict().items()}, step)
            return report

        draw = batches(sft.batch_size, len(train), config.seed, config.data.shuffle)
        draw_task_only = batches(sft.task_only_sequences, len(train), config.seed + 1, config.data.shuffle)
        bar = tqdm(range(1, sft.steps + 1), desc="sft", unit="step")
        for step in bar:
            chosen = [train[i] for i in next(draw)]  # encoded per step: screenshots of every sample would not fit
            prompts = encode_prompts(bundle, build_prompts(bundle, chosen, config, "", progress=False))
            targets = oracle_targets(bundle, chosen, config)
            micro_batches = [encode_for_training(bundle, prompts[j:j + micro], targets[j:j + micro])
                             for j in range(0, len(chosen), micro)]
            if sft.task_only_sequences:  # one micro-batch of short sequences: plan-language practice
                extra = [train[i] for i in next(draw_task_only)]
                micro_batches.append(encode_for_training(bundle, task_only_prompts(bundle, extra, config),
                                                         oracle_targets(bundle, extra, config)))
            metrics = learner.step(micro_batches, sft_loss)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['token_accuracy']:.2f}", refresh=False)
            if step % config.logging.log_every == 0 or step == sft.steps:
                log.log(metrics, step)
            if sft.eval_every and step % sft.eval_every == 0 and step < sft.steps:
                bar.write(f"  step {step}: {evaluate_now(step).headline()}")
                bar.unpause()  # the bar's rate and time left are the training steps', not the evaluation's

        after = evaluate_now(sft.steps)
        for i, example in enumerate(after.examples[:config.logging.log_samples]):
            log.log_text(f"eval/example{i}", f"{example['instruction']}\n\n{example['greedy_plan']}", sft.steps)

    checkpoint = learner.save_pretrained(run_dir / "checkpoints" / "final", extra_files=bundle.save_tokenizer)
    keep_evaluation(config, checkpoint, after)
    report = {"stage": "sft", "planner": str(path), "checkpoint": str(checkpoint), "train_samples": len(train),
              "eval_samples": len(evals), "steps": sft.steps, "batch_size": sft.batch_size,
              "task_only_sequences": sft.task_only_sequences,
              "seconds": round(time.time() - started, 1), "final_loss": metrics["loss"],
              "before": before.to_dict(), "after": after.to_dict()}
    report_path = save_json_atomic(run_dir / "sft_report.json", report)
    print(summary_table("SFT warm start", before, after, {
        "checkpoint": checkpoint, "report": report_path, "TensorBoard": run_dir / "tensorboard",
        "config": run_dir / "config.yaml"}, seconds=report["seconds"]))
    return 0
