"""The GPU smoke test: the parts of the GPU path that no CPU test can run, checked one line each.

    bash scripts/gpu_smoke.sh              # or: make gpu-smoke    (on a machine with a GPU: the whole check)
    python scripts/gpu_smoke.py --device cpu                       # CI: the same checks with CPU stand-ins

On a GPU (16 cores, one device; a few minutes) it
  1. builds the tiny Qwen2.5-VL planner of the embedded default,
  2. serves it with vLLM on the GPU and samples plans for screenshot prompts (a real image per prompt),
  3. compares the prompt ids vLLM expanded (image placeholders included) with the learner's processor's,
  4. compares vLLM's per-token log-probs with the DeepSpeed ZeRO-3 learner's on the same GPU,
  5. takes one GRPO step (the loop's `training_batches` and `LearnerWorker.step`),
  6. moves the new weights into vLLM bucket by bucket (ZeRO-3 gathered, `gathered_buckets`) and shows the
     log-prob gap that the step opened closing again,
  7. runs two steps of `python -m tracer1.run stage=1` with fractional GPUs (learner and rollout on one device),
  8. with two or more GPUs, the same run with `rollout.weight_sync=nccl` (learner and rollout on their own GPUs).
With `--device cpu` the engine of steps 2-6 is the transformers engine (vLLM's CPU build refuses vision-language
models) and the learner runs ZeRO-3 on gloo: CI runs it so the script cannot rot between GPU machines. Steps 7-8
need a GPU and are reported as SKIP there, with the reason.

Each check prints `PASS`, `FAIL` or `SKIP`, its name and what it measured; the exit status is 1 when any check
failed. A failed check does not stop the checks that do not depend on it.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Mean |log p_engine − log p_learner| per completion token that counts as agreement: the engine and the learner
# run different kernels (vLLM's fused attention in bf16 on a GPU; the same transformers code on CPU).
AGREE = {"cuda": 0.05, "cpu": 1e-3}
LR = 5e-3  # large, so that one step visibly moves the tiny model's log-probs
# The runs' rollout engine: vLLM, eager (CUDA-graph capture and compilation would take most of the time budget).
VLLM_RUN = ("rollout.engine=vllm", "rollout.enforce_eager=true", "rollout.gpu_memory_utilization=0.3")


class Checks:
    def __init__(self) -> None:
        self.failed, self.started = 0, time.perf_counter()

    def report(self, status: str, name: str, detail: str) -> None:
        self.failed += status == "FAIL"
        print(f"{status:<4}  {name:<28} {detail}  [{time.perf_counter() - self.started:.0f} s]", flush=True)

    def run(self, name: str, check, *args):
        """`check(*args)` → (ok, detail, value); an exception is a FAIL with its last line, and returns None."""
        try:
            ok, detail, value = check(*args)
        except Exception as exc:  # noqa: BLE001 — a smoke test reports every failure and goes on
            traceback.print_exc(file=sys.stderr)
            self.report("FAIL", name, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            return None
        self.report("PASS" if ok else "FAIL", name, detail)
        return value


def smoke_config(out_dir: str, device: str):
    from tracer1.config import load_config

    overrides = [f"logging.out_dir={out_dir}", "logging.tensorboard=false", "rollout.group_size=4",
                 "rollout.prompts_per_step=4", "rollout.max_new_tokens=48", "rollout.temperature=1.0",
                 "learner.zero_stage=3", "learner.micro_batch_size=8", "learner.grad_accum_steps=2",
                 f"algorithm.lr={LR}", "algorithm.kl_coef=0.01", "algorithm.filter_flat_groups=false",
                 "data.generate_episodes=12", "data.eval_episodes=4"]
    if device == "cuda":
        overrides += ["model.dtype=bfloat16", "learner.backend=nccl", "rollout.engine=vllm", "rollout.enforce_eager=true",
                      "rollout.gpu_memory_utilization=0.3", "rollout.enforce_eager=true"]
    return load_config(overrides)


def build(config):
    from tracer1.train.assets import planner_path

    path = planner_path(config)
    params = sum(1 for _ in path.glob("*.safetensors"))
    return True, f"{path} ({params} safetensors file(s))", path


def serve(config, model_dir: Path, device: str):
    from tracer1.engines import make_engine
    from tracer1.rollout import RolloutWorker
    from tracer1.train.assets import load_split

    engine = make_engine(model_dir, config.model, config.rollout, seed=config.seed)
    worker = RolloutWorker(model_dir, config, engine=engine)
    samples = [s for s in load_split(config, "train") if s.screenshot][:config.rollout.prompts_per_step]
    groups = worker.rollout(samples, seed=1)
    plans = sum(len(g.completions) for g in groups)
    tokens = sum(len(c.token_ids) for g in groups for c in g.completions)
    name = type(engine).__name__
    return plans > 0, f"{name} on {device}: {len(samples)} screenshot prompts → {plans} plans, {tokens} tokens", \
        (worker, samples, groups)


def prompt_ids(bundle, groups):
    """The engine's prompt ids (what it generated from) against the learner's processor, position by position."""
    from tracer1.engines.prompt_ids import compare_prompt_ids

    problems = [p for g in groups for c in g.completions[:1]
                if (p := compare_prompt_ids(g.prompt_token_ids, c.prompt_token_ids, bundle.tokenizer))]
    images = sum(g.prompt.image_grid_thw is not None for g in groups)
    if problems:
        return False, problems[0], None
    lengths = sorted({len(g.prompt_token_ids) for g in groups})
    return True, f"{len(groups)} prompts ({images} with an image) identical, {lengths[0]}-{lengths[-1]} ids", None


def learner_on_device(config, model_dir: Path):
    """The stage's learner rank (ZeRO-3) with its KL reference: both where the policy is."""
    from tracer1.learner.worker import LearnerWorker

    learner = LearnerWorker(model_dir, config)
    policy = next(learner.learner.model.parameters()).device
    where = {p.device.type for p in learner.reference.parameters()} if learner.reference is not None else set()
    ok = where == {policy.type}
    return ok, f"policy on {policy}, KL reference on {', '.join(sorted(where)) or 'nothing'}", learner


def logprob_gap(learner, bundle, groups) -> tuple[float, int]:
    """Mean |engine − learner| log-prob over the sampled tokens (both at temperature 1) and the token count."""
    from tracer1.models.inputs import encode_for_training

    prompts = [g.prompt for g in groups for _ in g.completions]
    completions = [c for g in groups for c in g.completions]
    batch = encode_for_training(bundle, prompts, [c.token_ids for c in completions])
    ours = learner.learner.logprobs([batch], temperature=1.0)[0]
    total, count = 0.0, 0
    for row, (prompt, c) in enumerate(zip(prompts, completions)):
        start = len(prompt.input_ids)
        mine = ours[row, start:start + len(c.token_ids)].tolist()
        total += sum(abs(a - b) for a, b in zip(mine, c.logprobs))
        count += len(mine)
    return total / max(count, 1), count


def agree(learner, bundle, groups, device: str):
    gap, count = logprob_gap(learner, bundle, groups)
    return gap <= AGREE[device], f"mean |Δ log p| {gap:.2e} over {count} tokens (≤ {AGREE[device]:g})", gap


def grpo_step(config, learner, bundle, groups):
    from tracer1.train.batch import training_batches

    rewards = [[len(c.token_ids) / config.rollout.max_new_tokens for c in g.completions] for g in groups]
    micro, stats = training_batches(bundle, groups, rewards, config.algorithm,
                                    accumulation=learner.accumulation_steps())
    metrics = learner.step(micro)
    ok = math.isfinite(metrics.get("loss", float("nan"))) and metrics.get("grad_norm", 0.0) > 0
    return ok, (f"{stats.plans} plans, loss {metrics.get('loss', float('nan')):+.4f}, grad norm "
                f"{metrics.get('grad_norm', 0.0):.3g}"), metrics


def sync_in_buckets(learner, worker, samples, groups, before: float, device: str):
    """The step moved the learner away from the engine (gap opens); streaming the gathered buckets into the
    engine closes it again."""
    from tracer1.engines.weight_sync import gathered_buckets

    stale, _ = logprob_gap(learner, worker.bundle, groups)
    bucket_bytes = 256 * 1024  # small: the tiny planner then crosses in many buckets, as an 8B model does in 1 GB
    count = 0

    def stream():
        nonlocal count
        for _, tensors in gathered_buckets(learner.learner.model, bucket_bytes, zero3=True):
            count += 1
            yield from ((name, t.detach().clone()) for name, t in tensors.items())  # valid until the next gather

    worker.engine.update_weights(stream())
    fresh = worker.rollout(samples, seed=2)
    after, _ = logprob_gap(learner, worker.bundle, fresh)
    ok = stale > 2 * AGREE[device] and after <= AGREE[device]
    return ok, f"{count} buckets; gap {before:.2e} → after the step {stale:.2e} → after the sync {after:.2e}", after


def tracer1_run(out_dir: str, name: str, *extra: str, timeout_s: int = 300):
    """Two steps of the real entry point, as a user runs it; the run's own summary decides."""
    cmd = [sys.executable, "-m", "tracer1.run", "--config", str(ROOT / "configs" / "smoke.yaml"), "stage=1",
           "algorithm.total_steps=2", "checkpoint.every_steps=0", f"logging.out_dir={out_dir}",
           f"run_name={name}", "logging.tensorboard=false", *extra]
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    tail = (out.stdout + out.stderr).strip().splitlines()[-15:]
    report = Path(out_dir) / name / "stage1_report.json"
    if out.returncode != 0 or not report.exists():
        print("\n".join(tail), file=sys.stderr)
        return False, f"exit {out.returncode}: {tail[-1] if tail else ''}", None
    return True, f"2 steps in {time.perf_counter() - started:.0f} s ({' '.join(extra)})", None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--out", default=None, help="working directory (default: a temporary one)")
    args = parser.parse_args(argv)
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    out_dir = args.out or tempfile.mkdtemp(prefix="tracer1-gpu-smoke-")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    print(f"tracer1 GPU smoke: device {device}"
          + (f" ({gpus} × {torch.cuda.get_device_name(0)})" if gpus else "") + f", working in {out_dir}", flush=True)
    checks = Checks()
    config = smoke_config(out_dir, device)
    model_dir = checks.run("build tiny Qwen2.5-VL", build, config)
    served = model_dir and checks.run("serve with image prompts", serve, config, model_dir, device)
    if served:
        worker, samples, groups = served
        bundle = worker.bundle
        checks.run("prompt ids engine = learner", prompt_ids, bundle, groups)
        learner = checks.run("ZeRO-3 learner + reference", learner_on_device, config, model_dir)
        before = learner and checks.run("log-probs engine = learner", agree, learner, bundle, groups, device)
        if learner and before is not None and checks.run("one GRPO step", grpo_step, config, learner, bundle, groups):
            checks.run("weight sync in buckets", sync_in_buckets, learner, worker, samples, groups, before, device)
        if hasattr(worker.engine, "close"):
            worker.engine.close()  # the GPU is the next run's
        del worker, learner
    if device == "cuda":
        checks.run("tracer1.run, fractional GPUs", tracer1_run, out_dir, "gpu-smoke", *VLLM_RUN,
                   "cluster.learner.gpus=0.5", "cluster.rollout.gpus=0.5", "rollout.weight_sync=auto")
        if gpus >= 2:
            checks.run("tracer1.run, NCCL weight sync", tracer1_run, out_dir, "gpu-smoke-nccl",
                       *VLLM_RUN, "cluster.learner.gpus=1", "cluster.rollout.gpus=1", "rollout.weight_sync=nccl",
                       "learner.backend=nccl")
        else:
            checks.report("SKIP", "tracer1.run, NCCL weight sync", "needs two GPUs (NCCL runs one rank per device)")
    else:
        checks.report("SKIP", "tracer1.run, fractional GPUs", "needs a GPU")
        checks.report("SKIP", "tracer1.run, NCCL weight sync", "needs two GPUs")
    print(f"{'FAILED' if checks.failed else 'OK'}: {checks.failed} check(s) failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
