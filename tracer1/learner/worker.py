"""`LearnerWorker`: one learner rank of the RL stages — the policy in a DeepSpeed `Learner`, a frozen reference
policy for the KL term, and the GRPO update (the plain class inside each Ray learner actor).

The reference is built for the learner's device and sharded like the policy under ZeRO-3, or not built at all
when `algorithm.kl_coef` is 0 (`tracer1.learner.reference`).

A step takes the micro-batches of `tracer1.train.batch.training_batches`, adds the reference policy's log-probs
(when `algorithm.kl_coef` > 0) and, for several epochs per batch, the log-probs before the first update as
`old_logprobs`; with one epoch the update is on-policy and the ratio is exactly 1. With
`algorithm.old_logprobs=rollout` the rollout engine's behaviour log-probs are `old_logprobs` instead (no forward
pass); batches generated ahead (`algorithm.max_staleness`) are weighted against them (`tracer1.learner.grpo`).

All three log-probs — the current policy's in the loss, the old and the reference ones — are those of the policy
that sampled the plans, softmax(logits / T) at T = `rollout.temperature`; greedy rollouts (T = 0) take them at
T = 1. With one temperature for all three, a policy equal to the reference has KL 0 and the first epoch's ratio
is 1 at any T.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from tracer1.learner.grpo import grpo_objective
from tracer1.learner.learner import Learner
from tracer1.learner.reference import build_reference, reference_placement
from tracer1.models.inputs import token_logprobs
from tracer1.models.loading import load_planner
from tracer1.seeding import rng_state, set_rng_state
from tracer1.atomic import BackgroundCopy


class LearnerWorker:
    def __init__(self, model_dir: str | Path, config, *, reference_dir: str | Path | None = None, rank: int = 0,
                 world_size: int = 1, master_addr: str = "127.0.0.1", master_port: int | None = None,
                 optimizer: str = "adamw"):
        """`model_dir`: the policy to train; `reference_dir`: the frozen KL reference (default `model_dir`; a
        resumed run trains from its checkpoint but keeps the stage's starting policy as the reference);
        `optimizer`: `Learner`'s ("sgd" lets tests compare gradients)."""
        self.config, self.model_dir, self.rank = config, str(model_dir), rank
        algorithm = config.algorithm
        torch.manual_seed(config.seed + rank)
        load = {"dtype": config.model.dtype, "attn_implementation": config.model.attn_implementation,
                "trust_remote_code": config.model.trust_remote_code}
        self.bundle = load_planner(model_dir, **load)
        # The schedule counts optimizer steps and each RL step takes `epochs_per_batch` of them: scaled so the
        # warm-up and the cosine span `warmup_steps` and `total_steps` RL steps.
        epochs = algorithm.epochs_per_batch
        self.learner = Learner(self.bundle.model, config.learner, lr=algorithm.lr,
                               total_steps=algorithm.total_steps * epochs,
                               weight_decay=algorithm.weight_decay, betas=algorithm.adam_betas,
                               warmup_steps=algorithm.warmup_steps * epochs,
                               lr_schedule=algorithm.lr_schedule, dtype=config.model.dtype, rank=rank,
                               world_size=world_size, master_addr=master_addr, master_port=master_port,
                               optimizer=optimizer, sync_bucket_bytes=config.rollout.weight_sync_bucket_mb * 2**20)
        # After the learner: it sets up the process group and the device the reference must share.
        self.reference_placement = reference_placement(config, self.learner.device)
        self.reference = None
        if self.reference_placement is not None:
            self.reference = build_reference(reference_dir or model_dir, config, self.reference_placement)
        self.temperature = config.rollout.temperature or 1.0  # the log-probs' T (module docstring); 0 is greedy
        self.objective = grpo_objective(algorithm, temperature=self.temperature)
        self.copy = BackgroundCopy()  # checkpoint.async_write: this rank's part on its way to shared storage

    def accumulation_steps(self) -> int:
        """Micro-batches per optimizer step (what `training_batches` must produce)."""
        return self.learner.accumulation

    @torch.no_grad()
    def _reference_logprobs(self, micro_batches: Sequence[dict]) -> list[torch.Tensor]:
        device = self.reference_placement.device  # a ZeRO-3 parameter outside a gather says nothing of it
        return [token_logprobs(self.reference, m, device, self.temperature).cpu() for m in micro_batches]

    def step(self, micro_batches: Sequence[dict]) -> dict[str, float]:
        """One GRPO update (`algorithm.epochs_per_batch` optimizer steps over the same micro-batches)."""
        batches = [dict(m) for m in micro_batches]
        if self.reference is not None:
            for m, ref in zip(batches, self._reference_logprobs(batches)):
                m["ref_logprobs"] = ref
        algorithm = self.config.algorithm
        epochs = algorithm.epochs_per_batch
        if algorithm.old_logprobs == "rollout":  # the engine's: no forward pass (grpo's module docstring)
            for m in batches:
                m["old_logprobs"] = m["behaviour_logprobs"]
        elif epochs > 1:
            for m, old in zip(batches, self.learner.logprobs(batches, self.temperature)):
                m["old_logprobs"] = old
        first: dict[str, float] = {}
        metrics: dict[str, float] = {}
        for _ in range(epochs):
            metrics = self.learner.step(batches, self.objective)
            first = first or metrics
        if "behaviour_gap" in first:  # the first epoch's: its weights are those the batch is compared against
            metrics["behaviour_gap"] = first["behaviour_gap"]
        return metrics

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The policy's weights on CPU from rank 0, {} from the others (`Learner.state_dict`: under ZeRO-3 every
        rank must call it, without ZeRO-3 only rank 0 need be asked)."""
        return self.learner.state_dict()

    def save_checkpoint(self, directory: str | Path, local_dir: str | Path | None = None) -> dict:
        """policy/ (HF, safetensors) and deepspeed/ (optimizer etc.) under `directory`; → this rank's RNG states
        (collective: every rank calls it). With `local_dir` (checkpoint.async_write) they are written there, on
        this node, and copied to `directory` in the background: `checkpoint_copied` says when that is done."""
        target = Path(directory) if local_dir is None else Path(local_dir) / f"rank-{self.rank}"
        if local_dir is not None:
            self.copy.done(wait=True)  # the previous copy (the driver waited for it already)
            shutil.rmtree(target, ignore_errors=True)  # left by a killed run
        self.save(target / "policy")
        self.learner.save_state(target / "deepspeed")
        if local_dir is not None:
            self.copy.start(target, Path(directory))
        return rng_state()

    def checkpoint_copied(self, wait: bool = False) -> bool:
        """Whether this rank's background checkpoint copy is done (raises if it failed); `wait`: wait for it."""
        return self.copy.done(wait)

    def load_checkpoint(self, directory: str | Path, rng: dict | None = None) -> int:
        """Continue from `save_checkpoint`'s directory (this run's own); → the learner's optimizer steps so far."""
        self.learner.load_state(Path(directory) / "deepspeed")
        if rng is not None:
            set_rng_state(rng)
        return self.learner.steps_done

    def save(self, directory: str | Path) -> str:
        """The policy as an HF directory (weights + tokenizer/processor), written atomically."""
        return str(self.learner.save_pretrained(directory, extra_files=self.bundle.save_tokenizer))
