"""The KL reference of `LearnerWorker` (tracer1.learner.reference), one rank on gloo: it is built where the
learner's policy is — on the learner's device in the policy's dtype, or under ZeRO-3 as its own optimizer-less
ZeRO-3 engine — and not at all when `algorithm.kl_coef` is 0. Two ranks sharing it are in tests/test_learner_ranks.py.

The only stand-in is a device: there is no accelerator here, so "the learner is on another device" is played by
torch's `meta` device (a FAKE learner device, named as such where used)."""

from __future__ import annotations

import pytest
import torch
from deepspeed.runtime.engine import DeepSpeedEngine
from tiny_planners import one_thread  # noqa: F401  (fixture)

from tracer1.config import RunConfig
from tracer1.learner import worker as worker_module
from tracer1.learner.learner import Learner
from tracer1.learner.reference import (
    ReferencePlacement, build_reference, reference_deepspeed_config, reference_placement,
)
from tracer1.learner.worker import LearnerWorker
from tracer1.models.tiny import build_tiny_planner

from test_learner_worker import micro_batches


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory):
    return build_tiny_planner(tmp_path_factory.mktemp("tiny") / "text", kind="text", seed=0)


def config(zero_stage: int = 2, kl_coef: float = 0.1, dtype: str = "float32") -> RunConfig:
    return RunConfig.model_validate({"model": {"dtype": dtype}, "algorithm": {"kl_coef": kl_coef},
                                     "learner": {"zero_stage": zero_stage, "grad_accum_steps": 1, "backend": "gloo"}})


def test_the_placement_follows_the_learners_device_and_zero_stage():
    cuda3 = torch.device("cuda", 3)  # only a value: nothing is allocated on it
    assert reference_placement(config(zero_stage=2), cuda3) == ReferencePlacement(cuda3, sharded=False)
    assert reference_placement(config(zero_stage=1), "cuda:3") == ReferencePlacement(cuda3, sharded=False)
    assert reference_placement(config(zero_stage=3), cuda3) == ReferencePlacement(cuda3, sharded=True)
    assert reference_placement(config(zero_stage=3, kl_coef=0.0), cuda3) is None


def test_the_zero3_reference_config_has_no_optimizer_and_the_policys_dtype():
    ds = reference_deepspeed_config(config(zero_stage=3, dtype="bfloat16"))
    assert ds["zero_optimization"] == {"stage": 3} and "optimizer" not in ds and "scheduler" not in ds
    assert ds["bf16"]["enabled"] and not ds["fp16"]["enabled"]


def test_a_reference_is_built_for_the_device_it_is_given_not_for_the_cpu(tiny_text):
    meta = torch.device("meta")  # FAKE accelerator: any device but the CPU shows the reference is not pinned there
    reference = build_reference(tiny_text, config(dtype="bfloat16"), ReferencePlacement(meta, sharded=False))
    params = list(reference.parameters())
    assert {p.device for p in params} == {meta} and {p.dtype for p in params} == {torch.bfloat16}
    assert not reference.training and not any(p.requires_grad for p in params)


def test_the_workers_reference_lives_on_the_learners_device(tiny_text, monkeypatch):
    """The worker asks the learner where it is and builds the reference there; with the learner reporting the
    (FAKE) meta device the reference is on meta — code that loads it on the CPU regardless fails here."""
    monkeypatch.setattr(Learner, "device", property(lambda self: torch.device("meta")))
    worker = LearnerWorker(tiny_text, config(zero_stage=2))
    assert worker.reference_placement == ReferencePlacement(torch.device("meta"), sharded=False)
    assert {p.device.type for p in worker.reference.parameters()} == {"meta"}


def test_on_the_cpu_learner_the_reference_shares_the_policys_device_and_dtype(tiny_text):
    worker = LearnerWorker(tiny_text, config(zero_stage=2))
    policy = next(worker.learner.model.parameters())
    assert {(p.device, p.dtype) for p in worker.reference.parameters()} == {(worker.learner.device, policy.dtype)}


def test_with_kl_coef_0_no_reference_is_built(tiny_text, monkeypatch):
    built = []
    monkeypatch.setattr(worker_module, "build_reference", lambda *args: built.append(args))
    worker = LearnerWorker(tiny_text, config(zero_stage=3, kl_coef=0.0))
    assert worker.reference is None and worker.reference_placement is None and built == []
    assert "kl" not in worker.step(micro_batches(worker))  # the step needs none and computes no KL


def test_under_zero3_the_reference_is_a_partitioned_engine_without_optimizer_and_reads_kl_0(tiny_text):
    worker = LearnerWorker(tiny_text, config(zero_stage=3))
    reference = worker.reference
    assert isinstance(reference, DeepSpeedEngine) and reference.zero_optimization_stage() == 3
    assert type(reference.optimizer).__name__ == "DeepSpeedZeRoOffload"  # DeepSpeed's optimizer-less ZeRO-3
    params = list(reference.module.parameters())
    assert all(hasattr(p, "ds_id") and p.numel() == 0 for p in params)  # partitioned outside a forward
    assert {p.ds_tensor.device for p in params} == {worker.learner.device}
    # its forward works and equals the policy's at the start: the first step's KL is 0
    assert worker.step(micro_batches(worker))["kl"] == pytest.approx(0.0, abs=1e-6)
