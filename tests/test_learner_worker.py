"""`LearnerWorker`, the GRPO update of one learner rank, on the tiny text planner (gloo, one process): the
current, old and reference log-probs share the rollout's temperature, and the learning-rate schedule counts RL
steps whatever `epochs_per_batch` is."""

from __future__ import annotations

import pytest
import torch
from tiny_planners import one_thread  # noqa: F401  (fixture)

from tracer1.config import RunConfig
from tracer1.engines.base import Prompt
from tracer1.learner.worker import LearnerWorker
from tracer1.models.inputs import encode_for_training, tokenize_target
from tracer1.models.tiny import build_tiny_planner

PLANS = ('<plan>\n1. click(target="Wi-Fi")\n</plan>', '<plan>\n1. press(key="home")\n</plan>',
         '<plan>\n1. type(target="Search", text="wifi")\n</plan>')


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory):
    return build_tiny_planner(tmp_path_factory.mktemp("tiny") / "text", kind="text", seed=0)


def make_worker(model_dir, temperature: float = 1.0, **algorithm) -> LearnerWorker:
    config = RunConfig.model_validate({
        "rollout": {"temperature": temperature},
        "learner": {"grad_accum_steps": 1, "backend": "gloo"},
        "algorithm": algorithm})
    return LearnerWorker(model_dir, config)


def micro_batches(worker: LearnerWorker) -> list[dict]:
    bundle = worker.bundle
    prompt = Prompt(text="Task: turn on Wi-Fi.")
    batch = encode_for_training(bundle, [prompt] * 3, [tokenize_target(bundle, p) for p in PLANS])
    batch["advantages"] = torch.tensor([1.0, -1.0, 0.5])
    batch["loss_denominator"] = batch["completion_mask"].sum().float()
    return [batch]


def every_epoch(worker: LearnerWorker) -> list[dict]:
    """The metrics of each optimizer step the worker takes (its `step` returns only the last epoch's)."""
    seen: list[dict] = []
    step = worker.learner.step
    worker.learner.step = lambda batches, objective: seen.append(step(batches, objective)) or seen[-1]
    return seen


def test_at_temperature_0_7_the_policy_equal_to_the_reference_has_kl_0_and_ratio_1(tiny_text):
    """The loss scores the sampling policy softmax(logits / T); the reference and old log-probs must be taken at
    the same T, or KL(π_θ ‖ π_ref) reads > 0 and the first epoch's ratio ≠ 1 with π_θ = π_ref = π_old."""
    worker = make_worker(tiny_text, temperature=0.7, kl_coef=0.1, epochs_per_batch=2, lr=1e-3)
    seen = every_epoch(worker)
    worker.step(micro_batches(worker))
    first = seen[0]
    assert first["kl"] == pytest.approx(0.0, abs=1e-6)
    assert first["ratio_max"] == pytest.approx(1.0, abs=1e-5)
    assert first["approx_kl_old"] == pytest.approx(0.0, abs=1e-6)
    assert seen[1]["kl"] > 1e-8  # the second epoch's policy has moved from the reference: the KL does read it


def test_the_learning_rate_schedule_counts_rl_steps_with_two_epochs_per_batch(tiny_text):
    """warm-up 2 and cosine over 6 RL steps, each 2 optimizer steps: the schedule spans the 6 RL steps (12
    optimizer steps), not 6 optimizer steps (over by RL step 3, its warm-up done after RL step 1)."""
    peak = 1e-3
    worker = make_worker(tiny_text, epochs_per_batch=2, lr=peak, lr_schedule="cosine", warmup_steps=2,
                         total_steps=6)
    batches = micro_batches(worker)
    lrs = [worker.step(batches)["lr"] / peak for _ in range(6)]  # the lr of the next optimizer step
    assert 0 < lrs[0] < 1                                  # RL step 1 is still warming up
    assert lrs[1] == pytest.approx(1.0)                    # warm-up ends after RL step 2, the cosine starts
    assert lrs[3] == pytest.approx(0.5)                    # half-way through the cosine's 4 RL steps
    assert lrs[4] > 0.1 and lrs[5] == pytest.approx(0.0, abs=1e-9)  # it reaches 0 at the last RL step, not before


def test_clip_higher_acts_only_from_the_second_epoch_over_a_batch(tiny_text):
    """With one epoch the ratio is 1 and no token is clipped; the second epoch over the same batch, after a large
    first step, has ratios outside [1 − clip_low, 1 + clip_high] and clips."""
    worker = make_worker(tiny_text, epochs_per_batch=2, lr=0.05, kl_coef=0.0)
    seen = every_epoch(worker)
    worker.step(micro_batches(worker))
    assert seen[0]["clip_fraction"] == 0.0 and seen[0]["ratio_max"] == pytest.approx(1.0)
    assert seen[1]["clip_fraction"] > 0


def test_old_logprobs_from_the_rollout_take_no_extra_forward_pass(tiny_text):
    """`algorithm.old_logprobs=rollout`: the engine's log-probs are π_old, so two epochs take no forward pass
    before the first (the learner's would) and the ratio of the first epoch is π_θ / μ."""
    worker = make_worker(tiny_text, epochs_per_batch=2, lr=1e-3, kl_coef=0.0, old_logprobs="rollout")
    batches = micro_batches(worker)
    behaviour = worker.learner.logprobs(batches)[0]
    batches[0]["behaviour_logprobs"] = behaviour - 0.1 * batches[0]["completion_mask"]  # μ a little below π
    forwards = []
    worker.learner.logprobs = lambda *a, **k: forwards.append(1)
    seen = every_epoch(worker)
    metrics = worker.step(batches)
    assert forwards == []
    assert seen[0]["ratio_max"] == pytest.approx(torch.exp(torch.tensor(0.1)).item(), rel=1e-4)
    assert metrics["behaviour_gap"] == pytest.approx(0.1, abs=1e-5)  # the first epoch's, on μ's weights + 0.1
