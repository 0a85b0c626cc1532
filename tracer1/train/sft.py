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

import time
from pathlib import Path

from tqdm import tqdm

from tracer1.atomic import save_json_atomic
from tracer1.engines.hf import HFEngine
from tracer1.eval.held_out import evaluate_held_out, held_out, keep_evaluation
from tracer1.eval.planning import PlanningReport
from tracer1.learner import Learner, sft_loss
from tracer1.metrics import MetricsLogger
from tracer1.models.inputs import encode_for_training, encode_prompts, tokenize_target
from tracer1.models.loading import load_planner
from tracer1.models.prompt import plan_target, prompts_for_run, task_only_prompt
from tracer1.report.text import summary_table
from tracer1.seeding import seed_everything
from tracer1.train.assets import batches, load_split, planner_path


def task_only_prompts(bundle, samples, config) -> list:
    return [task_only_prompt(bundle, instruction=s.instruction, history=s.history, horizon=config.horizon,
                             history_len=config.rollout.history_len) for s in samples]


def oracle_targets(bundle, samples, config) -> list[list[int]]:
    return [tokenize_target(bundle, plan_target(s.future, config.horizon)) for s in samples]


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

    eval_prompts = prompts_for_run(bundle, evals, config, desc="prompts (held-out)")

    engine = HFEngine(bundle)
    before = evaluate_held_out(engine, eval_prompts, evals, config)
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
            report = evaluate_held_out(engine, eval_prompts, evals, config)
            log.log({f"eval/{k}": v for k, v in report.to_dict().items()}, step)
            return report

        draw = batches(sft.batch_size, len(train), config.seed, config.data.shuffle)
        draw_task_only = batches(sft.task_only_sequences, len(train), config.seed + 1, config.data.shuffle)
        bar = tqdm(range(1, sft.steps + 1), desc="sft", unit="step")
        for step in bar:
            chosen = [train[i] for i in next(draw)]  # encoded per step: screenshots of every sample would not fit
            prompts = encode_prompts(bundle, prompts_for_run(bundle, chosen, config))
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
