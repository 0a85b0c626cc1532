"""The frozen KL reference policy of the RL stages, held where and as the policy is.

`reference_placement(config, device)` decides from the config and the learner's device alone whether there is
a reference and how it is held; `build_reference` does what it says:

* `algorithm.kl_coef` = 0: no reference at all (no model loaded, no forward);
* without ZeRO-3 every rank holds the whole policy, so the reference is a plain module on the learner's device
  (`Learner.device`), in the policy's dtype;
* under ZeRO-3 the policy is partitioned across the learner ranks, so the reference is too: its own DeepSpeed
  engine with ZeRO stage 3 and no optimizer (DeepSpeed's optimizer-less ZeRO-3 path, the way DeepSpeed-Chat's
  and OpenRLHF's `get_eval_ds_config` hold a reference model), each rank keeping 1/world of its weights and
  gathering a layer at a time in the forward. That gather is a collective: every rank must run the same number
  of reference forwards, which the loop's equal micro-batch counts per rank give (as for the policy's own).

Like the policy, the reference is read from disk whole on each rank (in host memory) before DeepSpeed partitions
it; only the partition stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tracer1.models.loading import load_planner


@dataclass(frozen=True)
class ReferencePlacement:
    device: torch.device  # where its weights (under ZeRO-3: this rank's partition) live: the learner's device
    sharded: bool         # ZeRO-3: its own optimizer-less DeepSpeed engine, partitioned like the policy


def reference_placement(config, device: torch.device | str) -> ReferencePlacement | None:
    """How a learner rank on `device` holds the reference for `config`; None when `algorithm.kl_coef` is 0."""
    if config.algorithm.kl_coef == 0:
        return None
    return ReferencePlacement(torch.device(device), sharded=config.learner.zero_stage == 3)


def reference_deepspeed_config(config) -> dict:
    """DeepSpeed config of the ZeRO-3 reference: no optimizer, no gradients, the policy's dtype. DeepSpeed asks for
    a batch size even without training; the learner's micro-batch is the honest one."""
    dtype = config.model.dtype
    return {
        "train_micro_batch_size_per_gpu": config.learner.micro_batch_size,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": 3},
        "bf16": {"enabled": dtype == "bfloat16"},
        "fp16": {"enabled": dtype == "float16"},
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


def build_reference(model_dir: str | Path, config, placement: ReferencePlacement) -> torch.nn.Module:
    """The frozen reference (eval mode, no gradients) as `placement` says. Sharded, it is a DeepSpeed engine
    (call it like the model); the learner's process group must exist already (`Learner` creates it)."""
    m = config.model
    load = {"dtype": m.dtype, "attn_implementation": m.attn_implementation, "trust_remote_code": m.trust_remote_code}
    if not placement.sharded:
        return load_planner(model_dir, device=str(placement.device), **load).model.eval().requires_grad_(False)
    import deepspeed  # noqa: PLC0415 — after the process group chose the accelerator

    model = load_planner(model_dir, **load).model.requires_grad_(False)  # on CPU: DeepSpeed moves its partition
    engine, _, _, _ = deepspeed.initialize(model=model, config=reference_deepspeed_config(config))
    if torch.device(engine.device) != placement.device:
        raise RuntimeError(f"the ZeRO-3 reference landed on {engine.device}, the learner is on {placement.device}")
    engine.eval()  # DeepSpeedEngine.eval() returns None, unlike nn.Module's
    return engine
