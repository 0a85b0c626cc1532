"""Stages 1 and 2 end to end on a local Ray, shrunk: the SFT warm start is trained and cached, stage 1 runs GRPO
with rollout, reward and learner actors and syncs weights, stage 2 starts from stage 1's checkpoint and adds the
executor actors (online: first steps executed in the live built-in world); both evaluate before and after, save
a loadable checkpoint, a report and per-part step times. A stage-1 run on Parquet shards has each rollout worker
draw its own samples while the driver never reads the training split. The held-out evaluation runs on the rollout
workers, on the weights they hold, while the driver holds no model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import ray

from tracer1.data.shards import write_shards
from tracer1.data.synthetic import generate_samples
from tracer1.models import loading
from tracer1.models.loading import load_planner
from tracer1.models.tiny import build_tiny_planner
from tracer1.rollout import RolloutWorker
from tracer1.run import main
from tracer1.train import assets, rl
from tracer1.train.assets import cache_dir
from tracer1.train.checkpoints import read_state
from tracer1.train.rl import PARTS

SMALL = ["--config", str(Path(__file__).parents[1] / "configs" / "smoke.yaml")]  # the shrunk run


def metrics_of(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_stage_1_then_stage_2_on_a_local_ray(tmp_path, capsys):
    out = tmp_path / "runs"
    try:
        assert main(["stage=1", f"logging.out_dir={out}", "run_name=s1", "algorithm.total_steps=3",
                     "algorithm.eval_every=2", *SMALL]) == 0
        s1 = out / "s1"
        report = json.loads((s1 / "stage1_report.json").read_text())
        assert report["steps"] == 3 and report["before"]["samples"] == report["after"]["samples"] == 8
        steps = [m for m in metrics_of(s1) if "stage1/reward_mean" in m]
        assert [m["step"] for m in steps] == [1, 2, 3]
        assert all(m[f"stage1/time/{part}"] >= m[f"stage1/busy/{part}"] >= 0 for m in steps for part in PARTS)
        assert all(m["stage1/weights_lag"] == 0 and m["stage1/retried_calls"] == 0 for m in steps)
        assert all(m["stage1/reward_failures"] == m["stage1/executor_fallbacks"] == 0 for m in steps)
        assert [m["step"] for m in metrics_of(s1) if "stage1/eval/reward" in m] == [2, 3]  # every 2 steps + the end
        assert any("stage1/grad_norm" in m for m in steps)  # at least one group had a reward spread
        texts = [(m["step"], *m["text"]) for m in metrics_of(s1) if "text" in m]  # logging.log_samples=2 a step
        assert [(step, tag) for step, tag in texts] == [(n, f"stage1/sample{i}") for n in (1, 2, 3) for i in (0, 1)]
        assert all("(reward " in m["text"][tag] for m in metrics_of(s1) if "text" in m for tag in m["text"])
        warm = [p for p in cache_dir_of(out).iterdir() if p.name.startswith("sft-")]  # warm start cached, with
        assert len(warm) == 1 and (warm[0] / "run" / "sft_report.json").is_file()  # its SFT report kept
        printed = capsys.readouterr().out
        assert "stage 1 (trajectory alignment)" in printed
        assert f"the SFT warm start is kept as {warm[0]}" in printed  # not only the directory it was built in

        assert main(["stage=2", f"logging.out_dir={out}", "run_name=s2", "algorithm.total_steps=2",
                     "env.grounding=online", f"checkpoint.init_from={s1 / 'checkpoints' / 'final'}",
                     "logging.log_every=2", "logging.log_samples=0", *SMALL]) == 0
        s2 = out / "s2"
        report = json.loads((s2 / "stage2_report.json").read_text())
        assert report["planner"] == str(s1 / "checkpoints" / "final")
        assert report["after"]["first_step_grounded"] is not None
        assert [m["step"] for m in metrics_of(s2) if "stage2/reward_mean" in m] == [2]  # logging.log_every=2
        assert not any("text" in m for m in metrics_of(s2))
        # every built-in sample is restored live, so none falls back to offline scoring
        assert [m["stage2/executor_fallbacks"] for m in metrics_of(s2) if "stage2/reward_mean" in m] == [0]
        bundle = load_planner(s2 / "checkpoints" / "final")
        assert bundle.is_vision and bundle.processor is not None
    finally:
        ray.shutdown()


def cache_dir_of(out):
    from tracer1.config import RunConfig

    return cache_dir(RunConfig.model_validate({"logging": {"out_dir": str(out)}}))


def last_per_step(run, key):
    rows = {m["step"]: m for m in metrics_of(run) if key in m}  # a resumed step appears again; the last one counts
    return {step: rows[step] for step in sorted(rows)}


@pytest.mark.slow
@pytest.mark.parametrize("staleness", [0, 1])
def test_a_run_killed_after_a_checkpoint_resumes_with_the_same_next_batches(tmp_path, staleness):
    """SIGKILL the whole run (driver and its Ray) once the step-2 checkpoint exists; `resume=auto` (the default)
    then continues at step 3 with the batch, weights and optimizer state an uninterrupted run has there. With
    max_staleness 1 step 3's batch, generated from step 1's weights, was in flight: the checkpoint kept it."""
    out = tmp_path / "runs"
    args = ["stage=1", f"logging.out_dir={out}", "algorithm.total_steps=4", "checkpoint.every_steps=2",
            "checkpoint.keep_last=1", "algorithm.lr=1e-3", f"algorithm.max_staleness={staleness}", *SMALL]
    try:
        assert main([*args, "run_name=whole"]) == 0
    finally:
        ray.shutdown()
    cut = out / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "tracer1.run", *args, "run_name=cut"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 900
        while not (cut / "checkpoints" / "step-000002").is_dir():
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
        proc.wait()
    assert not (cut / "stage1_report.json").exists()
    try:
        assert main([*args, "run_name=cut"]) == 0
    finally:
        ray.shutdown()
    report = json.loads((cut / "stage1_report.json").read_text())
    assert report["resumed_from"] == str(cut / "checkpoints" / "step-000002")
    whole, resumed = last_per_step(out / "whole", "stage1/reward_mean"), last_per_step(cut, "stage1/reward_mean")
    assert list(resumed) == [1, 2, 3, 4]
    assert [resumed[step]["stage1/staleness"] for step in (3, 4)] == [staleness] * 2
    for step in (3, 4):
        assert resumed[step]["stage1/batch_crc32"] == whole[step]["stage1/batch_crc32"]
        assert resumed[step]["stage1/reward_mean"] == pytest.approx(whole[step]["stage1/reward_mean"], abs=1e-6)
        if "stage1/loss" in whole[step]:
            assert resumed[step]["stage1/loss"] == pytest.approx(whole[step]["stage1/loss"], rel=1e-3, abs=1e-5)
    assert report["before"] == json.loads((out / "whole" / "stage1_report.json").read_text())["before"]


@pytest.mark.slow
def test_rollout_workers_stream_their_own_parquet_shards(tmp_path, monkeypatch):
    """`data.train_shards`: each of 2 rollout workers draws 1 sample a step from its own shards (the driver only
    lists them); the step-1 checkpoint holds both workers' cursors. The tiny text planner stands in for the SFT
    warm start, which would read the training split."""
    samples = list(generate_samples(2, seed=5, horizon=10))
    ids = [s.sample_id for s in samples]
    half = -(-len(ids) // 2)
    write_shards(samples, str(tmp_path / "shards"), rows_per_shard=half)  # 2 shards: worker 0's, worker 1's
    read = []
    monkeypatch.setattr(assets, "dataset_path", lambda config, split, real=assets.dataset_path: (
        read.append(split), real(config, split))[1])
    out = tmp_path / "runs"
    try:
        assert main(["stage=1", f"logging.out_dir={out}", "run_name=shards", "algorithm.total_steps=2",
                     f"data.train_shards={tmp_path / 'shards'}", "rollout.num_workers=2", "checkpoint.every_steps=1",
                     f"checkpoint.init_from={build_tiny_planner(tmp_path / 'planner', kind='text')}",
                     "sft.eval_samples=2", *SMALL]) == 0
    finally:
        ray.shutdown()
    assert "train" not in read and "eval" in read  # the driver read the held-out split only
    batches = {m["step"]: m["stage1/batch_crc32"] for m in metrics_of(out / "shards") if "stage1/batch_crc32" in m}
    expected = {step: zlib.crc32(f"{ids[step - 1]} {ids[half + step - 1]}".encode()) for step in (1, 2)}
    assert batches == expected  # step s: worker 0's s-th sample, then worker 1's
    assert read_state(out / "shards" / "checkpoints" / "step-000001")["shard_cursors"] == [1, 1]


@pytest.mark.slow
def test_the_rollout_workers_evaluate_and_the_driver_builds_no_model(tmp_path, monkeypatch):
    """Issue 19 (2): the driver only builds prompts and pads batches; before, every `eval_every` and after, the
    rollout workers generate the evaluation with the weights synced to them. Each worker notes the weights
    version of every evaluation piece it serves. The SFT warm start trains first (its learner runs in the
    driver by design), and its kept evaluation is removed so that stage 1 evaluates "before" itself."""
    out = tmp_path / "runs"
    assert main(["stage=sft", f"logging.out_dir={out}", "run_name=warm", *SMALL]) == 0
    warm = out / "warm" / "checkpoints" / "final"
    for kept in warm.glob("heldout-eval-*.json"):
        kept.unlink()
    served = tmp_path / "served"

    def refuse(*args, **kwargs):
        raise AssertionError("the driver built a model")

    def generate_pieces(self, pieces):
        version, answers = RolloutWorker.generate_pieces(self, pieces)
        with open(served, "a") as f:
            f.write(f"{version}\n" * len(pieces))
        return version, answers

    noting = type("NotingRolloutWorker", (RolloutWorker,), {"generate_pieces": generate_pieces})
    monkeypatch.setattr(loading, "_load_model", refuse)  # in the driver's process only: actors load their own
    monkeypatch.setattr(rl, "RolloutWorker", noting)
    try:
        assert main(["stage=1", f"logging.out_dir={out}", "run_name=s1", "algorithm.total_steps=3",
                     "algorithm.eval_every=2", "rollout.num_workers=2", f"checkpoint.init_from={warm}",
                     *SMALL]) == 0
    finally:
        ray.shutdown()
    s1 = out / "s1"
    report = json.loads((s1 / "stage1_report.json").read_text())
    assert report["before"]["samples"] == report["after"]["samples"] == 8  # smoke: 8 held-out samples × 2 plans
    assert [m["step"] for m in metrics_of(s1) if "stage1/eval/reward" in m] == [2, 3]
    learned = {m["step"] for m in metrics_of(s1) if "stage1/loss" in m}  # steps whose weights were synced
    assert learned  # else every evaluation would see the same weights and this test would show less
    synced = [max((s for s in learned if s <= step), default=0) for step in (0, 2, 3)]
    per_eval = 2 * 2  # 8 prompts in pieces of 4, greedy and sampled
    versions = [int(v) for v in served.read_text().split()]
    assert len(versions) == 3 * per_eval  # before, after step 2 (eval_every), after the last step
    assert [set(versions[i * per_eval:(i + 1) * per_eval]) for i in range(3)] == [{v} for v in synced]
