"""The learner: one DeepSpeed engine around the policy, the same code for SFT and for the RL stages.

`Learner` is a plain class (tests use it without Ray; the Ray `Learner` actor of the training loop is a thin shell
around it). A step takes a list of exactly `accumulation` micro-batches, runs forward and backward on each and
lets DeepSpeed accumulate them into one optimizer step. Their sizes need not be equal nor
`learner.micro_batch_size`: the RL loop splits however many plans survive group filtering into that many
micro-batches, and `grpo_loss`'s `loss_denominator` keeps the sum exact. The objective is a function
`(logits, micro_batch) → (loss, metrics)`: `losses.sft_loss` for the warm start, the GRPO loss for stages 1 and 2;
it sees the logits and token columns from the completions on (`completion_logits`), not the prompts' columns.

Weights leave the learner through rank 0 only (`state_dict`, `save_pretrained`): under ZeRO-3 every rank takes
part in gathering the shards, a bucket of `sync_bucket_bytes` at a time (`weight_sync.gathered_buckets`, as the
NCCL sync does), and only rank 0 copies each bucket to CPU; the others return {}. So a sync needs, beyond a rank's
shard, one gathered bucket of GPU memory (a weight larger than a bucket is gathered alone), and one full copy in
host memory, on rank 0.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from tracer1.engines.weight_sync import gathered_buckets, hf_name
from tracer1.learner.distributed import init_process_group
from tracer1.models.inputs import completion_logits, token_logprobs

Objective = Callable[[torch.Tensor, Mapping[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]


def lr_lambda(schedule: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at optimizer step `step`: linear warm-up, then constant or cosine."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "cosine":
            progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return factor


def deepspeed_config(learner_cfg, *, lr: float, weight_decay: float, dtype: str, accumulation: int,
                     betas: tuple[float, float] = (0.9, 0.999), optimizer: str = "adamw") -> dict:
    """The DeepSpeed JSON config for a `LearnerConfig`. The optimizer is DeepSpeed's AdamW (torch's on CPU), or
    with `optimizer="sgd"` torch's plain SGD, whose step −lr·g lets tests compare gradients through the weights
    (Adam's first step is about lr·sign(g), blind to a gradient's scale)."""
    zero: dict[str, Any] = {"stage": learner_cfg.zero_stage}
    if learner_cfg.offload_optimizer and learner_cfg.zero_stage >= 1:
        zero["offload_optimizer"] = {"device": "cpu"}
    if optimizer == "adamw":
        chosen = {"type": "AdamW", "params": {"lr": lr, "betas": list(betas), "weight_decay": weight_decay,
                                              "torch_adam": True}}
    elif optimizer == "sgd":
        chosen = {"type": "SGD", "params": {"lr": lr, "weight_decay": weight_decay}}
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose adamw or sgd")
    return {
        "train_micro_batch_size_per_gpu": learner_cfg.micro_batch_size,
        "gradient_accumulation_steps": accumulation,
        "gradient_clipping": learner_cfg.grad_clip or 0.0,
        "zero_optimization": zero,
        "bf16": {"enabled": dtype == "bfloat16"},
        "fp16": {"enabled": dtype == "float16"},
        "optimizer": chosen,
        "zero_allow_untested_optimizer": optimizer == "sgd",  # torch's SGD under ZeRO: DeepSpeed asks for consent
        "steps_per_print": 2**31 - 1,  # we log; DeepSpeed's own prints would interleave with progress bars
        "wall_clock_breakdown": False,
    }


class Learner:
    """Owns the trainable policy inside a DeepSpeed engine.

    `accumulation` is how many micro-batches make one optimizer step; `step()` must be handed exactly that many
    (the loops group their data so). Rank/world size/backend set up torch.distributed for data parallelism.
    `sync_bucket_bytes`: how much of the model `state_dict` gathers at a time under ZeRO-3 (the RL loop passes
    `rollout.weight_sync_bucket_mb`)."""

    def __init__(self, model: torch.nn.Module, learner_cfg, *, lr: float, total_steps: int, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), warmup_steps: int = 0, lr_schedule: str = "constant",
                 dtype: str = "float32", accumulation: int | None = None, rank: int = 0, world_size: int = 1,
                 master_addr: str = "127.0.0.1", master_port: int | None = None, optimizer: str = "adamw",
                 sync_bucket_bytes: int = 2**30):
        self.backend = init_process_group(rank, world_size, backend=learner_cfg.backend, master_addr=master_addr,
                                          master_port=master_port)
        import deepspeed  # noqa: PLC0415 — imported after init_process_group chose the accelerator

        if learner_cfg.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
            model.gradient_checkpointing_enable()
        self.accumulation = accumulation or learner_cfg.grad_accum_steps
        config = deepspeed_config(learner_cfg, lr=lr, weight_decay=weight_decay, dtype=dtype,
                                  accumulation=self.accumulation, betas=betas, optimizer=optimizer)
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=model, model_parameters=[p for p in model.parameters() if p.requires_grad], config=config,
            lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(
                opt, lr_lambda(lr_schedule, warmup_steps, total_steps)))
        self.rank, self.world_size = rank, world_size
        self.zero_stage = learner_cfg.zero_stage
        self.sync_bucket_bytes = sync_bucket_bytes
        self.steps_done = 0

    @property
    def model(self) -> torch.nn.Module:
        """The policy itself (unwrapped), e.g. for generation between steps."""
        return self.engine.module

    @property
    def device(self) -> torch.device:
        return self.engine.device

    def step(self, micro_batches: Sequence[Mapping[str, torch.Tensor]], objective: Objective) -> dict[str, float]:
        """One optimizer step over `micro_batches` (forward, backward, accumulate, step). → mean metrics."""
        if len(micro_batches) != self.accumulation:
            raise ValueError(f"Learner.step needs {self.accumulation} micro-batches (one optimizer step), got "
                             f"{len(micro_batches)}")
        self.engine.train()
        totals: dict[str, float] = {}
        for micro in micro_batches:
            logits, window = completion_logits(self.engine, micro, self.device)
            loss, metrics = objective(logits, window)
            self.engine.backward(loss)
            self.engine.step()  # DeepSpeed steps the optimizer only at the accumulation boundary
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value / len(micro_batches)
        self.steps_done += 1
        totals["grad_norm"] = float(self.engine.get_global_grad_norm() or 0.0)
        totals["lr"] = float(self.engine.get_lr()[0])
        return totals

    @torch.no_grad()
    def logprobs(self, micro_batches: Sequence[Mapping[str, torch.Tensor]],
                 temperature: float = 1.0) -> list[torch.Tensor]:
        """Per-token log-probs (B, L) of each micro-batch under the current policy at `temperature`
        (`token_logprobs`: 0 on the prompt columns before the completions; eval mode, no grad)."""
        self.engine.eval()
        return [token_logprobs(self.engine, micro, self.device, temperature).cpu() for micro in micro_batches]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """On rank 0: the policy's HF-named weights, copied to CPU (what rollout engines load); on every other
        rank: {} (nothing is copied there). Under ZeRO-3 this is collective — every rank must call it — and the
        shards are gathered one bucket (`sync_bucket_bytes`) at a time, never the whole model at once. Without
        ZeRO-3 each rank holds the whole model and only rank 0 need be asked."""
        module = self.engine.module
        zero3 = self.zero_stage == 3
        if self.rank != 0 and not zero3:
            return {}
        state: dict[str, torch.Tensor] = {}
        for _, tensors in gathered_buckets(module, self.sync_bucket_bytes, zero3=zero3):
            if self.rank == 0:  # the others only take part in the gather
                state.update({name: t.to("cpu", copy=True) for name, t in tensors.items()})
        if self.rank != 0:
            return {}
        # Tied weights travel once (gathered_buckets); their other names point at the same CPU tensor, so the
        # result has every name of the model's own state dict, as HF loaders and save_pretrained expect.
        first: dict[int, str] = {}
        for name, tensor in module.state_dict(keep_vars=True).items():
            name = hf_name(name)
            if id(tensor) in first and name not in state:
                state[name] = state[first[id(tensor)]]
            first.setdefault(id(tensor), name)
        return state

    def save_state(self, directory: str | Path) -> None:
        """DeepSpeed's training state (optimizer, LR schedule, ZeRO partitions, step) under `directory`, for
        resuming (collective: all ranks call it, each writes its partition)."""
        self.engine.save_checkpoint(str(directory), tag="state", save_latest=False,
                                    client_state={"steps_done": self.steps_done})

    def load_state(self, directory: str | Path) -> None:
        """Resume from `save_state`'s directory. It holds torch-pickled optimizer state: callers pass only a
        checkpoint their own run wrote (policy weights elsewhere are loaded with safetensors)."""
        _, client = self.engine.load_checkpoint(str(directory), tag="state", load_optimizer_states=True,
                                                load_lr_scheduler_states=True)
        if client is None:
            raise FileNotFoundError(f"no DeepSpeed state under {directory}")
        self.steps_done = int(client.get("steps_done", 0))

    def save_pretrained(self, out_dir: str | Path, extra_files: Callable[[Path], None] | None = None) -> Path:
        """Write the policy as a HF directory (safetensors) atomically: a temp dir beside `out_dir`, then a
        rename, so a reader never sees half a checkpoint. `extra_files(tmp_dir)` adds tokenizer/processor files.
        Only rank 0 writes; all ranks must call it (ZeRO-3 gathers, bucket by bucket: `state_dict`)."""
        out_dir = Path(out_dir)
        state = self.state_dict()
        if self.rank != 0:
            return out_dir
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
        try:
            self.engine.module.save_pretrained(tmp, state_dict=state, safe_serialization=True)
            if extra_files is not None:
                extra_files(tmp)
            if out_dir.exists():  # replace: move the old one aside first so the swap is two renames
                old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
                out_dir.rename(old)
                tmp.rename(out_dir)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out_dir
