"""GRPO step time of tracer1 against TRL's `GRPOTrainer`, side by side on the same work.

Both sides train the same tiny text planner (`tracer1.models.tiny --text`, random init, float32) from the same
directory, on the same N prompts built by tracer1's prompt builder (`prompts_for_run`: chat-template-rendered text,
which TRL takes as plain-text prompts), with G samples per prompt, the same generation budget, temperature 1 and
top-p 1, the same stage-1 reward (`trajectory_reward` against each sample's reference future, wrapped as a TRL
reward function), the same learning rate (constant, no warm-up), KL coefficient (k3 estimator against a frozen
reference), clip range (0.2 / 0.28), token-mean loss over the whole batch (TRL's "dapo") and accumulation
(A micro-batches of N·G/A sequences, one optimizer step per generation batch). tracer1 keeps every group
(`algorithm.filter_flat_groups=false`; a random model's plans all score the same, and TRL trains on flat groups
too), so both run a learner update every step.

* tracer1: `python -m tracer1.run stage=1` in this process — a local Ray with one rollout worker (HFEngine), one
  reward actor, one DeepSpeed learner rank (ZeRO-2 on CPU) and the weight sync to the rollout worker; a step's
  time is the driver's `time/step` (rollout + reward + learner + sync walls), read from metrics.jsonl. It runs
  once per `--staleness` setting (`algorithm.max_staleness`): 0 is the synchronous loop, k ≥ 1 generates each
  batch from the weights of k updates before while the learner updates (tracer1.train.ahead).
* TRL: `GRPOTrainer` in one process of `.venv-bench` (`make bench-venv`: TRL and its missing dependencies on top
  of .venv's packages); a step's time is the interval between consecutive `on_step_end` callbacks (generation,
  reward, reference and policy passes, optimizer step; TRL samples from the trained model itself, so it has no
  sync).

Each side computes on one thread per process (tracer1's actors get one CPU and one torch thread each — `threads=1`
for the rollout worker and the learner, which default to 2; TRL is given `torch.set_num_threads(1)`). tracer1's
synchronous loop runs its actors one after another, so it uses one core at a time as TRL does, and that ratio
compares the systems; with staleness ≥ 1 the rollout worker and the learner compute at the same time, on two
cores — the point of it, which TRL's loop (generation inside the training step) cannot do. With `--epochs` (on)
two more synchronous runs take 2 epochs per batch, π_old from the learner's extra forward pass against the
engine's log-probs (`algorithm.old_logprobs`), and the learner part of each is reported. Step 1 (warm-up)
is dropped; means and sample standard deviations are over the rest. Completions end at EOS or at the budget on
both sides (tracer1 also stops at `</plan>`, which a random model does not write), and the mean completion length
of each side is reported to show the work was the same.

Prints a table and writes bench/results/trl_grpo.json. Run with `make bench`, or

    python bench/trl_grpo.py [--prompts 4] [--group 8] [--tokens 64] [--steps 6] [--staleness 0,1,2]
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import mean_std, run_facts, save_results  # bench/common.py (the script's folder)

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results" / "trl_grpo.json"
BENCH_PYTHON = os.environ.get("TRACER1_BENCH_PYTHON", str(ROOT / ".venv-bench" / "bin" / "python"))
WARMUP_STEPS = 1  # step 1 is dropped on both sides
LR, KL_COEF, CLIP_LOW, CLIP_HIGH = 1e-4, 0.001, 0.2, 0.28  # tracer1's embedded defaults, given to both sides


def overrides(out_dir: Path, args) -> list[str]:
    """tracer1's settings for the run (and, through the job file, what the TRL side mirrors)."""
    return [f"logging.out_dir={out_dir}", "model.kind=tiny-text", "data.generate_episodes=12",
            "data.eval_episodes=2", f"data.max_samples={args.prompts}", f"rollout.prompts_per_step={args.prompts}",
            f"rollout.group_size={args.group}", f"rollout.max_new_tokens={args.tokens}", "rollout.temperature=1.0",
            "rollout.top_p=1.0", f"learner.grad_accum_steps={args.accumulation}",
            f"learner.micro_batch_size={args.prompts * args.group // args.accumulation}",
            f"algorithm.lr={LR}", "algorithm.lr_schedule=constant", "algorithm.warmup_steps=0",
            f"algorithm.kl_coef={KL_COEF}", f"algorithm.clip_low={CLIP_LOW}", f"algorithm.clip_high={CLIP_HIGH}",
            "algorithm.loss_agg=token-mean", "algorithm.filter_flat_groups=false", "algorithm.epochs_per_batch=1",
            f"algorithm.total_steps={args.steps}", "algorithm.eval_every=0", "checkpoint.every_steps=0",
            "sft.eval_samples=1", "sft.eval_plans=1", "logging.tensorboard=false",
            "cluster.rollout.threads=1", "cluster.learner.threads=1"]  # one thread per side, as TRL gets


def prepare(settings: list[str]) -> dict:
    """The planner directory and the N prompts and references both sides use (built by tracer1)."""
    from tracer1.config import load_config
    from tracer1.models.inputs import encode_prompts
    from tracer1.models.loading import load_planner
    from tracer1.plan import format_step, parse_step
    from tracer1.train.assets import load_split, planner_path
    from tracer1.models.prompt import prompts_for_run

    config = load_config(settings)
    planner = planner_path(config)
    samples = load_split(config, "train", config.data.max_samples)
    bundle = load_planner(planner, load_model=False)
    built = prompts_for_run(bundle, samples, config)
    prompt_tokens = [len(e.input_ids) for e in encode_prompts(bundle, built)]
    references = [[format_step(s) for s in sample.future] for sample in samples]
    assert all([parse_step(t)[0] for t in ref] == list(s.future) for ref, s in zip(references, samples))
    return {"model": str(planner), "prompts": [p.text for p in built], "references": references,
            "settings": settings, "prompt_tokens_mean": statistics.fmean(prompt_tokens)}


# --- the tracer1 side (main venv, this process) ----------------------------------------------------------------

def run_tracer1(job: dict, out_dir: Path, staleness: int, extra: tuple[str, ...] = (), name: str = "") -> dict:
    import ray

    from tracer1.run import main

    started, name = time.perf_counter(), name or f"tracer1-staleness{staleness}"
    try:
        if main(["stage=1", f"run_name={name}", *job["settings"], f"algorithm.max_staleness={staleness}",
                 f"checkpoint.init_from={job['model']}", *extra]) != 0:
            raise SystemExit("the tracer1 run failed")
    finally:
        ray.shutdown()
    rows = {}
    for line in (out_dir / name / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "stage1/time/step" in row:
            rows[row["step"]] = row
    rows = [rows[s] for s in sorted(rows)]
    completions = len(job["prompts"]) * job["group"]
    return {"step_s": [r["stage1/time/step"] for r in rows], "prompt_tokens_mean": job["prompt_tokens_mean"],
            "parts_s": {p: [r[f"stage1/time/{p}"] for r in rows] for p in ("rollout", "reward", "learner", "sync")},
            # the learner logs the mean over micro-batches of each micro-batch's completion tokens
            "completion_tokens_mean": [r["stage1/tokens"] * job["accumulation"] / completions for r in rows],
            "reward_mean": [r["stage1/reward_mean"] for r in rows], "run_wall_s": time.perf_counter() - started,
            "staleness": staleness, "overlap": [r["stage1/overlap"] for r in rows],
            "learner_wait_s": [r["stage1/wait/learner"] for r in rows]}


# --- the TRL side (.venv-bench, a subprocess) -----------------------------------------------------------------

def run_trl(job: dict, out_dir: Path) -> dict:
    # tracer1 first: importing it sets the OpenMP wait policy the tracer1 side runs with (before torch loads OpenMP)
    from tracer1.config import load_config
    from tracer1.plan import parse_step
    from tracer1.rewards import trajectory_reward

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(job["threads"])
    config = load_config(job["settings"])
    futures = {i: [parse_step(t)[0] for t in ref] for i, ref in enumerate(job["references"])}

    def tracer1_stage1_reward(completions, sample, **_) -> list[float]:
        """tracer1's stage-1 reward of each completion against its prompt's reference future."""
        return [trajectory_reward(text, futures[i], config.reward, config.horizon)
                for text, i in zip(completions, sample)]

    class StepClock(TrainerCallback):
        def __init__(self):
            self.marks, self.logs = [], []

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.logs.append(dict(logs or {}))

    prompts, G = job["prompts"], job["group"]
    dataset = Dataset.from_list([{"prompt": p, "sample": i} for i, p in enumerate(prompts)])
    args = GRPOConfig(
        output_dir=str(out_dir / "trl"), use_cpu=True, seed=0, max_steps=job["steps"], report_to="none",
        save_strategy="no", logging_steps=1, disable_tqdm=True, dataloader_num_workers=0,
        per_device_train_batch_size=len(prompts) * G // job["accumulation"],
        gradient_accumulation_steps=job["accumulation"], num_generations=G,
        max_completion_length=job["tokens"], temperature=1.0, top_p=1.0, top_k=0,
        learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        beta=KL_COEF, epsilon=CLIP_LOW, epsilon_high=CLIP_HIGH, loss_type="dapo", num_iterations=1,
        scale_rewards="group", bf16=False, fp16=False,
        gradient_checkpointing=False)  # TRL's default is on; tracer1's learner.gradient_checkpointing is off
    started = time.perf_counter()
    clock = StepClock()
    trainer = GRPOTrainer(model=job["model"], reward_funcs=tracer1_stage1_reward, args=args,
                          train_dataset=dataset, callbacks=[clock])
    setup_s = time.perf_counter() - started
    trainer.train()
    steps = [log for log in clock.logs if "completions/mean_length" in log]
    prompt_tokens = [len(ids) for ids in trainer.processing_class(text=prompts)["input_ids"]]
    return {"step_s": [b - a for a, b in zip(clock.marks, clock.marks[1:])],
            "completion_tokens_mean": [s["completions/mean_length"] for s in steps],
            "reward_mean": [s["reward"] for s in steps], "setup_s": setup_s,
            "prompt_tokens_mean": statistics.fmean(prompt_tokens), "torch_threads": torch.get_num_threads(),
            "dtype": str(trainer.model.dtype), "gradient_checkpointing": args.gradient_checkpointing,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "run_wall_s": time.perf_counter() - started, "trl": metadata.version("trl"),
            "accelerate": metadata.version("accelerate")}


# --- the driver -------------------------------------------------------------------------------------------------

def kept(side: dict, samples: int) -> dict:
    """Step time, samples (completions) per second and completion length over the kept steps."""
    steps = side["step_s"][WARMUP_STEPS:]
    if not steps:
        raise SystemExit(f"only {len(side['step_s'])} steps timed: nothing left after the warm-up step")
    return {"step_s": mean_std(steps), "samples_per_s": samples / statistics.fmean(steps),
            "completion_tokens": mean_std(side["completion_tokens_mean"][WARMUP_STEPS:])}



def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=4, help="N: prompts per step (the whole data set)")
    parser.add_argument("--group", type=int, default=8, help="G: completions per prompt")
    parser.add_argument("--tokens", type=int, default=64, help="max new tokens per completion")
    parser.add_argument("--accumulation", type=int, default=4, help="micro-batches per optimizer step")
    parser.add_argument("--steps", type=int, default=6, help="GRPO steps per side (step 1 is dropped)")
    parser.add_argument("--epochs", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the learner at 2 epochs per batch, old log-probs from learner vs rollout")
    parser.add_argument("--staleness", default="0,1,2",
                        help="tracer1's algorithm.max_staleness settings, one run each (comma-separated)")
    parser.add_argument("--side", choices=("trl",), help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        job = json.loads(Path(args.job).read_text())
        Path(args.out).write_text(json.dumps(run_trl(job, Path(args.out).parent)))
        return {}
    if args.steps <= WARMUP_STEPS:
        parser.error(f"--steps must be more than {WARMUP_STEPS}: step 1 is dropped as warm-up")
    if (args.prompts * args.group) % args.accumulation:
        parser.error("--prompts x --group must be a multiple of --accumulation")
    if not Path(BENCH_PYTHON).is_file():
        sys.exit(f"the TRL side runs in {BENCH_PYTHON}, which does not exist: run `make bench-venv` first "
                 "(or set TRACER1_BENCH_PYTHON)")

    started, load_start = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tracer1-trl-grpo-") as tmp:
        out_dir = Path(tmp)
        job = {**prepare(overrides(out_dir, args)), "group": args.group, "tokens": args.tokens,
               "accumulation": args.accumulation, "steps": args.steps, "threads": 1}
        (out_dir / "job.json").write_text(json.dumps(job))
        staleness = [int(k) for k in args.staleness.split(",")]
        tracer1 = {k: run_tracer1(job, out_dir, k) for k in staleness}
        # two epochs per batch: π_old from the learner's extra forward pass, or the engine's log-probs (none)
        epochs = {source: run_tracer1(job, out_dir, 0, ("algorithm.epochs_per_batch=2",
                                                         f"algorithm.old_logprobs={source}"), f"epochs2-{source}")
                  for source in ("learner", "rollout")} if args.epochs else {}
        proc = subprocess.run([BENCH_PYTHON, __file__, "--side", "trl", "--job", str(out_dir / "job.json"),
                               "--out", str(out_dir / "trl.json")], cwd=ROOT, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"the TRL side failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
        trl = json.loads((out_dir / "trl.json").read_text())
        prompt_chars = statistics.fmean(map(len, job["prompts"]))

    samples = args.prompts * args.group
    sides = {**{f"tracer1_staleness{k}": {**side, **kept(side, samples)} for k, side in tracer1.items()},
             "trl": {**trl, **kept(trl, samples)}}
    trl_step = sides["trl"]["step_s"]["mean"]
    ours = {name: side["step_s"]["mean"] for name, side in sides.items() if name != "trl"}
    sync = sides.get("tracer1_staleness0")
    results = {
        "model": "tiny text planner (tracer1.models.tiny --text, random init, float32)",
        "prompts": args.prompts, "group_size": args.group, "max_new_tokens": args.tokens,
        "accumulation": args.accumulation, "steps": args.steps, "dropped_steps": list(range(1, WARMUP_STEPS + 1)),
        "lr": LR, "kl_coef": KL_COEF, "clip": [CLIP_LOW, CLIP_HIGH], "threads_per_side": 1,
        "prompt_chars_mean": prompt_chars, "staleness": staleness, "sides": sides,
        "two_epochs_learner_s": {source: mean_std(side["parts_s"]["learner"][WARMUP_STEPS:])
                                 for source, side in epochs.items()},
        "over_trl": {name: step / trl_step for name, step in ours.items()},  # step time, lower is better
        "best_over_trl": min(ours.values()) / trl_step,
        "throughput_over_synchronous": {name: side["samples_per_s"] / sync["samples_per_s"]
                                        for name, side in sides.items() if name != "trl"} if sync else {},
        **run_facts(started, load_start), "trl_version": trl["trl"],
    }
    save_results(OUT, results)
    print_table(results)
    return results


def print_table(r: dict) -> None:
    print(f"GRPO step time, tracer1 vs TRL {r['trl_version']} GRPOTrainer, tiny text planner: {r['prompts']} prompts x "
          f"G={r['group_size']} x <= {r['max_new_tokens']} new tokens, {r['accumulation']} micro-batches, "
          f"{r['steps']} steps, step 1 dropped, one thread per process ({r['cpus']} CPUs, load "
          f"{r['loadavg_start']:.1f} -> {r['loadavg_end']:.1f}; torch {r['torch']})")
    print(f"  {'side':<34} {'seconds/step':>16} {'samples/s':>10} {'vs sync':>8} {'vs TRL':>7} {'overlap':>8} "
          f"{'completion tokens':>18} {'run wall':>9}")
    for name, s in r["sides"].items():
        title = f"tracer1, max_staleness {s['staleness']}" if name != "trl" else "TRL GRPOTrainer"
        versus, trl = r["throughput_over_synchronous"].get(name), r["over_trl"].get(name)
        overlap = statistics.fmean(s["overlap"][WARMUP_STEPS:]) if "overlap" in s else None
        cells = [f"{versus:.2f}x" if versus else "", f"{trl:.2f}x" if trl else "",
                 f"{overlap:.0%}" if overlap is not None else ""]
        print(f"  {title:<34} {s['step_s']['mean']:>8.2f} ± {s['step_s']['std']:<5.2f} {s['samples_per_s']:>10.2f} "
              f"{cells[0]:>8} {cells[1]:>7} {cells[2]:>8} {s['completion_tokens']['mean']:>18.1f} "
              f"{s['run_wall_s']:>8.0f}s")
        if "parts_s" in s:
            print("    per part (driver's wall, mean of the kept steps): " + ", ".join(
                f"{p} {statistics.fmean(v[WARMUP_STEPS:]):.2f} s" for p, v in s["parts_s"].items()))
    if r["two_epochs_learner_s"]:
        own, engine = r["two_epochs_learner_s"]["learner"], r["two_epochs_learner_s"]["rollout"]
        print(f"  2 epochs per batch, learner part: old log-probs by the learner's forward {own['mean']:.2f} ± "
              f"{own['std']:.2f} s, the engine's {engine['mean']:.2f} ± {engine['std']:.2f} s "
              f"({1 - engine['mean'] / own['mean']:.0%} less)")
    print(f"  tracer1's best / TRL step time: {r['best_over_trl']:.2f}x  (script wall time {r['wall_s']:.0f} s)")
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
