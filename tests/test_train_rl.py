"""Stages 1 and 2 end to end on a local Ray, shrunk: the SFT warm start is trained and cached, stage 1 runs GRPO
with rollout, reward and learner actors and syncs weights, stage 2 starts from stage 1's checkpoint and adds the
executor actors; both evaluate before and after, save a loadable checkpoint, a report and per-part step times."""

from __future__ import annotations

import json

import pytest
import ray

from tracer1.models.loading import load_planner
from tracer1.run import main
from tracer1.train.assets import cache_dir

SMALL = ["sft.steps=30", "sft.warmup_steps=3", "sft.batch_size=8", "learner.micro_batch_size=8", "sft.eval_samples=8",
         "sft.eval_plans=2", "data.generate_episodes=30", "data.eval_episodes=6", "rollout.max_new_tokens=64",
         "rollout.group_size=4", "rollout.prompts_per_step=2", "learner.grad_accum_steps=2", "algorithm.lr=1e-4"]
PARTS = ("rollout", "execute", "reward", "learner", "sync")


def metrics_of(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_stage_1_then_stage_2_on_a_local_ray(tmp_path, capsys):
    out = tmp_path / "runs"
    try:
        assert main(["stage=1", f"logging.out_dir={out}", "run_name=s1", "algorithm.total_steps=3", *SMALL]) == 0
        s1 = out / "s1"
        report = json.loads((s1 / "stage1_report.json").read_text())
        assert report["steps"] == 3 and report["before"]["samples"] == report["after"]["samples"] == 8
        steps = [m for m in metrics_of(s1) if "stage1/reward_mean" in m]
        assert [m["step"] for m in steps] == [1, 2, 3]
        assert all(m[f"stage1/time/{part}"] >= 0 for m in steps for part in PARTS)
        assert any("stage1/grad_norm" in m for m in steps)  # at least one group had a reward spread
        assert [p.name for p in cache_dir_of(out).iterdir() if p.name.startswith("sft-")]  # warm start cached
        assert "stage 1 (trajectory alignment)" in capsys.readouterr().out

        assert main(["stage=2", f"logging.out_dir={out}", "run_name=s2", "algorithm.total_steps=2",
                     f"checkpoint.init_from={s1 / 'checkpoints' / 'final'}", *SMALL]) == 0
        s2 = out / "s2"
        report = json.loads((s2 / "stage2_report.json").read_text())
        assert report["planner"] == str(s1 / "checkpoints" / "final")
        assert report["after"]["first_step_grounded"] is not None
        assert [m["step"] for m in metrics_of(s2) if "stage2/reward_mean" in m] == [1, 2]
        bundle = load_planner(s2 / "checkpoints" / "final")
        assert bundle.is_vision and bundle.processor is not None
    finally:
        ray.shutdown()


def cache_dir_of(out):
    from tracer1.config import RunConfig

    return cache_dir(RunConfig.model_validate({"logging": {"out_dir": str(out)}}))
